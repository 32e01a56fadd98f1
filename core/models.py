"""Identity, tenancy, access and configuration.

App users (the people who chat with the analyst applications) live in
``AppUser`` and never log in here; staff accounts are ``User``.
"""

from django.contrib.auth.models import AbstractUser
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from core import crypto


class User(AbstractUser):
    """A staff account of this back office (Staff, Managers, Admins)."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"


class Source(models.Model):
    """One imported application or API client that rows come from."""

    class Kind(models.TextChoices):
        AUTO_ANALYST = "auto_analyst", "Auto-Analyst"
        DS_ML_AGENT = "ds_ml_agent", "DS-ML agent"
        TEXT_TO_SQL = "text_to_sql", "Text-to-SQL"
        AI_CHAT_V2 = "ai_chat_v2", "AI Chat v2"
        API = "api", "Ingest API"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.TextField(blank=True)
    # Where the importer stopped: per source table, highest pk / updated_at seen.
    sync_cursor = models.JSONField(default=dict, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Imported(models.Model):
    """Abstract base of every importable model: where the row came from.

    ``source_pk`` is the primary key the row had in its source database, as
    text; (source, source_pk) is unique so an import can never land twice.
    Rows created here (in the admin, by this site) have no source.
    """

    source = models.ForeignKey(
        Source,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    source_pk = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_pk"],
                condition=models.Q(source__isnull=False),
                name="%(app_label)s_%(class)s_source_pk_uniq",
            ),
        ]


class Organization(Imported):
    """A tenant: ds-ml-agent's ``org_id``."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(Imported.Meta):
        ordering = ["name"]

    def __str__(self):
        return self.name


