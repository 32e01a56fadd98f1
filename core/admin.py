"""Admin of identity, tenancy, access and configuration; the site's branding.

Secrets (app users' password hashes, API-key and refresh-token hashes,
database passwords, sensitive settings) are excluded from every form and
list: see ``secret_fields`` and core.admin_tools.SecretFieldsMixin.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.debug import sensitive_post_parameters

from core import audit, template_metrics
from core.admin_tools import (
    PROVENANCE,
    AuditMixin,
    BaseAdmin,
    BigTableAdmin,
    ReadOnlyAdminMixin,
    RecentPeriodFilter,
    RelatedIdFilter,
    admin_changelist_url,
    update_and_log,
)
from core.apikeys import generate_api_key
from core.forms import (
    AgentTemplateForm,
    QueryTemplateForm,
    SensitiveSystemConfigForm,
    SystemConfigForm,
)
from core.models import (
    AgentTemplate,
    ApiKey,
    AppUser,
    AuditLog,
    DatabaseConnection,
    DatabaseSchema,
    Event,
    Organization,
    QueryTemplate,
    RefreshToken,
    Source,
    SystemConfig,
    User,
    UserSession,
    UserTemplatePreference,
)
from core.template_admin import TemplateAdminMixin
from core.template_text import highlight_placeholders, highlight_sql, placeholders

admin.site.site_header = "Analyst Admin"
admin.site.site_title = "Analyst Admin"
admin.site.index_title = "Back office"

MASK = "••••••"
# What an admin sets on an API key; the key, its prefix and hash are generated.
KEY_FIELDS = ("key_name", "user", "ingest_source", "permissions", "is_active", "expires_at")


@admin.register(User)
class UserAdmin(AuditMixin, DjangoUserAdmin):
    """Staff accounts of this back office; their rights come from groups."""

    list_display = ("username", "email", "first_name", "last_name", "is_staff", "group_names")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="groups")
    def group_names(self, obj):
        return ", ".join(sorted(group.name for group in obj.groups.all()))


@admin.register(Source)
class SourceAdmin(BaseAdmin):
    list_display = ("name", "kind", "last_synced_at", "created_at")
    list_filter = ("kind",)
    search_fields = ("name",)
    ordering = ("name",)
    readonly_fields = ("last_synced_at", "created_at")
    pretty_json_fields = ("sync_cursor",)


@admin.register(Organization)
class OrganizationAdmin(BaseAdmin):
    list_display = ("name", "slug", "source", "created_at")
    list_select_related = ("source",)
    list_filter = ("source",)
    search_fields = ("name", "slug")
    ordering = ("name",)
    prepopulated_fields = {"slug": ("name",)}


@admin.register(AppUser)
class AppUserAdmin(BigTableAdmin):
    """End users of the analyst applications; they never log in here."""

    list_display = (
        "__str__",
        "username",
        "full_name",
        "organization",
        "role",
        "is_active",
        "token_usage",
        "last_login",
        "created_at",
    )
    list_select_related = ("organization",)
    list_filter = ("role", "is_active", "organization", "source")
    search_fields = ("email", "username", "full_name")
    ordering = ("-created_at",)
    autocomplete_fields = ("organization",)
    secret_fields = ("password_hash",)
    readonly_fields = ("created_at", "updated_at", "last_login", "token_usage", "activity")
    fieldsets = (
        (None, {"fields": ("email", "username", "full_name", "company", "organization")}),
        ("Access", {"fields": ("role", "is_active", "last_login")}),
        ("Activity", {"fields": ("token_usage", "activity", "preferences")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
        PROVENANCE,
    )

    @admin.display(description="see")
    def activity(self, obj):
        if obj.pk is None:
            return self.get_empty_value_display()
        links = [
            (admin_changelist_url(model, self.admin_site.name, user__id__exact=obj.pk), label)
            for model, label in (
                # the apps above core, by label: core imports none of them
                ("chats.Chat", "chats"),
                ("usage.ModelUsage", "LLM usage"),
                ("reports.DeepAnalysisReport", "deep-analysis reports"),
                (ApiKey, "API keys"),
            )
        ]
        return format_html_join(" · ", '<a href="{}">{}</a>', links)


@admin.register(ApiKey)
class ApiKeyAdmin(BaseAdmin):
    """API keys: the raw key is generated here, shown once, never stored."""

    list_display = (
        "key_name",
        "key_prefix",
        "user",
        "ingest_source",
        "is_active",
        "expires_at",
        "last_used",
        "usage_count",
        "created_at",
    )
    list_select_related = ("user", "ingest_source")
    list_filter = ("is_active", "ingest_source", RelatedIdFilter.for_field("user"), "source")
    search_fields = ("key_name", "key_prefix__exact")
    ordering = ("-created_at",)
    autocomplete_fields = ("user", "ingest_source")
    secret_fields = ("key_hash",)
    readonly_fields = ("key_prefix", "created_at", "last_used", "usage_count")
    actions = ("revoke",)

    # The key itself is generated on save: the add form asks for the rest.
    add_fieldsets = ((None, {"fields": KEY_FIELDS}),)
    fieldsets = (
        (None, {"fields": KEY_FIELDS}),
        ("Usage", {"fields": ("key_prefix", "created_at", "last_used", "usage_count")}),
        PROVENANCE,
    )

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_pretty_json_fields(self, request, obj=None):
        # An imported key's permissions are the source application's.
        return ("permissions",) if obj is not None and obj.source_id else ()

    def save_model(self, request, obj, form, change):
        if not change:
            obj._raw_key, obj.key_prefix, obj.key_hash = generate_api_key()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        raw_key = getattr(obj, "_raw_key", None)
        if raw_key:
            message = format_html(
                "The new API key is <code>{}</code> — copy it now, it will not be shown again.",
                raw_key,
            )
            self.message_user(request, message, messages.WARNING)
        return super().response_add(request, obj, post_url_continue)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        active = queryset.filter(is_active=True)
        count = update_and_log(request, active, {"is_active": False}, action="revoke_api_key")
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)


@admin.register(RefreshToken)
class RefreshTokenAdmin(BigTableAdmin):
    """App users' refresh tokens. Issued by the applications, never here."""

    list_display = (
        "__str__",
        "user",
        "is_active",
        "is_revoked",
        "expires_at",
        "revoked_at",
        "created_at",
    )
    list_select_related = ("user",)
    list_filter = ("is_active", "is_revoked", RelatedIdFilter.for_field("user"), "source")
    search_fields = ("user__email__exact",)
    ordering = ("-expires_at",)  # core_refreshtoken_expires_idx
    sortable_by = ("expires_at",)
    autocomplete_fields = ("user",)
    secret_fields = ("token_hash",)
    readonly_fields = ("created_at",)
    pretty_json_fields = ("device_info",)
    actions = ("revoke",)

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        changes = {"is_revoked": True, "is_active": False, "revoked_at": timezone.now()}
        live = queryset.filter(is_revoked=False)
        count = update_and_log(request, live, changes, action="revoke_refresh_token")
        self.message_user(request, f"Revoked {count} refresh token(s).", messages.SUCCESS)


