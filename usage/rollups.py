"""The roll-ups of the usage ledger.

Four grains:

- with the app user (``DailyUsage``, ``DailyLatency``): for pages that name
  a user — their size grows with active user-days;
- without it (``DailyModelUsage``, ``DailyModelLatency``): for pages that
  name an organisation or a source — their size grows with days × models ×
  organisations × sources;
- per day, model and provider only (``DailyTotal``, ``DailyTotalLatency``):
  for everything else — at most days × models rows;
- per app user and organisation only (``UserUsage``), per day and per
  calendar month: for ranking and counting app users over a period, which
  then reads whole months and the days at the period's edges.

Days are cut in settings.TIME_ZONE, the zone the dashboards display. Every
write goes through ``usage.ledger``, which upserts one row per key (a unique
index on each grain) by the difference, in SQL, in the transaction that
changes the ledger. Readers SUM over the grain all the same. ``rebuild``
(``usage.ledger.rebuild``) recomputes everything from the ledger with the
same results, for repairs.
"""

from dataclasses import dataclass

from django.db.models import Case, Count, DateField, IntegerField, Value, When
from django.db.models.functions import TruncDate, TruncMonth
from django.utils import timezone

from .models import (
    LATENCY_BUCKETS_MS,
    MEASURES,
    DailyLatency,
    DailyModelLatency,
    DailyModelUsage,
    DailyTotal,
    DailyTotalLatency,
    DailyUsage,
    UserUsage,
)

TOTAL_GRAIN = ("day", "model_name", "provider")
MODEL_GRAIN = (*TOTAL_GRAIN, "organization_id", "source_id")
USER_GRAIN = (*MODEL_GRAIN, "user_id")
APP_USER_GRAIN = ("day", "user_id", "organization_id")
# The roll-up measures, from their one declaration (usage.models.MEASURES).
SUMMED = tuple(measure.name for measure in MEASURES)


@dataclass(frozen=True)
class Rollup:
    """One roll-up: its usage model, its latency histogram model (or None),
    the key columns, and the days one row covers (``span``: "day", or "month"
    with ``day`` the first of the month)."""

    usage: type
    latency: type | None
    grain: tuple
    span: str = "day"

    @property
    def constants(self):
        """Columns every row of this roll-up holds alike: UserUsage keeps
        both spans in one table, told apart by its ``span`` column."""
        return {"span": self.span} if hasattr(self.usage, "Span") else {}

    def rows(self):
        return self.usage.objects.filter(**self.constants)

    def first_day(self, day):
        """The ``day`` of the row that covers a local day."""
        return day.replace(day=1) if self.span == "month" else day

    def day_expression(self):
        """The row's ``day`` of a ledger row, in SQL (the ORM's)."""
        zone = timezone.get_current_timezone()
        if self.span == "month":
            return TruncMonth("timestamp", tzinfo=zone, output_field=DateField())
        return TruncDate("timestamp", tzinfo=zone)


ROLLUPS = (
    Rollup(DailyUsage, DailyLatency, USER_GRAIN),
    Rollup(DailyModelUsage, DailyModelLatency, MODEL_GRAIN),
    Rollup(DailyTotal, DailyTotalLatency, TOTAL_GRAIN),
    Rollup(UserUsage, None, APP_USER_GRAIN, span="day"),
    Rollup(UserUsage, None, APP_USER_GRAIN, span="month"),
)
USAGE_MODELS = tuple(dict.fromkeys(r.usage for r in ROLLUPS))
LATENCY_MODELS = tuple(dict.fromkeys(r.latency for r in ROLLUPS if r.latency))


# -- from the ledger, in SQL -------------------------------------------------


def bucket_expression():
    """The latency bucket of a ledger row's request_time_ms, in SQL."""
    whens = [
        When(request_time_ms__lt=bound, then=Value(index))
        for index, bound in enumerate(LATENCY_BUCKETS_MS)
    ]
    return Case(*whens, default=Value(len(LATENCY_BUCKETS_MS)), output_field=IntegerField())


# Each roll-up column as an aggregate over ledger rows.
LEDGER_AGGREGATES = {measure.name: measure.aggregate() for measure in MEASURES}


def aggregate_usage(queryset, rollup):
    """Usage roll-up rows (unsaved) for ledger rows, with one GROUP BY."""
    rows = (
        queryset.order_by()
        .annotate(day=rollup.day_expression())
        .values(*rollup.grain)
        .annotate(**{f"{name}_agg": agg for name, agg in LEDGER_AGGREGATES.items()})
    )
    for row in rows.iterator(chunk_size=5000):
        yield rollup.usage(
            **rollup.constants,
            **{key: row[key] for key in rollup.grain},
            **{name: row[f"{name}_agg"] or 0 for name in SUMMED},
        )


def aggregate_latency(queryset, rollup):
    """Latency histogram rows (unsaved) for ledger rows with a request time."""
    if rollup.latency is None:
        return
    rows = (
        queryset.filter(request_time_ms__isnull=False)
        .order_by()
        .annotate(day=rollup.day_expression(), bucket=bucket_expression())
        .values(*rollup.grain, "bucket")
        .annotate(n=Count("id"))
    )
    for row in rows.iterator(chunk_size=5000):
        yield rollup.latency(
            **{key: row[key] for key in rollup.grain}, bucket=row["bucket"], requests=row["n"]
        )


# -- names ------------------------------------------------------------------------------


def rollup_name(rollup):
    """DailyUsage, …, UserUsage (day), UserUsage (month)."""
    name = rollup.usage.__name__
    return f"{name} ({rollup.span})" if rollup.constants else name
