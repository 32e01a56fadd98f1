"""factory_boy factories, one per model of the four apps.

Other apps' tests import from here. Defaults make a valid row with as few
related rows as possible; unique fields use sequences. Imported models
default to "created here" (no source); the ``imported`` trait gives a row a
source and a source_pk, as an importer would.
"""

import datetime as dt
import hashlib
from decimal import Decimal

import factory
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from chats.feedback_rollups import FeedbackRollup
from chats.models import Chat, CodeExecution, Message, MessageFeedback, UploadedFile
from chats.rollups import ExecutionRollup
from core import template_history
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
    TemplateVersion,
    User,
    UserSession,
    UserTemplatePreference,
)
from reports.models import AnalysisResult, DeepAnalysisReport
from usage import ledger
from usage.models import (
    Budget,
    DailyLatency,
    DailyModelLatency,
    DailyModelUsage,
    DailyTotal,
    DailyTotalLatency,
    DailyUsage,
    Delivery,
    ModelPrice,
    ModelUsage,
    Notification,
    NotificationChannel,
    PerformanceMetric,
    QueryAnalytics,
    UserUsage,
)


def _sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source

    name = factory.Sequence(lambda n: f"source-{n}")
    kind = Source.Kind.AUTO_ANALYST


class ImportedFactory(factory.django.DjangoModelFactory):
    """Base of the factories of ``core.models.Imported`` subclasses."""

    class Meta:
        abstract = True

    class Params:
        imported = factory.Trait(
            source=factory.SubFactory(SourceFactory),
            source_pk=factory.Sequence(lambda n: str(1000 + n)),
        )

    source = None
    source_pk = ""


class OrganizationFactory(ImportedFactory):
    class Meta:
        model = Organization

    slug = factory.Sequence(lambda n: f"org-{n}")
    name = factory.Sequence(lambda n: f"Organisation {n}")


class AppUserFactory(ImportedFactory):
    class Meta:
        model = AppUser

    organization = None
    username = factory.Sequence(lambda n: f"appuser{n}")
    email = factory.Sequence(lambda n: f"appuser{n}@example.com")
    full_name = factory.Sequence(lambda n: f"App User {n}")
    company = "Acme Analytics"
    password_hash = factory.Sequence(lambda n: f"$2b$12$apphash{n:04d}" + "x" * 40)


class ApiKeyFactory(ImportedFactory):
    class Meta:
        model = ApiKey

    user = factory.SubFactory(AppUserFactory)
    key_name = factory.Sequence(lambda n: f"key {n}")
    key_hash = factory.Sequence(lambda n: _sha256(f"api-key-{n}"))
    key_prefix = factory.Sequence(lambda n: f"ak_{n:05d}")
    permissions = factory.LazyFunction(lambda: ["ingest:usage"])


class RefreshTokenFactory(ImportedFactory):
    class Meta:
        model = RefreshToken

    user = factory.SubFactory(AppUserFactory)
    token_hash = factory.Sequence(lambda n: _sha256(f"refresh-token-{n}"))
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=30))
    device_info = factory.LazyFunction(lambda: {"os": "macOS", "browser": "Firefox"})


class UserSessionFactory(ImportedFactory):
    class Meta:
        model = UserSession

    user = factory.SubFactory(AppUserFactory)
    ip_address = "203.0.113.7"
    user_agent = "Mozilla/5.0 (X11; Linux x86_64)"
    queries_count = 3


class AuditLogFactory(ImportedFactory):
    class Meta:
        model = AuditLog

    user = None
    action = "update"
    resource_type = "chat"
    resource_id = factory.Sequence(str)
    old_values = factory.LazyFunction(lambda: {"title": "Old"})
    new_values = factory.LazyFunction(lambda: {"title": "New"})
    ip_address = "198.51.100.4"


class EventFactory(ImportedFactory):
    class Meta:
        model = Event

    event_type = "query_submitted"
    user = factory.SubFactory(AppUserFactory)
    event_data = factory.LazyFunction(lambda: {"length": 42})
    session_id = factory.Sequence(lambda n: f"sess-{n}")


class SystemConfigFactory(ImportedFactory):
    class Meta:
        model = SystemConfig

    config_key = factory.Sequence(lambda n: f"setting_{n}")
    config_value = factory.LazyFunction(lambda: {"enabled": True})
    description = "A setting"
    is_sensitive = False


class DatabaseConnectionFactory(ImportedFactory):
    class Meta:
        model = DatabaseConnection

    user = factory.SubFactory(AppUserFactory)
    connection_name = factory.Sequence(lambda n: f"warehouse {n}")
    db_type = "postgresql"
    db_host = "db.example.com"
    db_port = 5432
    db_user = "analyst"
    encrypted_db_password = factory.Sequence(lambda n: f"gAAAAAencrypted{n:04d}")
    db_name = "sales"