@admin.register(UserSession)
class UserSessionAdmin(BigTableAdmin):
    list_display = (
        "__str__",
        "user",
        "session_start",
        "session_end",
        "ip_address",
        "queries_count",
        "is_active",
    )
    list_select_related = ("user",)
    list_filter = (
        RecentPeriodFilter.for_field("session_start"),
        "is_active",
        RelatedIdFilter.for_field("user"),
        "source",
    )
    search_fields = ("ip_address__exact",)
    ordering = ("-session_start",)  # core_usersession_start_idx
    sortable_by = ("session_start",)
    autocomplete_fields = ("user",)


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    """The one audit trail: read-only for everyone, superusers included."""

    list_display = (
        "timestamp",
        "action",
        "resource_type",
        "resource_id",
        "actor",
        "user",
        "success",
        "ip_address",
    )
    list_select_related = ("actor", "user")
    list_filter = (
        RecentPeriodFilter.for_field("timestamp"),
        "success",
        "actor",  # staff accounts: a small table
        RelatedIdFilter.for_field("user"),
        "source",
    )
    # "What happened to this object?" uses core_auditlog_resource_idx.
    search_fields = ("resource_type__exact", "resource_id__exact", "action__exact")
    ordering = ("-timestamp",)  # core_auditlog_ts_idx
    sortable_by = ("timestamp",)
    autocomplete_fields = ("user", "actor")
    pretty_json_fields = ("old_values", "new_values")


