"""The LLM usage ledger, prices, budgets and roll-ups."""

from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from chats.models import Chat
from core.models import AppUser, Imported, Organization, Source

# USD with sub-cent precision: a single call can cost $0.00000015.
COST_FIELD = {"max_digits": 18, "decimal_places": 8}
MILLION = Decimal(1_000_000)


# -- the ledger's write guard ----------------------------------------------------
#
# Every change to the ledger and its roll-ups goes through usage.ledger, which
# sets this flag while it writes. Elsewhere the write methods of their
# managers, querysets and instances raise, so a writer that bypasses the
# ledger module (and leaves the roll-ups behind) fails its tests at once.
LEDGER_WRITING = ContextVar("usage_ledger_writing", default=False)


class LedgerBypass(RuntimeError):
    """A write to the ledger or a roll-up outside usage.ledger."""


def check_ledger_write(model):
    if not LEDGER_WRITING.get():
        raise LedgerBypass(
            f"{model.__name__} rows change only through usage.ledger "
            "(it keeps the ledger and its roll-ups together)"
        )


class GuardedQuerySet(models.QuerySet):
    """A queryset whose writes are allowed only inside usage.ledger."""

    def create(self, **kwargs):
        check_ledger_write(self.model)
        return super().create(**kwargs)

    def bulk_create(self, objs, *args, **kwargs):
        check_ledger_write(self.model)
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, fields, *args, **kwargs):
        check_ledger_write(self.model)
        return super().bulk_update(objs, fields, *args, **kwargs)

    def update(self, **kwargs):
        check_ledger_write(self.model)
        return super().update(**kwargs)

    def update_or_create(self, *args, **kwargs):
        check_ledger_write(self.model)
        return super().update_or_create(*args, **kwargs)

    def delete(self):
        check_ledger_write(self.model)
        return super().delete()

    delete.alters_data = True
    delete.queryset_only = True