class DatabaseSchemaFactory(ImportedFactory):
    class Meta:
        model = DatabaseSchema

    database_name = "sales"
    table_name = factory.Sequence(lambda n: f"table_{n}")
    schema_info = factory.LazyFunction(lambda: {"columns": [{"name": "id", "type": "int"}]})
    row_count = 1000
    table_size = 65536


class AgentTemplateFactory(ImportedFactory):
    class Meta:
        model = AgentTemplate

    template_name = factory.Sequence(lambda n: f"agent_{n}")
    display_name = factory.Sequence(lambda n: f"Agent {n}")
    description = "Cleans and summarises a data set."
    prompt_template = "You are a careful data analyst. {goal}"
    category = "Data Manipulation"
    variant_type = AgentTemplate.VariantType.INDIVIDUAL


class UserTemplatePreferenceFactory(ImportedFactory):
    class Meta:
        model = UserTemplatePreference

    user = factory.SubFactory(AppUserFactory)
    template = factory.SubFactory(AgentTemplateFactory)
    usage_count = 2


class QueryTemplateFactory(ImportedFactory):
    class Meta:
        model = QueryTemplate

    user = None
    name = factory.Sequence(lambda n: f"Query template {n}")
    question_template = "Top {n} customers by revenue"
    sql_template = "SELECT customer, SUM(amount) FROM orders GROUP BY 1 ORDER BY 2 DESC LIMIT {n}"
    category = "sales"


class UserFactory(factory.django.DjangoModelFactory):
    """A staff account. ``UserFactory(groups=["Staff"])`` puts it in groups.

    The password is unusable (no hashing cost): tests log in with
    ``client.force_login``.
    """

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.Sequence(lambda n: f"staff{n}@example.com")
    is_staff = True
    password = factory.LazyFunction(lambda: make_password(None))

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create and extracted:
            add_to_groups(self, *extracted)


def add_to_groups(user, *names):
    """Put a staff account in the groups (created by migration) named."""
    groups = list(Group.objects.filter(name__in=names))
    missing = set(names) - {g.name for g in groups}
    assert not missing, f"groups missing: {sorted(missing)}"
    user.groups.add(*groups)
    return user


class ChatFactory(ImportedFactory):
    class Meta:
        model = Chat

    user = factory.SubFactory(AppUserFactory)
    organization = None
    title = factory.Sequence(lambda n: f"Chat {n}")
    metadata = factory.LazyFunction(lambda: {"client": "web"})


class MessageFactory(ImportedFactory):
    class Meta:
        model = Message

    chat = factory.SubFactory(ChatFactory)
    role = Message.Role.USER
    content = factory.Sequence(lambda n: f"Message {n}: what were sales last month?")
    sequence_number = factory.Sequence(int)


class MessageFeedbackFactory(ImportedFactory):
    class Meta:
        model = MessageFeedback

    message = factory.SubFactory(MessageFactory, role=Message.Role.ASSISTANT)
    rating = 4
    model_name = "gpt-4o-mini"
    model_provider = "openai"


class CodeExecutionFactory(ImportedFactory):
    class Meta:
        model = CodeExecution

    message = factory.SubFactory(MessageFactory, role=Message.Role.ASSISTANT)
    chat = factory.SelfAttribute("message.chat")
    user = factory.SelfAttribute("message.chat.user")
    initial_code = "df = load()\nprint(df.describe())"
    latest_code = "df = load()\nprint(df.describe(include='all'))"
    is_successful = True
    output = "count 10"
    model_provider = "openai"
    model_name = "gpt-4o-mini"
    failed_agents = factory.LazyFunction(list)
    error_messages = factory.LazyFunction(list)


class UploadedFileFactory(ImportedFactory):
    class Meta:
        model = UploadedFile

    chat = factory.SubFactory(ChatFactory)
    filename = factory.Sequence(lambda n: f"data_{n}.csv")
    file_path = factory.LazyAttribute(lambda o: f"/uploads/{o.filename}")
    file_type = "text/csv"
    file_size = 2048
    file_metadata = factory.LazyFunction(lambda: {"rows": 10})


class ModelUsageFactory(ImportedFactory):
    """A ledger row of a known user, no chat; organisation copied from the user."""

    class Meta:
        model = ModelUsage

    user = factory.SubFactory(AppUserFactory)
    chat = None
    organization = factory.LazyAttribute(lambda o: o.user.organization if o.user else None)
    model_name = "gpt-4o-mini"
    provider = "openai"
    prompt_tokens = 1000
    completion_tokens = 500
    total_tokens = factory.LazyAttribute(lambda o: o.prompt_tokens + o.completion_tokens)
    cost = Decimal("0.00045000")
    cost_source = ModelUsage.CostSource.REPORTED
    request_time_ms = 850

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # Through the ledger, so the roll-ups follow (usage.ledger).
        return ledger.add_usage([model_class(*args, **kwargs)])[0]