@admin.register(Event)
class EventAdmin(BigTableAdmin):
    list_display = ("timestamp", "event_type", "user", "session_id", "ip_address")
    list_select_related = ("user",)
    list_filter = (
        RecentPeriodFilter.for_field("timestamp"),
        RelatedIdFilter.for_field("user"),
        "source",
    )
    # core_event_type_ts_idx serves an exact event type.
    search_fields = ("event_type__exact", "session_id__exact")
    ordering = ("-timestamp",)  # core_event_ts_idx
    sortable_by = ("timestamp",)
    autocomplete_fields = ("user",)
    pretty_json_fields = ("event_data",)


@admin.register(SystemConfig)
class SystemConfigAdmin(BaseAdmin):
    """Settings. A sensitive value shows as a mask and is only ever replaced.

    JSON is validated on save (core.forms.JSONValueField). Every addition,
    change and deletion lands in the audit trail with the old and new values
    of the fields that changed; the value is "••••••" there whenever the
    setting is sensitive before or after the change.
    """

    list_display = ("config_key", "value", "is_sensitive", "updated_at", "updated_by")
    list_filter = ("is_sensitive", "source")
    search_fields = ("config_key", "description")
    ordering = ("config_key",)
    # Blocks URL lookups on the value; excluded from the form when sensitive.
    secret_fields = ("config_value",)
    readonly_fields = ("current_value", "created_at", "updated_at", "updated_by")
    # The fields whose old and new values the audit trail records.
    audited_fields = ("config_key", "config_value", "description", "is_sensitive")

    # Keep a typed secret out of error reports, as Django's UserAdmin does.
    changeform_view = method_decorator(sensitive_post_parameters("new_value", "config_value"))(
        BaseAdmin.changeform_view
    )

    def get_secret_fields(self, request, obj=None):
        return self.secret_fields if self._sensitive(obj) else ()

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = SensitiveSystemConfigForm if self._sensitive(obj) else SystemConfigForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if self._sensitive(obj):
            value = ("current_value", "new_value", "is_sensitive")
        else:
            value = ("config_value", "is_sensitive")
        main = (None, {"fields": ("config_key", *value, "description")})
        if obj is None:
            return [main]
        return [
            main,
            ("Changes", {"fields": ("created_at", "updated_at", "updated_by")}),
            PROVENANCE,
        ]

    def save_model(self, request, obj, form, change):
        if change:
            # The stored values, for the audit entry written by log_change.
            obj._audit_before = (
                SystemConfig.objects.filter(pk=obj.pk).values(*self.audited_fields).first()
            )
        obj.updated_at = timezone.now()
        obj.updated_by = request.user.get_username()
        super().save_model(request, obj, form, change)

    # The audit entries replace AuditMixin's (which name fields, not values).

    def audit_change(self, request, obj, message):
        before = getattr(obj, "_audit_before", None) or {}
        after = self._audit_values(obj)
        changed = [name for name in self.audited_fields if before.get(name) != after[name]]
        sensitive = obj.is_sensitive or bool(before.get("is_sensitive"))
        audit.record(
            request,
            "admin_change",
            obj,
            old=self._masked({name: before.get(name) for name in changed}, sensitive),
            new=self._masked({name: after[name] for name in changed}, sensitive),
        )

    def log_addition(self, request, obj, message):
        entry = super(AuditMixin, self).log_addition(request, obj, message)
        new = self._masked(self._audit_values(obj), obj.is_sensitive)
        audit.record(request, "admin_add", obj, new=new)
        return entry

    def log_deletions(self, request, queryset):
        entries = super(AuditMixin, self).log_deletions(request, queryset)
        for obj in queryset:
            old = self._masked(self._audit_values(obj), obj.is_sensitive)
            audit.record(request, "admin_delete", obj, old=old)
        return entries

    def _audit_values(self, obj):
        return {name: getattr(obj, name) for name in self.audited_fields}

    @staticmethod
    def _masked(values, sensitive):
        if sensitive and "config_value" in values:
            return {**values, "config_value": MASK}
        return values

    @staticmethod
    def _sensitive(obj):
        return obj is not None and obj.is_sensitive

    @admin.display(description="value")
    def value(self, obj):
        if obj.is_sensitive:
            return MASK
        text = json.dumps(obj.config_value, ensure_ascii=False)
        return text if len(text) <= 80 else text[:79] + "…"

    @admin.display(description="current value")
    def current_value(self, obj):
        return MASK