class GuardedModel(models.Model):
    """Instance saves and deletes allowed only inside usage.ledger."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        check_ledger_write(type(self))
        return super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        check_ledger_write(type(self))
        return super().delete(*args, **kwargs)


class ModelUsageQuerySet(GuardedQuerySet):
    def in_period(self, start, end):
        """Rows with start <= timestamp < end (aware datetimes)."""
        return self.filter(timestamp__gte=start, timestamp__lt=end)


class ModelUsage(GuardedModel, Imported):
    """The one ledger of LLM calls: every cost figure is summed from it.

    auto-analyst ``model_usage``; the LLM part of text-to-sql
    ``query_analytics``; ai-chat-v2 assistant messages that carry tokens.
    """

    class CostSource(models.TextChoices):
        REPORTED = "reported", "Reported by the source"
        COMPUTED = "computed", "Computed from model prices"
        UNPRICED = "unpriced", "Unknown (no price)"

    # No single-column indexes where a composite index leads with the column
    # (usage_mu_user_ts_idx, usage_mu_org_ts_idx, the (source, source_pk)
    # unique index): each one more index every import row must update.
    source = models.ForeignKey(
        Source, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    user = models.ForeignKey(
        AppUser,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="usage_records",
        db_index=False,
    )
    chat = models.ForeignKey(
        Chat, on_delete=models.SET_NULL, null=True, blank=True, related_name="usage_records"
    )
    # Denormalised from the user or chat when the row arrives, so spend per
    # organisation needs no join and survives the user's deletion.
    organization = models.ForeignKey(
        Organization,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="usage_records",
        db_index=False,
    )
    model_name = models.CharField(max_length=100)
    provider = models.CharField(max_length=50)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    # Derived from prompt + completion by usage.ledger only when not reported
    # (None); a reported value, 0 included, stays as reported.
    total_tokens = models.BigIntegerField(default=None, blank=True)
    # Parts of the two counts above, as OpenAI reports them: the prompt tokens
    # served from the provider's prompt cache (part of prompt_tokens) and the
    # completion tokens spent on reasoning (part of completion_tokens). NULL
    # when the source did not report them (unknown), 0 when it reported none;
    # usage.ledger refuses a part larger than its whole. total_tokens stays
    # prompt + completion: these are not added again.
    cached_input_tokens = models.BigIntegerField(null=True, blank=True)
    reasoning_tokens = models.BigIntegerField(null=True, blank=True)
    query_size = models.IntegerField(default=0)
    response_size = models.IntegerField(default=0)
    # Null when the source reported none and no price was in force.
    cost = models.DecimalField(**COST_FIELD, null=True, blank=True)
    cost_source = models.CharField(
        max_length=10, choices=CostSource.choices, default=CostSource.REPORTED
    )
    timestamp = models.DateTimeField(default=timezone.now)
    is_streaming = models.BooleanField(default=False)
    request_time_ms = models.IntegerField(null=True, blank=True, default=0)

    objects = ModelUsageQuerySet.as_manager()

    class Meta(Imported.Meta):
        verbose_name = "model usage record"
        ordering = ["-timestamp"]
        permissions = [
            ("view_dashboards", "Can view usage and cost dashboards"),
            ("export_usage", "Can export usage data as CSV"),
        ]
        indexes = [
            # seed: model_usage(user_id, timestamp DESC) — a user's spend
            models.Index(fields=["user", "-timestamp"], name="usage_mu_user_ts_idx"),
            # seed: model_usage(model_name, timestamp DESC) — spend per model
            models.Index(fields=["model_name", "-timestamp"], name="usage_mu_model_ts_idx"),
            # ledger changelist newest first; period scans; roll-up rebuild
            models.Index(fields=["-timestamp"], name="usage_mu_ts_idx"),
            # an organisation's spend
            models.Index(fields=["organization", "-timestamp"], name="usage_mu_org_ts_idx"),
            # the overview's unpriced calls of a period (usage.metrics.unpriced):
            # few rows, so a small index that few inserts touch
            models.Index(
                fields=["-timestamp"],
                condition=models.Q(cost__isnull=True),
                name="usage_mu_unpriced_ts_idx",
            ),
        ]

    def __str__(self):
        return f"{self.model_name} @ {self.timestamp:%Y-%m-%d %H:%M}"


class QueryAnalytics(Imported):
    """text-to-sql ``query_analytics``: the query-level part of a question.

    Its tokens, model and cost are in the linked ``usage`` ledger row.
    """

    # No database constraint: a partitioned ledger (usage.partitions) has the
    # primary key (id, timestamp), which a foreign key cannot reference. The
    # ORM keeps SET_NULL on a ledger row's delete (ledger.delete_usage).
    usage = models.OneToOneField(
        ModelUsage,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="query_analytics",
        db_constraint=False,
    )
    query_id = models.CharField(max_length=100, null=True, blank=True)
    user = models.ForeignKey(
        AppUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="query_analytics"
    )
    question = models.TextField()
    sql_query = models.TextField(null=True, blank=True)
    execution_time = models.FloatField(null=True, blank=True)
    row_count = models.IntegerField(null=True, blank=True)
    success = models.BooleanField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    chart_type = models.CharField(max_length=50, null=True, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(null=True, blank=True)

    class Meta(Imported.Meta):
        verbose_name = "query analytics record"
        verbose_name_plural = "query analytics"
        ordering = ["-timestamp"]
        indexes = [
            # text-to-sql dashboard: queries per day
            models.Index(fields=["-timestamp"], name="usage_qa_ts_idx"),
            # link to chat_messages.query_id
            models.Index(fields=["query_id"], name="usage_qa_query_id_idx"),
        ]

    def __str__(self):
        return self.question[:80]


class PerformanceMetric(Imported):
    """text-to-sql ``performance_metrics``."""

    metric_name = models.CharField(max_length=100)
    metric_value = models.FloatField()
    metric_unit = models.CharField(max_length=50, null=True, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)
    additional_data = models.JSONField(null=True, blank=True)

    class Meta(Imported.Meta):
        ordering = ["-timestamp"]
        indexes = [
            # one metric over time
            models.Index(fields=["metric_name", "-timestamp"], name="usage_perf_name_ts_idx"),
            # performance-metric changelist and its recent-period filter
            models.Index(fields=["-timestamp"], name="usage_perf_ts_idx"),
        ]

    def __str__(self):
        return f"{self.metric_name}={self.metric_value}{self.metric_unit or ''}"


class ModelPriceQuerySet(models.QuerySet):
    def in_force(self, day):
        """Each model's price in force on ``day``: the one of its prices with
        the latest ``effective_from`` on or before it (models priced only
        from a later day are left out)."""
        latest = (
            ModelPrice.objects.filter(
                model_name=models.OuterRef("model_name"),
                provider=models.OuterRef("provider"),
                effective_from__lte=day,
            )
            .order_by("-effective_from")
            .values("effective_from")[:1]
        )
        return self.filter(effective_from=models.Subquery(latest))


class ModelPrice(models.Model):
    """USD per million tokens for a model, in force from a date on."""

    model_name = models.CharField(max_length=100)
    provider = models.CharField(max_length=50)
    input_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, validators=[MinValueValidator(0)]
    )
    output_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, validators=[MinValueValidator(0)]
    )
    # Prices of the parts of prompt and completion tokens the ledger counts
    # apart (ModelUsage.cached_input_tokens, reasoning_tokens). NULL: not
    # priced apart — cached input costs the input price, reasoning the output
    # price.
    cached_input_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Empty: cached input tokens cost the input price.",
    )
    reasoning_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Empty: reasoning tokens cost the output price.",
    )
    effective_from = models.DateField()
    created_at = models.DateTimeField(default=timezone.now)

    objects = ModelPriceQuerySet.as_manager()

    class Meta:
        ordering = ["model_name", "provider", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_name", "provider", "effective_from"],
                name="usage_modelprice_model_from_uniq",
            ),
            models.CheckConstraint(
                condition=models.Q(input_per_million__gte=0, output_per_million__gte=0),
                name="usage_modelprice_non_negative",
            ),
            models.CheckConstraint(
                condition=(
                    (
                        models.Q(cached_input_per_million__isnull=True)
                        | models.Q(cached_input_per_million__gte=0)
                    )
                    & (
                        models.Q(reasoning_per_million__isnull=True)
                        | models.Q(reasoning_per_million__gte=0)
                    )
                ),
                name="usage_modelprice_parts_non_negative",
            ),
        ]

    def __str__(self):
        return f"{self.provider}/{self.model_name} from {self.effective_from}"

    def cost_of(
        self, prompt_tokens, completion_tokens, cached_input_tokens=None, reasoning_tokens=None
    ):
        """The USD cost of a call (or of summed calls) at this price.

        Cached input tokens are part of the prompt tokens and reasoning tokens
        part of the completion tokens: with a price of their own they are
        charged at it instead of the input (output) price; without one, or
        when not reported (None), the two counts are charged as a whole.
        """
        prompt, completion = Decimal(prompt_tokens or 0), Decimal(completion_tokens or 0)
        total = Decimal(0)
        if self.cached_input_per_million is not None and cached_input_tokens:
            cached = Decimal(cached_input_tokens)
            prompt -= cached
            total += cached * self.cached_input_per_million
        if self.reasoning_per_million is not None and reasoning_tokens:
            reasoning = Decimal(reasoning_tokens)
            completion -= reasoning
            total += reasoning * self.reasoning_per_million
        total += prompt * self.input_per_million + completion * self.output_per_million
        return total / MILLION


class Budget(models.Model):
    """A monthly spending limit for an organisation or an app user."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="budgets"
    )
    user = models.ForeignKey(
        AppUser, on_delete=models.CASCADE, null=True, blank=True, related_name="budgets"
    )
    monthly_limit = models.DecimalField(
        max_digits=14, decimal_places=2, validators=[MinValueValidator(0)]
    )
    # Share of the limit (0–1) at which the budget is reported as near.
    alert_threshold = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.800"),
        validators=[MinValueValidator(0), MaxValueValidator(1)],
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-monthly_limit"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(organization__isnull=False, user__isnull=True)
                    | models.Q(organization__isnull=True, user__isnull=False)
                ),
                name="usage_budget_one_target",
                violation_error_message="A budget is for an organisation or an app user, not both.",
            ),
            models.CheckConstraint(
                condition=models.Q(alert_threshold__gte=0, alert_threshold__lte=1),
                name="usage_budget_threshold_0_1",
            ),
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(organization__isnull=False),
                name="usage_budget_org_uniq",
            ),
            models.UniqueConstraint(
                fields=["user"],
                condition=models.Q(user__isnull=False),
                name="usage_budget_user_uniq",
            ),
        ]

    def __str__(self):
        target = self.organization or self.user
        return f"${self.monthly_limit}/month for {target}"


