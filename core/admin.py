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
from django.utils.html import format_html, format_html_join

from chats.models import Chat
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
from reports.models import DeepAnalysisReport
from usage.models import ModelUsage

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
                (Chat, "chats"),
                (ModelUsage, "LLM usage"),
                (DeepAnalysisReport, "deep-analysis reports"),
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


class SystemConfigForm(forms.ModelForm):
    """Add form, and change form of a non-sensitive setting: the value is
    edited as JSON. A form sent back with errors does not echo a value
    marked sensitive."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        sensitive = self.add_prefix("is_sensitive")
        if self.is_bound and self.data.get(sensitive) and "config_value" in self.fields:
            self.fields["config_value"].widget = forms.PasswordInput(render_value=False)


class SensitiveSystemConfigForm(forms.ModelForm):
    """Change form of a sensitive setting: the value is write-only."""

    new_value = forms.CharField(
        label="New value",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=(
            "Leave empty to keep the current value. Valid JSON (123, true, "
            '{"a": 1}, "text") is stored as JSON, anything else as a string.'
        ),
    )

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("is_sensitive") and not self._new_value():
            self.add_error(
                "is_sensitive",
                "To make this setting non-sensitive, enter its new value: "
                "the current one is never shown.",
            )
        return cleaned

    def _new_value(self):
        value = self.cleaned_data.get("new_value") or ""
        return value if value.strip() else ""

    def save(self, commit=True):
        if raw := self._new_value():
            try:
                self.instance.config_value = json.loads(raw)
            except ValueError:
                self.instance.config_value = raw
        return super().save(commit)


@admin.register(SystemConfig)
class SystemConfigAdmin(BaseAdmin):
    """Settings. A sensitive value shows as a mask and is only ever replaced."""

    list_display = ("config_key", "value", "is_sensitive", "updated_at", "updated_by")
    list_filter = ("is_sensitive", "source")
    search_fields = ("config_key", "description")
    ordering = ("config_key",)
    # Blocks URL lookups on the value; excluded from the form when sensitive.
    secret_fields = ("config_value",)
    readonly_fields = ("current_value", "created_at", "updated_at", "updated_by")

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
        obj.updated_at = timezone.now()
        obj.updated_by = request.user.get_username()
        super().save_model(request, obj, form, change)

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


@admin.register(DatabaseConnection)
class DatabaseConnectionAdmin(BaseAdmin):
    """App users' database connections. The password is never displayed."""

    list_display = ("connection_name", "user", "db_type", "db_host", "db_port", "db_name")
    list_select_related = ("user",)
    list_filter = ("db_type", RelatedIdFilter.for_field("user"), "source")
    search_fields = ("connection_name", "db_host", "db_name")
    ordering = ("connection_name",)
    autocomplete_fields = ("user",)
    secret_fields = ("encrypted_db_password",)
    readonly_fields = ("password_stored", "created_at", "updated_at")

    @admin.display(description="password stored", boolean=True)
    def password_stored(self, obj):
        return bool(obj.encrypted_db_password)


@admin.register(DatabaseSchema)
class DatabaseSchemaAdmin(BaseAdmin):
    list_display = ("__str__", "row_count", "table_size", "last_updated")
    list_filter = ("source",)
    search_fields = ("database_name", "table_name")
    ordering = ("database_name", "table_name")  # core_dbschema_db_table_idx
    pretty_json_fields = ("schema_info",)


@admin.register(AgentTemplate)
class AgentTemplateAdmin(BaseAdmin):
    list_display = (
        "template_name",
        "display_name",
        "category",
        "variant_type",
        "is_premium_only",
        "is_active",
        "created_at",
    )
    list_filter = ("variant_type", "is_active", "is_premium_only", "category", "source")
    search_fields = ("template_name", "display_name", "description")
    ordering = ("template_name",)
    readonly_fields = ("preferences", "created_at")

    @admin.display(description="user preferences")
    def preferences(self, obj):
        if obj.pk is None:
            return self.get_empty_value_display()
        url = admin_changelist_url(
            UserTemplatePreference, self.admin_site.name, template__id__exact=obj.pk
        )
        return format_html('<a href="{}">{}</a>', url, obj.user_preferences.count())


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
class QueryTemplateAdmin(BaseAdmin):
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
    readonly_fields = ("usage_count", "created_at", "updated_at")