class AppUser(Imported):
    """An end user of one of the analyst applications. Never logs in here."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        ADMIN = "admin", "Admin (in their application)"

    organization = models.ForeignKey(
        Organization,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="app_users",
    )
    username = models.CharField(max_length=150, null=True, blank=True)
    email = models.EmailField(max_length=255, null=True, blank=True)
    full_name = models.CharField(max_length=255, null=True, blank=True)
    company = models.CharField(max_length=100, null=True, blank=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    is_active = models.BooleanField(default=True)
    # The source application's password hash: stored, never shown.
    password_hash = models.CharField(max_length=255, blank=True, default="")
    token_usage = models.BigIntegerField(default=0)
    preferences = models.JSONField(null=True, blank=True)
    last_login = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta(Imported.Meta):
        verbose_name = "app user"
        ordering = ["-created_at"]
        indexes = [
            # app user changelist, newest first
            models.Index(fields=["-created_at"], name="core_appuser_created_idx"),
        ]
        constraints = [
            *Imported.Meta.constraints,
            models.UniqueConstraint(
                Lower("email"),
                name="core_appuser_email_ci_uniq",
                violation_error_message="An app user with this e-mail (in any case) exists.",
            ),
            models.UniqueConstraint(
                fields=["username"],
                name="core_appuser_username_uniq",
                condition=models.Q(username__isnull=False),
            ),
        ]

    def __str__(self):
        return (
            self.email or self.username or self.full_name or self.source_pk or f"app user {self.pk}"
        )


class ApiKey(Imported):
    """text-to-sql ``api_keys``; also authenticates the ingest API.

    The raw key is shown once at creation and never stored.
    """

    user = models.ForeignKey(
        AppUser,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
    )
    key_name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=255, unique=True)
    key_prefix = models.CharField(max_length=20)
    permissions = models.JSONField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    usage_count = models.BigIntegerField(default=0)
    # The source that rows pushed with this key land in (ingest API keys).
    ingest_source = models.ForeignKey(
        Source,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="Rows pushed through the ingest API with this key belong to this source.",
    )

    class Meta(Imported.Meta):
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.key_name} ({self.key_prefix}…)"


class RefreshToken(Imported):
    """text-to-sql ``refresh_tokens`` of app users; stored hashed."""

    user = models.ForeignKey(AppUser, on_delete=models.CASCADE, related_name="refresh_tokens")
    token_hash = models.CharField(max_length=255, unique=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_revoked = models.BooleanField(default=False)
    device_info = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(Imported.Meta):
        ordering = ["-created_at"]
        indexes = [
            # purge of expired tokens
            models.Index(fields=["expires_at"], name="core_refreshtoken_expires_idx"),
        ]

    def __str__(self):
        return f"refresh token {self.pk} of {self.user_id}"


class UserSession(Imported):
    """text-to-sql ``user_sessions``: login sessions of app users."""

    user = models.ForeignKey(AppUser, on_delete=models.CASCADE, related_name="sessions")
    session_start = models.DateTimeField(default=timezone.now)
    session_end = models.DateTimeField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(null=True, blank=True)
    queries_count = models.IntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta(Imported.Meta):
        verbose_name = "app user session"
        ordering = ["-session_start"]
        indexes = [
            # sessions per day (activity analytics)
            models.Index(fields=["session_start"], name="core_usersession_start_idx"),
        ]

    def __str__(self):
        return f"session {self.pk} of {self.user_id}"


class AuditLog(Imported):
    """One audit trail: text-to-sql ``audit_logs`` and every staff change here.

    ``user`` is the app user of an imported entry; ``actor`` the staff account
    that acted in this back office.
    """

    user = models.ForeignKey(
        AppUser,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_logs",
    )
    actor = models.ForeignKey(
        User,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_logs",
    )
    action = models.CharField(max_length=50)
    resource_type = models.CharField(max_length=100, null=True, blank=True)
    resource_id = models.CharField(max_length=100, null=True, blank=True)
    old_values = models.JSONField(null=True, blank=True)
    new_values = models.JSONField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(null=True, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)
    success = models.BooleanField(default=True)
    error_message = models.TextField(null=True, blank=True)

    class Meta(Imported.Meta):
        ordering = ["-timestamp"]
        indexes = [
            # audit log changelist, newest first, and its date hierarchy
            models.Index(fields=["-timestamp"], name="core_auditlog_ts_idx"),
            # "what happened to this object?"
            models.Index(
                fields=["resource_type", "resource_id"], name="core_auditlog_resource_idx"
            ),
        ]

    def __str__(self):
        return f"{self.action} {self.resource_type or ''} {self.resource_id or ''}".strip()


class Event(Imported):
    """text-to-sql ``events``: product analytics events."""

    event_type = models.CharField(max_length=100)
    user = models.ForeignKey(
        AppUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    event_data = models.JSONField(null=True, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(null=True, blank=True)
    session_id = models.CharField(max_length=100, null=True, blank=True)

    class Meta(Imported.Meta):
        ordering = ["-timestamp"]
        indexes = [
            # events changelist and activity per day by type
            models.Index(fields=["event_type", "-timestamp"], name="core_event_type_ts_idx"),
            models.Index(fields=["-timestamp"], name="core_event_ts_idx"),
        ]

    def __str__(self):
        return f"{self.event_type} at {self.timestamp:%Y-%m-%d %H:%M}"


class SystemConfig(Imported):
    """text-to-sql ``system_config``. Sensitive values are masked everywhere."""

    config_key = models.CharField(max_length=100, unique=True)
    config_value = models.JSONField(null=True, blank=True)
    description = models.TextField(null=True, blank=True)
    is_sensitive = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(null=True, blank=True)
    updated_by = models.CharField(max_length=255, null=True, blank=True)

    class Meta(Imported.Meta):
        verbose_name = "system setting"
        ordering = ["config_key"]

    def __str__(self):
        return self.config_key


class DatabaseConnection(Imported):
    """text-to-sql ``database_connections``. The password is never displayed.

    ``encrypted_db_password`` holds a Fernet token (core.crypto): set it with
    ``set_password``, read it with ``get_password``. An imported row keeps the
    source application's own ciphertext, which only that application can read.
    """

    user = models.ForeignKey(AppUser, on_delete=models.CASCADE, related_name="database_connections")
    connection_name = models.CharField(max_length=100)
    db_type = models.CharField(max_length=50)
    db_host = models.CharField(max_length=255, null=True, blank=True)
    db_port = models.IntegerField(null=True, blank=True)
    db_user = models.CharField(max_length=100, null=True, blank=True)
    encrypted_db_password = models.TextField(blank=True, default="")
    db_name = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(null=True, blank=True)

    # Fields holding core.crypto tokens (rotate_encryption_key re-encrypts them).
    encrypted_fields = ("encrypted_db_password",)

    class Meta(Imported.Meta):
        ordering = ["connection_name"]

    def __str__(self):
        return self.connection_name

    def set_password(self, raw_password):
        """Store ``raw_password`` encrypted; an empty one clears it."""
        self.encrypted_db_password = crypto.encrypt(raw_password) if raw_password else ""

    def get_password(self):
        """The password in clear ("" when none is stored).

        Raises ``core.crypto.DecryptionError`` for a value no configured key
        opens (an imported application's ciphertext, a retired key).
        """
        if not self.encrypted_db_password:
            return ""
        return crypto.decrypt(self.encrypted_db_password)

    @property
    def has_password(self):
        return bool(self.encrypted_db_password)


class DatabaseSchema(Imported):
    """text-to-sql ``database_schemas``: cached table descriptions."""

    database_name = models.CharField(max_length=255)
    table_name = models.CharField(max_length=255)
    schema_info = models.JSONField(null=True, blank=True)
    last_updated = models.DateTimeField(null=True, blank=True)
    row_count = models.BigIntegerField(null=True, blank=True)
    table_size = models.BigIntegerField(null=True, blank=True)

    class Meta(Imported.Meta):
        ordering = ["database_name", "table_name"]
        indexes = [
            # schema lookup by database (text-to-sql reads it this way)
            models.Index(fields=["database_name", "table_name"], name="core_dbschema_db_table_idx"),
        ]

    def __str__(self):
        return f"{self.database_name}.{self.table_name}"


class AgentTemplate(Imported):
    """auto-analyst ``agent_templates``: what an agent is told to do."""

    class VariantType(models.TextChoices):
        PLANNER = "planner", "Planner"
        INDIVIDUAL = "individual", "Individual"
        BOTH = "both", "Both"

    template_name = models.CharField(max_length=100, unique=True)
    display_name = models.CharField(max_length=200, null=True, blank=True)
    description = models.TextField()
    prompt_template = models.TextField()
    icon_url = models.URLField(max_length=500, null=True, blank=True)
    category = models.CharField(max_length=50, null=True, blank=True)
    is_premium_only = models.BooleanField(default=False)
    variant_type = models.CharField(
        max_length=20, choices=VariantType.choices, default=VariantType.INDIVIDUAL
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(Imported.Meta):
        ordering = ["template_name"]
        constraints = [
            *Imported.Meta.constraints,
            models.CheckConstraint(
                condition=models.Q(variant_type__in=["planner", "individual", "both"]),
                name="core_agenttemplate_variant_type_valid",
            ),
        ]

    def __str__(self):
        return self.display_name or self.template_name


class UserTemplatePreference(Imported):
    """auto-analyst ``user_template_preferences``: one per user and template."""

    user = models.ForeignKey(AppUser, on_delete=models.CASCADE, related_name="template_preferences")
    template = models.ForeignKey(
        AgentTemplate, on_delete=models.CASCADE, related_name="user_preferences"
    )
    is_enabled = models.BooleanField(default=True)
    usage_count = models.IntegerField(default=0, validators=[MinValueValidator(0)])
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(Imported.Meta):
        ordering = ["-created_at"]
        constraints = [
            *Imported.Meta.constraints,
            models.UniqueConstraint(
                fields=["user", "template"], name="core_usertemplatepref_user_template_uniq"
            ),
        ]
        indexes = [
            # preference changelist, newest first
            models.Index(fields=["-created_at"], name="core_usertplpref_created_idx"),
        ]

    def __str__(self):
        return f"{self.user_id} → {self.template_id}"


class QueryTemplate(Imported):
    """text-to-sql ``query_templates``: reusable question → SQL pairs."""

    user = models.ForeignKey(
        AppUser,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="query_templates",
    )
    name = models.CharField(max_length=200)
    description = models.TextField(null=True, blank=True)
    question_template = models.TextField()
    sql_template = models.TextField()
    category = models.CharField(max_length=100, null=True, blank=True)
    is_public = models.BooleanField(default=False)
    is_verified = models.BooleanField(default=False)
    usage_count = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta(Imported.Meta):
        ordering = ["name"]

    def __str__(self):
        return self.name


class TemplateVersion(models.Model):
    """One saved state of an agent template or a query template: its history.

    core.template_history writes a version on every save made through this
    site (admin form, bulk action, import, revert); ``data`` holds the values
    of the fields an admin edits (core.forms), so any two versions can be
    compared and an earlier one restored. Versions outlive their template, as
    the admin's own history does.
    """

    class Action(models.TextChoices):
        BASELINE = "baseline", "State before history began"
        CREATED = "created", "Created"
        CHANGED = "changed", "Changed"
        BULK = "bulk", "Bulk action"
        IMPORTED = "imported", "Imported"
        REVERTED = "reverted", "Reverted"

    content_type = models.ForeignKey(
        "contenttypes.ContentType", on_delete=models.CASCADE, related_name="+"
    )
    object_id = models.PositiveBigIntegerField()
    number = models.PositiveIntegerField()
    data = models.JSONField()
    action = models.CharField(max_length=20, choices=Action.choices)
    comment = models.CharField(max_length=255, blank=True, default="")
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["content_type", "object_id", "-number"]
        constraints = [
            # Also the index of the versions page: one template's versions by number.
            models.UniqueConstraint(
                fields=["content_type", "object_id", "number"],
                name="core_templateversion_number_uniq",
            ),
            models.CheckConstraint(
                condition=models.Q(number__gte=1), name="core_templateversion_number_positive"
            ),
        ]

    def __str__(self):
        return f"version {self.number} of {self.content_type_id}:{self.object_id}"