def _rollup_key(model, **extra):
    return models.ForeignKey(
        model,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        **extra,
    )


class TotalGrain(models.Model):
    """The key of the per-model roll-ups: a local day (TIME_ZONE), model and
    provider."""

    day = models.DateField()
    model_name = models.CharField(max_length=100)
    provider = models.CharField(max_length=50)

    class Meta:
        abstract = True


class RollupGrain(TotalGrain):
    """TotalGrain with the organisation and source. Foreign keys without
    database constraints: deleting an organisation nulls its roll-up rows
    (usage.signals) as it nulls its ledger rows.
    """

    organization = _rollup_key(Organization)
    source = _rollup_key(Source)

    class Meta:
        abstract = True


class UserGrain(RollupGrain):
    """The roll-up key with the app user (null for anonymous usage)."""

    user = _rollup_key(AppUser)

    class Meta:
        abstract = True


@dataclass(frozen=True)
class Measure:
    """One measure of the usage roll-ups, declared once (``MEASURES``): the
    roll-up column, its aggregate over ledger rows in the ORM and in SQL, and
    its value for one ledger row in Python are all derived from it.

    A sum of a ledger ``column`` (NULL counts as 0), or — without a column —
    a count of the ledger rows that meet a condition (``where``: a Q, the
    same in SQL, and the same as a Python predicate; None counts every row).
    With both, the sum of the column over the rows that meet the condition.
    """

    name: str
    column: str | None = None
    where: tuple | None = None
    decimal: bool = False

    def field(self):
        if self.decimal:
            return models.DecimalField(max_digits=22, decimal_places=8, default=Decimal(0))
        return models.BigIntegerField(default=0)

    def aggregate(self):
        """The ORM aggregate over ledger rows."""
        condition = self.where[0] if self.where else None
        if self.column:
            return models.Sum(self.column, filter=condition)
        return models.Count("id", filter=condition)

    def sql(self):
        """The SQL aggregate over ledger rows (PostgreSQL)."""
        only = f" FILTER (WHERE {self.where[1]})" if self.where else ""
        if self.column:
            return f"COALESCE(SUM({self.column}){only}, 0)"
        return f"COUNT(*){only}"

    def of(self, usage):
        """This measure of one ledger row (an instance or look-alike)."""
        if self.where is not None and not self.where[2](usage):
            return 0
        return (getattr(usage, self.column) or 0) if self.column else 1


