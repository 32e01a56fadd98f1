"""Admin of the LLM usage ledger, prices, budgets and roll-ups.

The ledger and the roll-ups are big tables: model and provider filters take
their choices from the price list, dates from fixed recent periods. The
roll-ups are rebuilt from the ledger (``manage.py rebuild_rollups``), so their
admin is view-only.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from chats.admin import transcript_link
from core.admin_tools import (
    PROVENANCE,
    BaseAdmin,
    BigTableAdmin,
    LocalDayFilter,
    ModelNameFilter,
    ProviderFilter,
    ReadOnlyAdminMixin,
    RecentPeriodFilter,
    RelatedIdFilter,
)
from usage import ledger, metrics
from usage.models import (
    LATENCY_BUCKETS_MS,
    Budget,
    DailyLatency,
    DailyUsage,
    ModelPrice,
    ModelUsage,
    NotificationChannel,
    PerformanceMetric,
    QueryAnalytics,
)
from usage.templatetags.figures import figure


class ModelUsageForm(forms.ModelForm):
    """Refuses a row the ledger would refuse (usage.ledger.refusal)."""

    class Meta:
        model = ModelUsage
        fields = "__all__"  # noqa: DJ007 (the admin's fieldsets choose)

    def clean(self):
        cleaned = super().clean()
        reason = ledger.refusal(
            self.instance.__class__(
                **{
                    name: cleaned.get(name)
                    for name in (
                        *ledger.TOKEN_FIELDS,
                        "cost",
                        "timestamp",
                    )
                }
            )
        )
        if reason:
            raise forms.ValidationError(reason)
        return cleaned


@admin.register(ModelUsage)
class ModelUsageAdmin(BigTableAdmin):
    """The ledger of LLM calls. Admins may correct a row (cost included).

    Every write goes through usage.ledger, which keeps the roll-ups in step
    in the same transaction: a new row is priced, attributed and counted; a
    change takes the old row (locked) out of the roll-ups and puts the new
    one in; a deletion takes the rows out. A row outside core.bounds is
    refused by the form with the ledger's reason.
    """

    list_display = (
        "timestamp",
        "model_name",
        "provider",
        "user",
        "organization",
        "total_tokens",
        "cost",
        "cost_source",
        "request_time_ms",
        "source",
        "chat_transcript",
    )
    list_select_related = ("user", "organization", "source")
    list_filter = (
        RecentPeriodFilter.for_field("timestamp"),
        # one local day or a range of them: the dashboards' per-day drill-down
        LocalDayFilter.for_field("timestamp"),
        ModelNameFilter,
        ProviderFilter,
        "cost_source",
        "is_streaming",
        "organization",
        RelatedIdFilter.for_field("user"),
        RelatedIdFilter.for_field("chat"),
        "source",
    )
    search_fields = ("model_name__exact",)  # usage_mu_model_ts_idx
    ordering = ("-timestamp",)  # usage_mu_ts_idx
    sortable_by = ("timestamp",)
    raw_id_fields = ("chat",)
    autocomplete_fields = ("user", "organization")
    fieldsets = (
        (None, {"fields": ("timestamp", "model_name", "provider", "is_streaming")}),
        ("Who", {"fields": ("user", "organization", "chat")}),
        (
            "Tokens and cost",
            {
                "fields": (
                    ("prompt_tokens", "completion_tokens", "total_tokens"),
                    ("cached_input_tokens", "reasoning_tokens"),
                    ("cost", "cost_source"),
                    ("query_size", "response_size", "request_time_ms"),
                )
            },
        ),
        PROVENANCE,
    )

    form = ModelUsageForm

    @admin.display(description="chat")
    def chat_transcript(self, obj):
        """The row's chat, opened as its transcript (no join: the id only)."""
        if obj.chat_id is None:
            return self.get_empty_value_display()
        return transcript_link(obj.chat_id, label=f"chat {obj.chat_id}")

    def save_model(self, request, obj, form, change):
        ledger.save_usage(obj)

    def delete_model(self, request, obj):
        ledger.delete_usage([obj])

    def delete_queryset(self, request, queryset):
        ledger.delete_usage(queryset)