class QueryAnalyticsFactory(ImportedFactory):
    class Meta:
        model = QueryAnalytics

    usage = factory.SubFactory(ModelUsageFactory)
    user = factory.LazyAttribute(lambda o: o.usage.user if o.usage else None)
    query_id = factory.Sequence(lambda n: f"q-{n}")
    question = factory.Sequence(lambda n: f"How many orders in week {n}?")
    sql_query = "SELECT COUNT(*) FROM orders"
    execution_time = 0.12
    row_count = 1
    success = True
    chart_type = "bar"


class PerformanceMetricFactory(ImportedFactory):
    class Meta:
        model = PerformanceMetric

    metric_name = "query_latency"
    metric_value = 120.5
    metric_unit = "ms"
    additional_data = factory.LazyFunction(lambda: {"p": 95})


class ModelPriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelPrice

    model_name = "gpt-4o-mini"
    provider = "openai"
    input_per_million = Decimal("0.150000")
    output_per_million = Decimal("0.600000")
    effective_from = factory.Sequence(lambda n: dt.date(2024, 1, 1) + dt.timedelta(days=n))


class BudgetFactory(factory.django.DjangoModelFactory):
    """An organisation's budget; pass ``organization=None, user=…`` for a user's."""

    class Meta:
        model = Budget

    organization = factory.SubFactory(OrganizationFactory)
    user = None
    monthly_limit = Decimal("500.00")
    alert_threshold = Decimal("0.800")


class NotificationChannelFactory(factory.django.DjangoModelFactory):
    """An e-mail channel of the spend watch."""

    class Meta:
        model = NotificationChannel

    name = factory.Sequence(lambda n: f"channel {n}")
    kind = "email"
    target = factory.Sequence(lambda n: f"alerts{n}@example.com")


class NotificationFactory(factory.django.DjangoModelFactory):
    """A budget threshold the spend watch found (and sends once)."""

    class Meta:
        model = Notification

    kind = "budget"
    key = factory.Sequence(lambda n: f"budget:{n}")
    period = dt.date(2024, 1, 1)
    threshold = "80"
    subject = factory.Sequence(lambda n: f"Budget {n}: 80 % spent")
    body = "80 % of the monthly limit is spent."
    payload = factory.LazyFunction(lambda: {"share": 0.8})


class DeliveryFactory(factory.django.DjangoModelFactory):
    """A notification sent on a channel."""

    class Meta:
        model = Delivery

    notification = factory.SubFactory(NotificationFactory)
    channel = factory.SubFactory(NotificationChannelFactory)
    kind = "email"
    recipient = factory.LazyAttribute(lambda o: o.channel.target if o.channel else "x@example.com")
    status = "sent"
    attempts = 1