MEASURES = (
    Measure("requests"),
    Measure("prompt_tokens", "prompt_tokens"),
    Measure("completion_tokens", "completion_tokens"),
    Measure("total_tokens", "total_tokens"),
    Measure("cost", "cost", decimal=True),
    Measure(
        "unpriced_requests",
        where=(models.Q(cost__isnull=True), "cost IS NULL", lambda u: u.cost is None),
    ),
    # The unpriced calls' tokens: the overview's worklist of models without a
    # price reads them here, not from the ledger.
    Measure(
        "unpriced_tokens",
        "total_tokens",
        where=(models.Q(cost__isnull=True), "cost IS NULL", lambda u: u.cost is None),
    ),
    Measure(
        "streaming_requests",
        where=(models.Q(is_streaming=True), "is_streaming", lambda u: bool(u.is_streaming)),
    ),
    Measure(
        "timed_requests",
        where=(
            models.Q(request_time_ms__isnull=False),
            "request_time_ms IS NOT NULL",
            lambda u: u.request_time_ms is not None,
        ),
    ),
    Measure("request_time_ms_sum", "request_time_ms"),
    # Sums of the parts where reported, with the number of calls that
    # reported them: a sum over no reporting call is unknown, not 0.
    Measure("cached_input_tokens", "cached_input_tokens"),
    Measure(
        "cached_reported_requests",
        where=(
            models.Q(cached_input_tokens__isnull=False),
            "cached_input_tokens IS NOT NULL",
            lambda u: u.cached_input_tokens is not None,
        ),
    ),
    Measure("reasoning_tokens", "reasoning_tokens"),
    Measure(
        "reasoning_reported_requests",
        where=(
            models.Q(reasoning_tokens__isnull=False),
            "reasoning_tokens IS NOT NULL",
            lambda u: u.reasoning_tokens is not None,
        ),
    ),
)


