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

Days are cut in settings.TIME_ZONE, the zone the dashboards display. Writers
add delta rows (``record``) in the transaction that changes the ledger;
readers always SUM over the grain, so several rows of one key are correct and
concurrent writers never conflict. ``compact`` merges them, ``rebuild``
recomputes everything from the ledger with the same results.
"""

import re
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Case, Count, DateField, IntegerField, Q, Sum, Value, When
from django.db.models.functions import TruncDate, TruncMonth
from django.utils import timezone

from .models import (
    LATENCY_BUCKETS_MS,
    DailyLatency,
    DailyModelLatency,
    DailyModelUsage,
    DailyTotal,
    DailyTotalLatency,
    DailyUsage,
    ModelUsage,
    UserUsage,
    latency_bucket,
)

TOTAL_GRAIN = ("day", "model_name", "provider")
MODEL_GRAIN = (*TOTAL_GRAIN, "organization_id", "source_id")
USER_GRAIN = (*MODEL_GRAIN, "user_id")
APP_USER_GRAIN = ("day", "user_id", "organization_id")
SUMMED = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost",
    "unpriced_requests",
    "streaming_requests",
    "timed_requests",
    "request_time_ms_sum",
)


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
LEDGER_AGGREGATES = {
    "requests": Count("id"),
    "prompt_tokens": Sum("prompt_tokens"),
    "completion_tokens": Sum("completion_tokens"),
    "total_tokens": Sum("total_tokens"),
    "cost": Sum("cost"),
    "unpriced_requests": Count("id", filter=Q(cost__isnull=True)),
    "streaming_requests": Count("id", filter=Q(is_streaming=True)),
    "timed_requests": Count("request_time_ms"),
    "request_time_ms_sum": Sum("request_time_ms"),
}


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


# -- from ledger rows in memory (writers) -------------------------------------


def _values(usage):
    return {
        "day": timezone.localtime(usage.timestamp).date(),
        "model_name": usage.model_name,
        "provider": usage.provider,
        "organization_id": usage.organization_id,
        "source_id": usage.source_id,
        "user_id": usage.user_id,
    }


def _add(row, usage, sign):
    row.requests += sign
    row.prompt_tokens += sign * (usage.prompt_tokens or 0)
    row.completion_tokens += sign * (usage.completion_tokens or 0)
    row.total_tokens += sign * (usage.total_tokens or 0)
    if usage.cost is None:
        row.unpriced_requests += sign
    else:
        row.cost += sign * usage.cost
    if usage.is_streaming:
        row.streaming_requests += sign
    if usage.request_time_ms is not None:
        row.timed_requests += sign
        row.request_time_ms_sum += sign * usage.request_time_ms


def record(usages, sign=1):
    """Add (sign=1) or take away (sign=-1) ledger rows from every roll-up.

    Call it in the transaction that writes the ledger rows, so the two never
    disagree. Returns the number of usage delta rows written.
    """
    usages = [(usage, _values(usage)) for usage in usages]
    written = 0
    for rollup in ROLLUPS:
        usage_deltas, latency_deltas = {}, {}
        for usage, values in usages:
            key = (rollup.first_day(values["day"]), *(values[name] for name in rollup.grain[1:]))
            columns = dict(zip(rollup.grain, key, strict=True))
            row = usage_deltas.get(key)
            if row is None:
                row = usage_deltas[key] = rollup.usage(**rollup.constants, **columns)
            _add(row, usage, sign)
            if rollup.latency and usage.request_time_ms is not None:
                bucket = latency_bucket(usage.request_time_ms)
                latency = latency_deltas.get((*key, bucket))
                if latency is None:
                    latency = latency_deltas[(*key, bucket)] = rollup.latency(
                        **columns, bucket=bucket
                    )
                latency.requests += sign
        rollup.usage.objects.bulk_create(usage_deltas.values(), batch_size=2000)
        if latency_deltas:
            rollup.latency.objects.bulk_create(latency_deltas.values(), batch_size=2000)
        written += len(usage_deltas)
    return written


# -- rebuild and compact ---------------------------------------------------------


def _bulk_write(model, rows, batch_size=5000):
    written, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_size:
            model.objects.bulk_create(batch)
            written, batch = written + len(batch), []
    model.objects.bulk_create(batch)
    return written + len(batch)


@transaction.atomic
def rebuild():
    """Replace every roll-up with one computed from the whole ledger.

    On PostgreSQL one INSERT … SELECT per roll-up (``delta_ctes`` over the
    whole ledger); elsewhere GROUP BY queries written back in batches. The
    two give the same rows (tested). Readers keep seeing the old roll-ups
    until the transaction commits. Returns {roll-up name: rows written}.
    """
    for model in (*USAGE_MODELS, *LATENCY_MODELS):
        model.objects.all().delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute(
                f"WITH {', '.join(delta_ctes(ModelUsage._meta.db_table))} SELECT 1",
                {"zone": timezone.get_current_timezone_name()},
            )
    else:
        ledger = ModelUsage.objects.all()
        for rollup in ROLLUPS:
            _bulk_write(rollup.usage, aggregate_usage(ledger, rollup))
            if rollup.latency:
                _bulk_write(rollup.latency, aggregate_latency(ledger, rollup))
    written = {}
    for rollup in ROLLUPS:
        written[rollup_name(rollup)] = rollup.rows().count()
        if rollup.latency:
            written[rollup.latency.__name__] = rollup.latency.objects.count()
    return written


def rollup_name(rollup):
    """DailyUsage, …, UserUsage (day), UserUsage (month)."""
    name = rollup.usage.__name__
    return f"{name} ({rollup.span})" if rollup.constants else name


def _compact(rows, grain, summed, constants=None):
    days = list(
        rows.order_by()
        .values(*grain)
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("day", flat=True)
        .distinct()
    )
    if not days:
        return 0
    merged = [
        rows.model(
            **(constants or {}),
            **{k: row[k] for k in grain},
            **{f: row[f"{f}_total"] for f in summed},
        )
        for row in rows.filter(day__in=days)
        .order_by()
        .values(*grain)
        .annotate(**{f"{f}_total": Sum(f) for f in summed})
    ]
    rows.filter(day__in=days).delete()
    rows.model.objects.bulk_create(merged, batch_size=2000)
    return len(days)


@transaction.atomic
def compact():
    """Merge roll-up rows that share a key (left by ``record``'s deltas).

    Rewrites only the days that hold such rows. Returns the most days
    rewritten in one roll-up.
    """
    days = 0
    for rollup in ROLLUPS:
        days = max(days, _compact(rollup.rows(), rollup.grain, SUMMED, rollup.constants))
        if rollup.latency:
            days = max(
                days,
                _compact(rollup.latency.objects.all(), (*rollup.grain, "bucket"), ("requests",)),
            )
    return days


# -- the same deltas in one SQL statement (PostgreSQL bulk loads) --------------


def delta_ctes(relation, zone_param="zone"):
    """PostgreSQL CTEs that insert every roll-up's deltas for the ledger rows
    in ``relation`` (a CTE or table with the ledger's columns).

    The sums are ``LEDGER_AGGREGATES``'; days are cut in the zone passed as
    the query parameter ``%(zone)s``. Used by COPY-based importers so a bulk
    load and its roll-up deltas are one statement.
    """
    local = f'("timestamp" AT TIME ZONE %({zone_param})s)'
    days = {"day": f"{local}::date", "month": f"date_trunc('month', {local})::date"}
    bucket = " ".join(
        f"WHEN request_time_ms < {bound} THEN {index}"
        for index, bound in enumerate(LATENCY_BUCKETS_MS)
    )
    sums = (
        "COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
        "COALESCE(SUM(total_tokens), 0), COALESCE(SUM(cost), 0), "
        "COUNT(*) FILTER (WHERE cost IS NULL), COUNT(*) FILTER (WHERE is_streaming), "
        "COUNT(request_time_ms), COALESCE(SUM(request_time_ms), 0)"
    )
    # Table and column names come from the models, constants from Rollup
    # (checked to be plain words); values are parameters. Rows go in in key
    # order (day first), so a day's rows sit together on disk, as they do
    # when the ledger grows day by day.
    ctes = []
    for n, rollup in enumerate(ROLLUPS):
        constants = rollup.constants
        assert all(re.fullmatch(r"[a-z]+", value) for value in constants.values())
        columns = [*constants, *rollup.grain]  # the grain names are the column names
        select = ", ".join(
            [*(f"'{value}'" for value in constants.values()), days[rollup.span], *rollup.grain[1:]]
        )
        group = ", ".join(str(i + 1) for i in range(len(constants), len(columns)))
        ctes.append(
            f"usage_deltas_{n} AS (INSERT INTO {rollup.usage._meta.db_table} "  # noqa: S608
            f"({', '.join(columns)}, {', '.join(SUMMED)}) "
            f"SELECT {select}, {sums} FROM {relation} GROUP BY {group} ORDER BY {group})"
        )
        if rollup.latency is None:
            continue
        ctes.append(
            f"latency_deltas_{n} AS (INSERT INTO {rollup.latency._meta.db_table} "  # noqa: S608
            f"({', '.join(columns)}, bucket, requests) "
            f"SELECT {select}, CASE {bucket} ELSE {len(LATENCY_BUCKETS_MS)} END, COUNT(*) "
            f"FROM {relation} WHERE request_time_ms IS NOT NULL "
            f"GROUP BY {group}, {len(columns) + 1} ORDER BY {group}, {len(columns) + 1})"
        )
    return ctes