class DatabaseConnectionForm(forms.ModelForm):
    """The password is write-only: typed in, encrypted on save, never shown
    again, not even sent back in a form with errors."""

    new_password = forms.CharField(
        label="New password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored password. It is encrypted at rest.",
    )
    clear_password = forms.BooleanField(
        label="Remove the stored password",
        required=False,
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("new_password") and cleaned.get("clear_password"):
            self.add_error("clear_password", "Either type a new password or remove it, not both.")
        return cleaned

    def save(self, commit=True):
        if self.cleaned_data.get("clear_password"):
            self.instance.set_password("")
        elif self.cleaned_data.get("new_password"):
            self.instance.set_password(self.cleaned_data["new_password"])
        return super().save(commit)


@admin.register(DatabaseConnection)
class DatabaseConnectionAdmin(BaseAdmin):
    """App users' database connections. The password is write-only: it is
    encrypted on save (core.crypto) and no page shows it or its ciphertext."""

    form = DatabaseConnectionForm
    list_display = ("connection_name", "user", "db_type", "db_host", "db_port", "db_name")
    list_select_related = ("user",)
    list_filter = ("db_type", RelatedIdFilter.for_field("user"), "source")
    search_fields = ("connection_name", "db_host", "db_name")
    ordering = ("connection_name",)
    autocomplete_fields = ("user",)
    secret_fields = ("encrypted_db_password",)
    readonly_fields = ("password_stored", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("connection_name", "user", "db_type")}),
        ("Server", {"fields": ("db_host", "db_port", "db_name", "db_user")}),
        ("Password", {"fields": ("password_stored", "new_password", "clear_password")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
        PROVENANCE,
    )

    # Keep the typed password out of error reports, as Django's UserAdmin does.
    changeform_view = method_decorator(sensitive_post_parameters("new_password"))(
        BaseAdmin.changeform_view
    )

    def save_model(self, request, obj, form, change):
        if change:
            obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)

    @admin.display(description="password stored", boolean=True)
    def password_stored(self, obj):
        return obj.has_password


@admin.register(DatabaseSchema)
class DatabaseSchemaAdmin(BaseAdmin):
    list_display = ("__str__", "row_count", "table_size", "last_updated")
    list_filter = ("source",)
    search_fields = ("database_name", "table_name")
    ordering = ("database_name", "table_name")  # core_dbschema_db_table_idx
    pretty_json_fields = ("schema_info",)