class _MeasuresMeta:
    abstract = True


# What a usage roll-up row sums: one field per MEASURES entry.
UsageMeasures = type(
    "UsageMeasures",
    (GuardedModel,),
    {
        "__module__": __name__,
        "__doc__": "What a usage roll-up row sums (one field per ``MEASURES`` entry).",
        "Meta": _MeasuresMeta,
        "objects": GuardedQuerySet.as_manager(),
        **{measure.name: measure.field() for measure in MEASURES},
    },
)

# Key columns that may be NULL: the roll-ups' unique keys treat NULL as 0
# (ids are positive), so one key is one row on SQLite and PostgreSQL alike.
NULLABLE_KEYS = ("organization", "source", "user")


def grain_unique(name, *fields):
    """The unique constraint on a roll-up's key (NULL keys equal)."""
    return models.UniqueConstraint(
        *(Coalesce(f, 0) if f in NULLABLE_KEYS else models.F(f) for f in fields), name=name
    )


class DailyUsage(UserGrain, UsageMeasures):
    """Roll-up of the ledger per day, model, provider, app user, organisation
    and source: the pages that name an app user (user page, top users,
    active users, a user filter) read it.

    Rebuilt from the ledger by ``manage.py rebuild_rollups``.
    """

    # Led by the (user, day) and (organization, day) indexes below.
    user = _rollup_key(AppUser, db_index=False)
    organization = _rollup_key(Organization, db_index=False)

    class Meta:
        verbose_name = "daily usage roll-up"
        ordering = ["-day"]
        constraints = [
            # one row per key (writers upsert); also the index of a period of
            # days grouped by model / provider
            grain_unique(
                "usage_daily_key_uniq",
                *("day", "model_name", "provider", "organization", "source", "user"),
            ),
        ]
        indexes = [
            # user page and top users
            models.Index(fields=["user", "day"], name="usage_daily_user_day_idx"),
            # organisation page and top organisations
            models.Index(fields=["organization", "day"], name="usage_daily_org_day_idx"),
        ]

    def __str__(self):
        return f"{self.day} {self.model_name}"


class DailyModelUsage(RollupGrain, UsageMeasures):
    """Roll-up per day, model, provider, organisation and source — without the
    app user, so its size grows with days × models × organisations, not with
    users: the overview and models page read it when no app user is named.
    """

    class Meta:
        verbose_name = "daily usage roll-up by model"
        ordering = ["-day"]
        constraints = [
            # one row per key; also the overview's and models page's index
            grain_unique(
                "usage_dmu_key_uniq", *("day", "model_name", "provider", "organization", "source")
            ),
        ]
        indexes = [
            # organisation page
            models.Index(fields=["organization", "day"], name="usage_dmu_org_day_idx"),
        ]

    def __str__(self):
        return f"{self.day} {self.model_name}"


