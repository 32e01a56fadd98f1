"""Admin of conversations, messages and everything attached to a message.

Big tables: no filter builds its choices from them (see core.admin_tools),
foreign keys to them are raw-id widgets, long lists are capped inlines.
Staff view all of it and may set a message's mistake flag and note.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from chats import search
from chats.models import Chat, CodeExecution, Message, MessageFeedback, UploadedFile
from chats.summaries import refresh_chat_summaries
from core import audit
from core.admin_tools import (
    PROVENANCE,
    BigTableAdmin,
    CappedTabularInline,
    LocalDayFilter,
    ModelNameFilter,
    ProviderFilter,
    ReadOnlyInlineMixin,
    RecentPeriodFilter,
    RelatedIdFilter,
    preformatted,
    update_and_log,
)

FLAG_PERMISSION = "chats.flag_mistake"
FLAG_FIELDS = ("is_mistake", "mistake_note")


def _excerpt(text, chars=120):
    return Truncator(text or "").chars(chars)


class MessageTextSearchMixin:
    """Admin search on message text through chats.search.matching, the
    search page's own; text it refuses shows its reason and no rows."""

    message_text_field = "content"

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        try:
            return search.matching(queryset, search_term, self.message_text_field), False
        except search.SearchError as error:
            messages.error(request, str(error))
            return queryset.none(), False


class HasMistakeFilter(admin.SimpleListFilter):
    """Chats with a message flagged as a mistake (chats_msg_mistake_idx)."""

    title = "flagged mistakes"
    parameter_name = "has_mistake"

    def lookups(self, request, model_admin):
        return [("yes", "With a mistake"), ("no", "Without")]

    def queryset(self, request, queryset):
        flagged = Exists(Message.objects.filter(chat=OuterRef("pk"), is_mistake=True))
        if self.value() == "yes":
            return queryset.filter(flagged)
        if self.value() == "no":
            return queryset.exclude(flagged)
        return queryset


class ChatFeedbackFilter(admin.SimpleListFilter):
    """Chats with feedback, or with a low (1–2 star) rating."""

    title = "feedback"
    parameter_name = "feedback"

    def lookups(self, request, model_admin):
        return [("any", "With feedback"), ("low", "With a low rating (1–2)")]

    def queryset(self, request, queryset):
        feedback = MessageFeedback.objects.filter(message__chat=OuterRef("pk"))
        if self.value() == "any":
            return queryset.filter(Exists(feedback))
        if self.value() == "low":
            return queryset.filter(Exists(feedback.filter(rating__lte=2)))
        return queryset


class FailedCodeFilter(admin.SimpleListFilter):
    """Chats with a failed code execution."""

    title = "code executions"
    parameter_name = "failed_code"

    def lookups(self, request, model_admin):
        return [("yes", "With failed code"), ("no", "Without failed code")]

    def queryset(self, request, queryset):
        failed = Exists(CodeExecution.objects.filter(chat=OuterRef("pk"), is_successful=False))
        if self.value() == "yes":
            return queryset.filter(failed)
        if self.value() == "no":
            return queryset.exclude(failed)
        return queryset


def transcript_link(chat_id, message_id=None, label="Read as conversation"):
    url = reverse("review:transcript", args=[chat_id])
    if message_id is not None:
        url = f"{url}?at={message_id}#message-{message_id}"
    return format_html('<a href="{}">{}</a>', url, label)