@admin.register(AgentTemplate)
class AgentTemplateAdmin(TemplateAdminMixin, BaseAdmin):
    """Agent templates: validated edits (core.forms), versions with diff and
    revert, export and import (core.template_admin), a preview of the prompt
    and its usage from the users' preferences."""

    form = AgentTemplateForm
    export_section = "agent_templates"
    list_display = (
        "template_name",
        "active",
        "premium_only",
        "users_enabled",
        "total_usage",
        "last_used",
    )
    list_filter = ("variant_type", "is_active", "is_premium_only", "category", "source")
    search_fields = ("template_name", "display_name", "description")
    ordering = ("template_name",)
    readonly_fields = (
        "prompt_preview",
        "users_enabled",
        "total_usage",
        "last_used",
        "created_at",
    )
    actions = (
        "activate",
        "deactivate",
        "mark_premium_only",
        "unmark_premium_only",
        "export_json",
        "export_yaml",
    )
    fieldsets = (
        (
            None,
            {"fields": ("template_name", "display_name", "description", "category", "icon_url")},
        ),
        ("Prompt", {"fields": ("variant_type", "prompt_template", "prompt_preview")}),
        ("Availability", {"fields": ("is_active", "is_premium_only")}),
        ("Usage", {"fields": ("users_enabled", "total_usage", "last_used", "created_at")}),
        PROVENANCE,
    )

    class Media:
        css = {"all": ("css/template-admin.css",)}

    def get_queryset(self, request):
        # Usage columns in the same query as the rows: no query per template.
        return template_metrics.with_usage(super().get_queryset(request))

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            # Nothing to preview or count yet.
            return [
                (None, {"fields": self.fieldsets[0][1]["fields"]}),
                ("Prompt", {"fields": ("variant_type", "prompt_template")}),
                ("Availability", {"fields": ("is_active", "is_premium_only")}),
            ]
        return super().get_fieldsets(request, obj)

    @admin.display(description="preview")
    def prompt_preview(self, obj):
        names = placeholders(obj.prompt_template)
        if names:
            listed = format_html_join(" ", "<code>{{{}}}</code>", ((name,) for name in names))
            legend = format_html(
                '<p class="placeholder-legend">Placeholders ({}): {}</p>', len(names), listed
            )
        else:
            legend = format_html('<p class="placeholder-legend">{}</p>', "No placeholders.")
        return format_html(
            '<pre class="template-preview">{}</pre>{}',
            highlight_placeholders(obj.prompt_template),
            legend,
        )

    # Short headers, so the list fits beside its filters (variant type and
    # category are filters; the display name shows on the change page).

    @admin.display(description="active", boolean=True, ordering="is_active")
    def active(self, obj):
        return obj.is_active

    @admin.display(description="premium", boolean=True, ordering="is_premium_only")
    def premium_only(self, obj):
        return obj.is_premium_only

    @admin.display(description="users enabled", ordering="users_enabled")
    def users_enabled(self, obj):
        url = admin_changelist_url(
            UserTemplatePreference,
            self.admin_site.name,
            template__id__exact=obj.pk,
            is_enabled__exact=1,
        )
        return format_html('<a href="{}">{}</a>', url, f"{obj.users_enabled:,}")

    @admin.display(description="total usage", ordering="total_usage")
    def total_usage(self, obj):
        return f"{obj.total_usage:,}"

    @admin.display(description="last used", ordering="last_used")
    def last_used(self, obj):
        # Formatted here: the change page shows a callable's value as it is.
        if obj.last_used is None:
            return "never"
        return timezone.localtime(obj.last_used).strftime("%Y-%m-%d %H:%M")

    @admin.action(description="Activate selected agent templates", permissions=["change"])
    def activate(self, request, queryset):
        self.set_flag(request, queryset, "is_active", True, "activate_agent_template", "Activated")

    @admin.action(description="Deactivate selected agent templates", permissions=["change"])
    def deactivate(self, request, queryset):
        self.set_flag(
            request, queryset, "is_active", False, "deactivate_agent_template", "Deactivated"
        )

    @admin.action(description="Mark selected as premium-only", permissions=["change"])
    def mark_premium_only(self, request, queryset):
        self.set_flag(
            request,
            queryset,
            "is_premium_only",
            True,
            "mark_premium_agent_template",
            "Marked premium-only",
        )

    @admin.action(description="Make selected available to every plan", permissions=["change"])
    def unmark_premium_only(self, request, queryset):
        self.set_flag(
            request,
            queryset,
            "is_premium_only",
            False,
            "unmark_premium_agent_template",
            "Made available to every plan",
        )