class DailyTotal(TotalGrain, UsageMeasures):
    """Roll-up per day, model and provider only: what the overview and the
    models page read when no organisation, source or app user is chosen.
    At most days × models rows, whatever the ledger, the users or the
    organisations."""

    class Meta:
        verbose_name = "daily usage total by model"
        ordering = ["-day"]
        constraints = [
            grain_unique("usage_dt_key_uniq", "day", "model_name", "provider"),
        ]

    def __str__(self):
        return f"{self.day} {self.model_name}"


class UserUsage(UsageMeasures):
    """Roll-up per app user and organisation, per day and per calendar month
    (``span``), without model, provider or source.

    The figures that rank or count app users over a period (top users, active
    users) read it when no model, provider or source is chosen: a period is
    its whole months' rows plus the days at its edges (``usage.metrics``), so
    a 90-day figure reads about three months' and a few days' rows per user
    instead of 90 days × models × sources.

    ``day`` is the first day the row covers: the day itself, or the first of
    the month. Readers SUM over the grain, as for every roll-up.
    """

    class Span(models.TextChoices):
        DAY = "day", "day"
        MONTH = "month", "month"

    span = models.CharField(max_length=5, choices=Span.choices)
    day = models.DateField()
    # No single-column indexes: the two below lead with what is filtered.
    user = _rollup_key(AppUser, db_index=False)
    organization = _rollup_key(Organization, db_index=False)

    class Meta:
        verbose_name = "usage roll-up per app user"
        ordering = ["-day"]
        indexes = [
            # an app user's budget: their month
            models.Index(fields=["user", "span", "day"], name="usage_uu_user_span_day_idx"),
        ]
        constraints = [
            # one row per key; also the index of top and active app users
            grain_unique("usage_uu_key_uniq", "span", "day", "user", "organization"),
            models.CheckConstraint(
                condition=models.Q(span__in=["day", "month"]), name="usage_uu_span_valid"
            ),
        ]

    def __str__(self):
        return f"{self.span} {self.day} user {self.user_id}"


# Upper bounds (ms) of the latency histogram buckets; the last bucket is open.
LATENCY_BUCKETS_MS = (
    50,
    100,
    200,
    300,
    500,
    750,
    1_000,
    1_500,
    2_000,
    3_000,
    5_000,
    7_500,
    10_000,
    15_000,
    20_000,
    30_000,
    60_000,
    120_000,
)


def latency_bucket(ms):
    """Index of the histogram bucket holding a request time in ms."""
    for index, bound in enumerate(LATENCY_BUCKETS_MS):
        if ms < bound:
            return index
    return len(LATENCY_BUCKETS_MS)


class LatencyMeasures(GuardedModel):
    """Requests per request-time bucket (see LATENCY_BUCKETS_MS)."""

    bucket = models.SmallIntegerField()
    requests = models.BigIntegerField(default=0)

    objects = GuardedQuerySet.as_manager()

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.day} {self.model_name} bucket {self.bucket}: {self.requests}"


class DailyLatency(UserGrain, LatencyMeasures):
    """Histogram of request times at DailyUsage's grain, for latency
    percentiles of an app user without the raw ledger."""

    class Meta:
        verbose_name = "daily latency histogram row"
        ordering = ["-day", "bucket"]
        constraints = [
            # one row per key and bucket; also the index of p95 per period and model
            grain_unique(
                "usage_lat_key_uniq",
                *("day", "model_name", "provider", "organization", "source", "user", "bucket"),
            ),
        ]
        indexes = [
            # p95 of one app user
            models.Index(fields=["user", "day"], name="usage_lat_user_day_idx"),
        ]