class RatingFilter(admin.SimpleListFilter):
    """Fixed choices: a plain filter on rating would SELECT DISTINCT it."""

    title = "rating"
    parameter_name = "rating"
    LOW = 2

    def lookups(self, request, model_admin):
        stars = [(str(n), "★" * n) for n in range(5, 0, -1)]
        return [("low", f"Low (1–{self.LOW})"), *stars, ("none", "No rating")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "low":
            return queryset.filter(rating__lte=self.LOW)
        if value == "none":
            return queryset.filter(rating__isnull=True)
        if value in {"1", "2", "3", "4", "5"}:
            return queryset.filter(rating=int(value))
        return queryset


class MessageInline(CappedTabularInline):
    """A chat's transcript: its first 100 messages, in order."""

    model = Message
    fields = ("role", "created_at", "excerpt", "model_name", "is_mistake")
    ordering = ("created_at", "id")

    @admin.display(description="content")
    def excerpt(self, obj):
        return _excerpt(obj.content, 200)


class UploadedFileInline(CappedTabularInline):
    model = UploadedFile
    fields = ("filename", "file_type", "file_size", "is_processed", "upload_timestamp")
    ordering = ("upload_timestamp", "id")


@admin.register(Chat)
class ChatAdmin(BigTableAdmin):
    list_display = (
        "title",
        "user",
        "organization",
        "message_count",
        "starred",
        "is_active",
        "last_message_at",
        "created_at",
        "source",
        "transcript",
    )
    list_select_related = ("user", "organization", "source")
    list_filter = (
        RecentPeriodFilter.for_field("created_at"),
        # one local day or a range of them: the dashboards' drill-down
        LocalDayFilter.for_field("created_at"),
        HasMistakeFilter,
        ChatFeedbackFilter,
        FailedCodeFilter,
        "starred",
        "is_active",
        "organization",
        RelatedIdFilter.for_field("user"),
        "source",
    )
    search_fields = ("title",)
    ordering = ("-created_at",)  # chats_chat_created_idx
    sortable_by = ("created_at",)
    autocomplete_fields = ("user", "organization")
    readonly_fields = ("transcript", "message_count", "last_message_at", "created_at", "updated_at")
    pretty_json_fields = ("metadata",)
    fieldsets = (
        (None, {"fields": ("transcript", "title", "user", "organization", "starred", "is_active")}),
        (
            "Dates",
            {"fields": ("created_at", "updated_at", "last_message_at", "expires_at")},
        ),
        ("Details", {"fields": ("message_count", "metadata")}),
        PROVENANCE,
    )
    inlines = (MessageInline, UploadedFileInline)

    @admin.display(description="transcript")
    def transcript(self, obj):
        return transcript_link(obj.pk, label="Read") if obj.pk else "–"


class FeedbackInline(ReadOnlyInlineMixin, admin.StackedInline):
    model = MessageFeedback
    fields = (
        "rating",
        "model_name",
        "model_provider",
        "temperature",
        "max_tokens",
        "created_at",
    )


class CodeExecutionInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = CodeExecution
    fields = ("created_at", "is_successful", "model_name", "code")
    ordering = ("created_at", "id")

    @admin.display(description="latest code")
    def code(self, obj):
        if not obj.latest_code:
            return self.get_empty_value_display()
        return preformatted(obj.latest_code, max_chars=2_000)


@admin.register(Message)
class MessageAdmin(MessageTextSearchMixin, BigTableAdmin):
    """Messages of every application.

    Staff (view permission plus ``chats.flag_mistake``) may change only the
    mistake flag and note of an assistant message; everything else needs
    ``chats.change_message``. Flag changes are audited as the transcript
    page audits them (``flag_mistake`` / ``clear_mistake``).
    """

    list_display = (
        "__str__",
        "chat",
        "role",
        "model_name",
        "is_mistake",
        "created_at",
        "in_transcript",
    )
    list_select_related = ("chat",)
    list_filter = (
        RecentPeriodFilter.for_field("created_at"),
        "role",
        "is_mistake",
        ModelNameFilter,
        RelatedIdFilter.for_field("chat"),
        "source",
    )
    search_fields = ("content",)
    ordering = ("-created_at",)  # chats_msg_created_idx
    sortable_by = ("created_at",)
    raw_id_fields = ("chat", "mistake_flagged_by")
    readonly_fields = ("in_transcript", "mistake_flagged_by", "mistake_flagged_at")
    pretty_json_fields = ("context_data", "query_result")
    pre_text_fields = ("sql_query",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "in_transcript",
                    "chat",
                    "role",
                    "content",
                    "created_at",
                    "sequence_number",
                )
            },
        ),
        (
            "Mistake",
            {"fields": ("is_mistake", "mistake_note", "mistake_flagged_by", "mistake_flagged_at")},
        ),
        (
            "AI metadata",
            {
                "classes": ("collapse",),
                "fields": (
                    ("model_name", "prompt_tokens", "completion_tokens"),
                    ("persona", "tone", "behavior", "context_type"),
                    ("confidence", "signal_strength", "context_clarity", "needs_knowledge"),
                ),
            },
        ),
        (
            "SQL query",
            {
                "classes": ("collapse",),
                "fields": (
                    "query_id",
                    "sql_query",
                    "query_result",
                    "execution_time",
                    "error_message",
                ),
            },
        ),
        (
            "Agent turn",
            {"classes": ("collapse",), "fields": ("turn_number", "agent_type", "context_data")},
        ),
        PROVENANCE,
    )
    inlines = (FeedbackInline, CodeExecutionInline)
    actions = ("flag_mistake", "clear_mistake")

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) or request.user.has_perm(FLAG_PERMISSION)

    def has_flag_mistake_permission(self, request):
        return request.user.has_perm(FLAG_PERMISSION)

    @admin.display(description="transcript")
    def in_transcript(self, obj):
        return transcript_link(obj.chat_id, obj.pk, label="Open") if obj.pk else "–"

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        opts = self.opts
        if request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}"):
            return readonly
        flaggable = obj is None or obj.role == Message.Role.ASSISTANT
        editable = set(FLAG_FIELDS) if flaggable else set()
        rest = [name for name in flatten_fieldsets(self.fieldsets) if name not in editable]
        return self.with_pretty_fields(request, obj, [*readonly, *rest])

    def save_model(self, request, obj, form, change):
        if "is_mistake" in form.changed_data:
            flagged = obj.is_mistake
            obj.mistake_flagged_by = request.user if flagged else None
            obj.mistake_flagged_at = timezone.now() if flagged else None
        if change and set(FLAG_FIELDS) & set(form.changed_data):
            obj._flag_before = {name: form.initial.get(name) for name in FLAG_FIELDS}
        moved_from = form.initial.get("chat") if change and "chat" in form.changed_data else None
        super().save_model(request, obj, form, change)
        if not change or moved_from is not None or "created_at" in form.changed_data:
            # Both chats of a move: the old one lost a message, the new one gained it.
            refresh_chat_summaries({obj.chat_id, moved_from})

    def delete_model(self, request, obj):
        chat_pk = obj.chat_id
        super().delete_model(request, obj)
        refresh_chat_summaries({chat_pk})

    def delete_queryset(self, request, queryset):
        chat_pks = set(queryset.order_by().values_list("chat_id", flat=True).distinct())
        super().delete_queryset(request, queryset)
        refresh_chat_summaries(chat_pks)

    def audit_change(self, request, obj, message):
        before = getattr(obj, "_flag_before", None)
        if before is None:
            return super().audit_change(request, obj, message)
        after = {name: getattr(obj, name) for name in FLAG_FIELDS}
        action = "flag_mistake" if obj.is_mistake else "clear_mistake"
        return audit.record(request, action, obj, old=before, new={**after, "change": message})

    @admin.action(description="Flag as mistake", permissions=["flag_mistake"])
    def flag_mistake(self, request, queryset):
        changes = {
            "is_mistake": True,
            "mistake_flagged_by": request.user,
            "mistake_flagged_at": timezone.now(),
        }
        rows = queryset.filter(role=Message.Role.ASSISTANT, is_mistake=False)
        count = update_and_log(request, rows, changes, action="flag_mistake")
        self.message_user(
            request,
            f"Flagged {count} assistant message(s) as mistakes "
            "(only assistant messages can be flagged).",
            messages.SUCCESS,
        )

    @admin.action(description="Clear mistake flag", permissions=["flag_mistake"])
    def clear_mistake(self, request, queryset):
        changes = {"is_mistake": False, "mistake_flagged_by": None, "mistake_flagged_at": None}
        rows = queryset.filter(is_mistake=True)
        count = update_and_log(request, rows, changes, action="clear_mistake")
        self.message_user(request, f"Cleared the flag of {count} message(s).", messages.SUCCESS)