@admin.register(QueryAnalytics)
class QueryAnalyticsAdmin(BigTableAdmin):
    """text-to-sql questions; tokens and cost are in the linked ledger row."""

    list_display = (
        "__str__",
        "user",
        "success",
        "row_count",
        "execution_time",
        "chart_type",
        "timestamp",
    )
    list_select_related = ("user",)
    list_filter = (
        RecentPeriodFilter.for_field("timestamp"),
        "success",
        RelatedIdFilter.for_field("user"),
        "source",
    )
    search_fields = ("query_id__exact", "question")
    ordering = ("-timestamp",)  # usage_qa_ts_idx
    sortable_by = ("timestamp",)
    raw_id_fields = ("usage",)
    autocomplete_fields = ("user",)
    pre_text_fields = ("sql_query",)


@admin.register(PerformanceMetric)
class PerformanceMetricAdmin(BigTableAdmin):
    list_display = ("metric_name", "metric_value", "metric_unit", "timestamp", "source")
    list_select_related = ("source",)
    list_filter = (RecentPeriodFilter.for_field("timestamp"), "source")
    search_fields = ("metric_name__exact",)
    # usage_perf_name_ts_idx: one metric over time, the only index of the table.
    ordering = ("metric_name", "-timestamp")
    sortable_by = ()
    pretty_json_fields = ("additional_data",)


@admin.register(ModelPrice)
class ModelPriceAdmin(BaseAdmin):
    """Prices per million tokens; the model and provider filters read them."""

    list_display = (
        "model_name",
        "provider",
        "input_per_million",
        "output_per_million",
        "cached_input_per_million",
        "reasoning_per_million",
        "effective_from",
    )
    list_filter = ("provider",)
    search_fields = ("model_name", "provider")
    ordering = ("model_name", "provider", "-effective_from")
    date_hierarchy = "effective_from"
    readonly_fields = ("created_at",)


STATE_STYLE = {
    metrics.BudgetState.OVER: "color: var(--error-fg); font-weight: bold",
    metrics.BudgetState.AT_RISK: "color: #b45309; font-weight: bold",
    metrics.BudgetState.ON_TRACK: "color: #1a7f37",
}


class BudgetStateFilter(admin.SimpleListFilter):
    """Over, at risk or on track this month (usage.metrics.budget_statuses:
    the budgets' month spend, read from the roll-ups in two queries)."""

    title = "status this month"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return metrics.BudgetState.choices

    def queryset(self, request, queryset):
        if self.value() not in metrics.BudgetState.values:
            return queryset
        statuses = metrics.budget_statuses(
            budgets=queryset.only("organization", "user", "monthly_limit")
        )
        return queryset.filter(pk__in=[s.budget.pk for s in statuses if s.state == self.value()])


@admin.register(Budget)
class BudgetAdmin(BaseAdmin):
    # Few columns, the status second: the name already says whose budget
    # it is, and a wide list hides its last columns.
    list_display = ("__str__", "state", "spent", "limit", "projected")
    list_select_related = ("organization", "user")
    list_filter = (BudgetStateFilter, "organization")
    search_fields = ("organization__name", "user__email")
    ordering = ("-monthly_limit",)
    autocomplete_fields = ("organization", "user")
    readonly_fields = ("created_at",)

    def get_changelist_instance(self, request):
        """The page's budgets with their month's status, computed for the
        page at once (two queries) rather than per row."""
        changelist = super().get_changelist_instance(request)
        statuses = {s.budget.pk: s for s in metrics.budget_statuses(budgets=changelist.result_list)}
        for budget in changelist.result_list:
            budget.status = statuses[budget.pk]
        return changelist

    @admin.display(description="Spent this month")
    def spent(self, obj):
        return figure(obj.status.spent, "money")

    @admin.display(description="Monthly limit", ordering="monthly_limit")
    def limit(self, obj):
        return figure(obj.monthly_limit, "money")

    @admin.display(description="Projected month end")
    def projected(self, obj):
        return figure(obj.status.projected, "money")

    @admin.display(description="Status")
    def state(self, obj):
        return format_html(
            '<span class="budget-state" style="white-space: nowrap; {}">{}</span>',
            STATE_STYLE[obj.status.state],
            obj.status.label,
        )


class RollupAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    """A roll-up of the ledger: view-only, rebuilt by a command."""

    list_select_related = ("user", "organization", "source")
    list_filter = (
        RecentPeriodFilter.for_field("day"),
        ModelNameFilter,
        ProviderFilter,
        "organization",
        RelatedIdFilter.for_field("user"),
        "source",
    )
    search_fields = ("model_name__exact",)
    autocomplete_fields = ("user", "organization", "source")


@admin.register(DailyUsage)
class DailyUsageAdmin(RollupAdmin):
    list_display = (
        "day",
        "model_name",
        "provider",
        "user",
        "organization",
        "source",
        "requests",
        "total_tokens",
        "cached_input_tokens",
        "reasoning_tokens",
        "cost",
        "unpriced_requests",
    )
    ordering = ("-day",)  # usage_daily_day_model_idx
    sortable_by = ("day",)


@admin.register(DailyLatency)
class DailyLatencyAdmin(RollupAdmin):
    list_display = (
        "day",
        "model_name",
        "provider",
        "bucket_range",
        "requests",
        "user",
        "organization",
        "source",
    )
    ordering = ("-day", "bucket")  # usage_lat_day_model_idx
    sortable_by = ("day",)

    @admin.display(description="request time", ordering="bucket")
    def bucket_range(self, obj):
        bounds = (0, *LATENCY_BUCKETS_MS)
        if obj.bucket >= len(LATENCY_BUCKETS_MS):
            return f"≥ {bounds[-1]:,} ms"
        return f"{bounds[obj.bucket]:,}–{bounds[obj.bucket + 1]:,} ms"


# -- spend watch -------------------------------------------------------------


class NotificationChannelForm(forms.ModelForm):
    """The webhook's signing secret is write-only: typed in, encrypted on
    save, never shown again."""

    new_secret = forms.CharField(
        label="New signing secret",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=(
            "Webhooks: the HMAC-SHA256 key of the X-Analyst-Admin-Signature header. Leave "
            "empty to keep the stored one. Encrypted at rest."
        ),
    )
    clear_secret = forms.BooleanField(label="Remove the stored secret", required=False)

    class Meta:
        model = NotificationChannel
        fields = ("name", "kind", "target", "budget_alerts", "anomaly_alerts", "is_active")

    def clean(self):
        cleaned = super().clean()
        kind, target = cleaned.get("kind"), cleaned.get("target") or ""
        if kind == NotificationChannel.Kind.WEBHOOK:
            try:
                URLValidator(schemes=["http", "https"])(target)
            except ValidationError:
                self.add_error("target", "A webhook's target is its http(s) URL.")
        elif kind == NotificationChannel.Kind.EMAIL:
            addresses = [a.strip() for a in target.split(",") if a.strip()]
            try:
                for address in addresses or [""]:
                    validate_email(address)
            except ValidationError:
                self.add_error("target", "Comma-separated e-mail addresses.")
        return cleaned

    def save(self, commit=True):
        if self.cleaned_data.get("clear_secret"):
            self.instance.set_secret("")
        elif self.cleaned_data.get("new_secret"):
            self.instance.set_secret(self.cleaned_data["new_secret"])
        return super().save(commit)


@admin.register(NotificationChannel)
class NotificationChannelAdmin(BaseAdmin):
    """Where watch_spend sends budget alerts and anomalies (Admins)."""

    form = NotificationChannelForm
    list_display = ("name", "kind", "target", "budget_alerts", "anomaly_alerts", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("name",)
    ordering = ("name",)
    secret_fields = ("encrypted_secret",)
    readonly_fields = ("secret_stored", "created_at")
    fieldsets = (
        (None, {"fields": ("name", "kind", "target", "is_active")}),
        ("Sends", {"fields": ("budget_alerts", "anomaly_alerts")}),
        ("Signing secret", {"fields": ("secret_stored", "new_secret", "clear_secret")}),
        (None, {"fields": ("created_at",)}),
    )
    changeform_view = method_decorator(sensitive_post_parameters("new_secret"))(
        BaseAdmin.changeform_view
    )

    @admin.display(description="secret stored", boolean=True)
    def secret_stored(self, obj):
        return bool(obj and obj.encrypted_secret)


# The app user admin with its spend (from the roll-ups) and its dashboard.
from usage import admin_links  # noqa: E402, F401