class DailyModelLatency(RollupGrain, LatencyMeasures):
    """Histogram of request times at DailyModelUsage's grain."""

    class Meta:
        verbose_name = "daily latency histogram row by model"
        ordering = ["-day", "bucket"]
        constraints = [
            grain_unique(
                "usage_dml_key_uniq",
                *("day", "model_name", "provider", "organization", "source", "bucket"),
            ),
        ]


class DailyTotalLatency(TotalGrain, LatencyMeasures):
    """Histogram of request times at DailyTotal's grain."""

    class Meta:
        verbose_name = "daily latency histogram row by model (all organisations)"
        ordering = ["-day", "bucket"]
        constraints = [
            grain_unique("usage_dtl_key_uniq", "day", "model_name", "provider", "bucket"),
        ]


# -- spend watch: notification channels, notifications and their deliveries ---


class NotificationChannel(models.Model):
    """Where ``watch_spend`` sends what it finds: e-mail addresses (through
    Django's mail backend) or a webhook (a JSON POST signed with HMAC-SHA256
    of the body, keyed with the channel's secret, encrypted at rest)."""

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Comma-separated addresses for e-mail; the https URL for a webhook.
    target = models.CharField(max_length=500)
    # Fernet token (core.crypto) of the webhook's signing secret; write-only.
    encrypted_secret = models.TextField(blank=True, default="")
    budget_alerts = models.BooleanField(default=True, help_text="Budget thresholds crossed.")
    anomaly_alerts = models.BooleanField(default=True, help_text="Unusual spend or requests.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    # Fields holding core.crypto tokens (rotate_encryption_key re-encrypts them).
    encrypted_fields = ("encrypted_secret",)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["email", "webhook"]),
                name="usage_channel_kind_valid",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"

    def set_secret(self, raw_secret):
        """Store the webhook's signing secret encrypted; empty clears it."""
        from core import crypto

        self.encrypted_secret = crypto.encrypt(raw_secret) if raw_secret else ""

    def get_secret(self):
        from core import crypto

        return crypto.decrypt(self.encrypted_secret) if self.encrypted_secret else ""

    def recipients(self):
        """The e-mail addresses of an e-mail channel."""
        return [part.strip() for part in self.target.split(",") if part.strip()]


class Notification(models.Model):
    """One thing ``watch_spend`` found: a budget threshold crossed in a budget
    month, or an anomaly of one day. Unique per kind, key, period and
    threshold, so a rerun never finds (nor sends) it twice."""

    class Kind(models.TextChoices):
        BUDGET = "budget", "Budget threshold"
        ANOMALY = "anomaly", "Anomaly"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    # What it is about: "budget:<pk>" or "<dimension>:<value>" (usage.anomalies).
    key = models.CharField(max_length=250)
    # The budget month (its first day) or the anomaly's day.
    period = models.DateField()
    # "50%", "80%", "100%", "projected" (budgets); "cost", "requests" (anomalies).
    threshold = models.CharField(max_length=20)
    budget = models.ForeignKey(
        Budget, on_delete=models.SET_NULL, null=True, blank=True, related_name="notifications"
    )
    subject = models.CharField(max_length=250)
    body = models.TextField()
    # Path (from the site's root) of the rows behind it.
    link = models.CharField(max_length=1000, blank=True, default="")
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "key", "period", "threshold"], name="usage_notification_once"
            ),
        ]
        indexes = [
            # the alerts page: newest first
            models.Index(fields=["-created_at"], name="usage_notif_created_idx"),
        ]

    def __str__(self):
        return self.subject


class Delivery(models.Model):
    """A notification sent (or tried) on one channel: to whom, how it went."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.ForeignKey(
        NotificationChannel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    kind = models.CharField(max_length=10, choices=NotificationChannel.Kind.choices)
    recipient = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "channel"],
                condition=models.Q(channel__isnull=False),
                name="usage_delivery_once_per_channel",
            ),
        ]
        indexes = [
            # watch_spend: the failed deliveries to retry
            models.Index(
                fields=["status"],
                condition=models.Q(status="failed"),
                name="usage_delivery_failed_idx",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} to {self.recipient}: {self.status}"