@admin.register(MessageFeedback)
class MessageFeedbackAdmin(MessageTextSearchMixin, BigTableAdmin):
    """The feedback queue: lowest ratings first with the "low" filter."""

    list_display = ("message", "rating", "model_name", "model_provider", "created_at")
    list_select_related = ("message",)
    list_filter = (
        RatingFilter,
        RecentPeriodFilter.for_field("created_at"),
        ModelNameFilter,
        ProviderFilter.for_field("model_provider"),
        "source",
    )
    search_fields = ("message__content",)
    message_text_field = "message__content"
    ordering = ("-created_at",)  # chats_feedback_created_idx
    sortable_by = ("rating", "created_at")  # chats_feedback_rating_idx
    raw_id_fields = ("message",)
    readonly_fields = ("created_at", "updated_at")


@admin.register(CodeExecution)
class CodeExecutionAdmin(BigTableAdmin):
    list_display = ("__str__", "chat", "user", "model_name", "is_successful", "created_at")
    list_select_related = ("chat", "user")
    list_filter = (
        RecentPeriodFilter.for_field("created_at"),
        "is_successful",
        ModelNameFilter,
        ProviderFilter.for_field("model_provider"),
        RelatedIdFilter.for_field("chat"),
        RelatedIdFilter.for_field("user"),
        "source",
    )
    search_fields = ("latest_code",)
    ordering = ("-created_at",)  # chats_codeexec_created_idx
    sortable_by = ("created_at",)
    raw_id_fields = ("message", "chat")
    autocomplete_fields = ("user",)
    readonly_fields = ("created_at", "updated_at")
    pretty_json_fields = ("failed_agents", "error_messages")
    pre_text_fields = ("initial_code", "latest_code", "output")
    fieldsets = (
        (None, {"fields": ("message", "chat", "user", "is_successful")}),
        ("Model", {"fields": ("model_provider", "model_name")}),
        ("Code", {"fields": ("initial_code", "latest_code", "output")}),
        ("Errors", {"fields": ("failed_agents", "error_messages")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
        PROVENANCE,
    )


@admin.register(UploadedFile)
class UploadedFileAdmin(BigTableAdmin):
    list_display = (
        "filename",
        "chat",
        "file_type",
        "file_size",
        "is_processed",
        "upload_timestamp",
    )
    list_select_related = ("chat",)
    list_filter = (
        "is_processed",
        RecentPeriodFilter.for_field("upload_timestamp"),
        RelatedIdFilter.for_field("chat"),
        "source",
    )
    search_fields = ("filename",)
    ordering = ("-upload_timestamp",)
    raw_id_fields = ("chat",)
    pretty_json_fields = ("file_metadata",)


# Review queues (#19) -------------------------------------------------------

from chats import queues as review_queues  # noqa: E402
from chats.models import MistakeCategory, Review, ReviewItem, ReviewQueue  # noqa: E402
from core.admin_tools import BaseAdmin, ReadOnlyAdminMixin  # noqa: E402


@admin.register(MistakeCategory)
class MistakeCategoryAdmin(BaseAdmin):
    """The mistake taxonomy reviewers pick from (Admins edit it)."""

    list_display = ("name", "slug", "position", "is_active")
    list_editable = ("position", "is_active")
    prepopulated_fields = {"slug": ("name",)}
    ordering = ("position", "name")


@admin.register(ReviewQueue)
class ReviewQueueAdmin(BaseAdmin):
    """A queue's rule and assignment (Admins edit them); "Fill now" runs the
    rule over every message, as ``fill_review_queues`` does."""

    list_display = ("name", "rule", "reviewers_per_item", "assignment", "is_active")
    list_filter = ("rule", "assignment", "is_active")
    search_fields = ("name",)
    filter_horizontal = ("reviewers",)
    readonly_fields = ("created_at",)
    actions = ("fill_now",)
    fieldsets = (
        (None, {"fields": ("name", "description", "is_active")}),
        (
            "Rule",
            {
                "fields": (
                    "rule",
                    "max_rating",
                    "confidence_below",
                    "min_chat_cost",
                    "sample_percent",
                )
            },
        ),
        ("Reviewers", {"fields": ("reviewers_per_item", "assignment", "reviewers")}),
        ("Dates", {"fields": ("created_at",)}),
    )

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "reviewers":
            from django.contrib.auth import get_user_model

            kwargs["queryset"] = get_user_model().objects.filter(is_staff=True, is_active=True)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.action(description="Fill now from every message", permissions=["change"])
    def fill_now(self, request, queryset):
        added = {queue.name: review_queues.fill(queue, request=request) for queue in queryset}
        self.message_user(
            request,
            "; ".join(f"{name}: {n} added" for name, n in added.items()),
            messages.SUCCESS,
        )


class ReviewInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = Review
    fields = ("reviewer", "verdict", "note", "started_at", "completed_at")


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdminMixin, BaseAdmin):
    """Items and their reviews, read-only: the review pages change them, audited."""

    list_display = ("__str__", "queue", "status", "verdict", "model_name", "created_at")
    list_filter = ("queue", "status", "verdict")
    list_select_related = ("queue",)
    raw_id_fields = ("message", "queue", "settled_by", "source")
    inlines = (ReviewInline,)


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdminMixin, BaseAdmin):
    list_display = ("__str__", "reviewer", "verdict", "completed_at")
    list_filter = ("verdict",)
    list_select_related = ("reviewer", "item__queue")
    raw_id_fields = ("item", "reviewer")