class RollupRowFactory(factory.django.DjangoModelFactory):
    """A roll-up row planted as is, with no ledger rows behind it (the pages
    and the permission matrix need one of each model): written through
    ``ledger.unchecked()``, since roll-ups otherwise change only with the ledger."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with ledger.unchecked():
            return super()._create(model_class, *args, **kwargs)


class UsageSumsFactory(RollupRowFactory):
    """The summed columns every usage roll-up has."""

    class Meta:
        abstract = True

    day = factory.Sequence(lambda n: dt.date(2024, 1, 1) + dt.timedelta(days=n))
    requests = 3
    prompt_tokens = 3000
    completion_tokens = 1500
    total_tokens = 4500
    cost = Decimal("0.00135000")
    timed_requests = 3
    request_time_ms_sum = 2550


class DailyUsageFactory(UsageSumsFactory):
    class Meta:
        model = DailyUsage

    model_name = "gpt-4o-mini"
    provider = "openai"


class DailyLatencyFactory(RollupRowFactory):
    class Meta:
        model = DailyLatency

    day = factory.Sequence(lambda n: dt.date(2024, 1, 1) + dt.timedelta(days=n))
    model_name = "gpt-4o-mini"
    provider = "openai"
    bucket = 7  # 1000–1500 ms
    requests = 3


class DailyModelUsageFactory(DailyUsageFactory):
    class Meta:
        model = DailyModelUsage


class DailyModelLatencyFactory(DailyLatencyFactory):
    class Meta:
        model = DailyModelLatency


class DailyTotalFactory(DailyUsageFactory):
    class Meta:
        model = DailyTotal


class DailyTotalLatencyFactory(DailyLatencyFactory):
    class Meta:
        model = DailyTotalLatency


class UserUsageFactory(UsageSumsFactory):
    class Meta:
        model = UserUsage

    span = "day"


class TemplateVersionFactory(factory.django.DjangoModelFactory):
    """Version 1 of an agent template, as core.template_history records it."""

    class Meta:
        model = TemplateVersion

    class Params:
        template = factory.SubFactory(AgentTemplateFactory)

    content_type = factory.LazyAttribute(lambda o: ContentType.objects.get_for_model(o.template))
    object_id = factory.LazyAttribute(lambda o: o.template.pk)
    number = 1
    data = factory.LazyAttribute(lambda o: template_history.snapshot(o.template))
    action = TemplateVersion.Action.CREATED


class DeepAnalysisReportFactory(ImportedFactory):
    class Meta:
        model = DeepAnalysisReport

    report_uuid = factory.Sequence(lambda n: f"00000000-0000-4000-8000-{n:012d}")
    user = factory.SubFactory(AppUserFactory)
    goal = factory.Sequence(lambda n: f"Why did churn rise in region {n}?")
    status = DeepAnalysisReport.Status.COMPLETED
    deep_questions = "1. Which segments churned?"
    final_conclusion = "Churn rose among monthly plans."
    html_report = "<h1>Churn</h1><p>Monthly plans.</p>"
    plotly_figures = factory.LazyFunction(lambda: [{"data": [], "layout": {}}])
    progress_percentage = 100
    total_tokens_used = 12000
    estimated_cost = Decimal("0.12000000")


class AnalysisResultFactory(ImportedFactory):
    class Meta:
        model = AnalysisResult

    chat = factory.SubFactory(ChatFactory)
    analysis_type = "summary"
    file = factory.SubFactory(UploadedFileFactory, chat=factory.SelfAttribute("..chat"))
    result_data = factory.LazyFunction(lambda: {"mean": 3.5})
    visualizations = factory.LazyFunction(list)


class ExecutionRollupFactory(factory.django.DjangoModelFactory):
    """A per-day row of the code execution roll-up, planted as it is (no raw
    rows behind it: tests of the guard and of repairs)."""

    class Meta:
        model = ExecutionRollup

    kind = ExecutionRollup.Kind.DAY
    day = factory.Sequence(lambda n: dt.date(2024, 1, 1) + dt.timedelta(days=n))
    model_name = "gpt-4o-mini"
    model_provider = "openai"
    executions = 4
    successes = 3


class FeedbackRollupFactory(factory.django.DjangoModelFactory):
    """A per-day row of ratings of the feedback roll-up, planted as it is (no
    raw rows behind it: tests of the guard and of repairs)."""

    class Meta:
        model = FeedbackRollup

    kind = FeedbackRollup.Kind.RATING
    day = factory.Sequence(lambda n: dt.date(2024, 1, 1) + dt.timedelta(days=n))
    model_name = "gpt-4o-mini"
    model_provider = "openai"
    rating = 4
    ratings = 3


def factories_by_model():
    """{model class: its factory} for every concrete factory in this module."""
    found = {}
    for value in globals().values():
        meta = getattr(value, "_meta", None)
        model = getattr(meta, "model", None)
        if isinstance(value, type) and model is not None and not meta.abstract:
            found[model] = value
    return found


# Review queues (#19) -------------------------------------------------------

from chats.models import MistakeCategory, Review, ReviewItem, ReviewQueue  # noqa: E402


class MistakeCategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MistakeCategory

    slug = factory.Sequence(lambda n: f"category-{n}")
    name = factory.Sequence(lambda n: f"Category {n}")
    position = factory.Sequence(lambda n: 100 + n)


class ReviewQueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReviewQueue

    name = factory.Sequence(lambda n: f"Queue {n}")
    rule = ReviewQueue.Rule.LOW_RATING
    max_rating = 2


class ReviewItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReviewItem

    queue = factory.SubFactory(ReviewQueueFactory)
    reason = "rated 1 of 5"

    @factory.lazy_attribute
    def message(self):
        """An assistant message the queue does not hold yet: an existing one
        when there is (so "a row of every model" adds no chat or message),
        else a new one."""
        held = ReviewItem.objects.filter(queue=self.queue).values("message_id")
        free = Message.objects.filter(role=Message.Role.ASSISTANT).exclude(pk__in=held)
        return free.order_by("pk").first() or MessageFactory(role=Message.Role.ASSISTANT)


class ReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Review

    item = factory.SubFactory(ReviewItemFactory)
    reviewer = factory.SubFactory(UserFactory)
    verdict = ReviewItem.Verdict.CORRECT
    started_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(seconds=40))
    completed_at = factory.LazyFunction(timezone.now)


def one_row_of_every_model():
    """A row of every model that has a factory, but the quality roll-ups:
    the writers keep them from the raw rows (the CodeExecution, Message and
    MessageFeedback rows made here fill them), and a planted row would
    disagree with them (the roll-up guard in conftest.py)."""
    for model, make in factories_by_model().items():
        if model not in (ExecutionRollup, FeedbackRollup):
            make()