@admin.register(UserTemplatePreference)
class UserTemplatePreferenceAdmin(BigTableAdmin):
    list_display = ("user", "template", "is_enabled", "usage_count", "last_used_at", "created_at")
    list_select_related = ("user", "template")
    list_filter = ("is_enabled", "template", RelatedIdFilter.for_field("user"), "source")
    search_fields = ("user__email__exact",)
    ordering = ("-created_at",)
    autocomplete_fields = ("user", "template")
    readonly_fields = ("created_at",)


@admin.register(QueryTemplate)
class QueryTemplateAdmin(TemplateAdminMixin, BaseAdmin):
    """Query templates: question and SQL with the same placeholders
    (core.forms), SQL highlighted by Pygments, verified and public flags,
    versions, export and import (core.template_admin)."""

    form = QueryTemplateForm
    export_section = "query_templates"
    list_display = (
        "name",
        "category",
        "user",
        "is_public",
        "is_verified",
        "usage_count",
        "updated_at",
    )
    list_select_related = ("user",)
    list_filter = ("is_public", "is_verified", "category", "source")
    search_fields = ("name", "description", "question_template")
    ordering = ("name",)
    autocomplete_fields = ("user",)
    readonly_fields = ("question_preview", "sql_preview", "usage_count", "created_at", "updated_at")
    actions = (
        "mark_verified",
        "mark_unverified",
        "make_public",
        "make_private",
        "export_json",
        "export_yaml",
    )
    fieldsets = (
        (None, {"fields": ("name", "description", "category", "user")}),
        (
            "Template",
            {"fields": ("question_template", "question_preview", "sql_template", "sql_preview")},
        ),
        ("Flags", {"fields": ("is_public", "is_verified")}),
        ("Usage", {"fields": ("usage_count", "created_at", "updated_at")}),
        PROVENANCE,
    )

    class Media:
        css = {"all": ("css/template-admin.css", "css/sql-highlight.css")}

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [
                (None, {"fields": ("name", "description", "category", "user")}),
                ("Template", {"fields": ("question_template", "sql_template")}),
                ("Flags", {"fields": ("is_public", "is_verified")}),
            ]
        return super().get_fieldsets(request, obj)

    @admin.display(description="question preview")
    def question_preview(self, obj):
        return format_html(
            '<pre class="template-preview">{}</pre>',
            highlight_placeholders(obj.question_template),
        )

    @admin.display(description="SQL, highlighted")
    def sql_preview(self, obj):
        return highlight_sql(obj.sql_template)

    @admin.action(description="Mark selected as verified", permissions=["change"])
    def mark_verified(self, request, queryset):
        self.set_flag(
            request, queryset, "is_verified", True, "verify_query_template", "Marked verified"
        )

    @admin.action(description="Mark selected as not verified", permissions=["change"])
    def mark_unverified(self, request, queryset):
        self.set_flag(
            request,
            queryset,
            "is_verified",
            False,
            "unverify_query_template",
            "Marked not verified",
        )

    @admin.action(description="Make selected public", permissions=["change"])
    def make_public(self, request, queryset):
        self.set_flag(request, queryset, "is_public", True, "publish_query_template", "Made public")

    @admin.action(description="Make selected private", permissions=["change"])
    def make_private(self, request, queryset):
        self.set_flag(
            request, queryset, "is_public", False, "unpublish_query_template", "Made private"
        )
