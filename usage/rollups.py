"""The daily roll-up of the usage ledger (``DailyUsage``).

Days are cut in settings.TIME_ZONE, the zone the dashboards display.
"""

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import DailyUsage, ModelUsage

GRAIN = ("day", "model_name", "provider", "user_id", "organization_id", "source_id")


def aggregate_ledger(queryset=None):
    """Roll-up rows (unsaved) computed from ledger rows with one GROUP BY."""
    queryset = ModelUsage.objects.all() if queryset is None else queryset
    rows = (
        queryset.order_by()
        .annotate(day=TruncDate("timestamp", tzinfo=timezone.get_current_timezone()))
        .values(*GRAIN)
        .annotate(
            requests=Count("id"),
            prompt_tokens_sum=Sum("prompt_tokens"),
            completion_tokens_sum=Sum("completion_tokens"),
            total_tokens_sum=Sum("total_tokens"),
            cost_sum=Sum("cost"),
            unpriced=Count("id", filter=Q(cost__isnull=True)),
            streaming=Count("id", filter=Q(is_streaming=True)),
            timed=Count("request_time_ms"),
            request_time_ms_total=Sum("request_time_ms"),
        )
    )
    for row in rows.iterator(chunk_size=5000):
        yield DailyUsage(
            day=row["day"],
            model_name=row["model_name"],
            provider=row["provider"],
            user_id=row["user_id"],
            organization_id=row["organization_id"],
            source_id=row["source_id"],
            requests=row["requests"],
            prompt_tokens=row["prompt_tokens_sum"] or 0,
            completion_tokens=row["completion_tokens_sum"] or 0,
            total_tokens=row["total_tokens_sum"] or 0,
            cost=row["cost_sum"] or 0,
            unpriced_requests=row["unpriced"],
            streaming_requests=row["streaming"],
            timed_requests=row["timed"],
            request_time_ms_sum=row["request_time_ms_total"] or 0,
        )


@transaction.atomic
def rebuild_daily_usage(batch_size=5000):
    """Replace the whole roll-up with one computed from the ledger.

    Returns the number of roll-up rows written.
    """
    DailyUsage.objects.all().delete()
    written = 0
    batch = []
    for row in aggregate_ledger():
        batch.append(row)
        if len(batch) >= batch_size:
            DailyUsage.objects.bulk_create(batch)
            written += len(batch)
            batch = []
    if batch:
        DailyUsage.objects.bulk_create(batch)
        written += len(batch)
    return written


def _key(usage):
    return (
        timezone.localtime(usage.timestamp).date(),
        usage.model_name,
        usage.provider,
        usage.user_id,
        usage.organization_id,
        usage.source_id,
    )


def record(usages, sign=1):
    """Add (sign=1) or take away (sign=-1) ledger rows from the roll-up.

    Writes delta rows: the roll-up is read with SUM grouped by its grain, so
    several rows of one key add up to the right figure and concurrent writers
    never conflict. ``compact_daily_usage`` merges them later. Call it in the
    transaction that writes the ledger rows, so the two never disagree.
    """
    deltas = {}
    for usage in usages:
        key = _key(usage)
        row = deltas.get(key)
        if row is None:
            day, model_name, provider, user_id, organization_id, source_id = key
            row = deltas[key] = DailyUsage(
                day=day,
                model_name=model_name,
                provider=provider,
                user_id=user_id,
                organization_id=organization_id,
                source_id=source_id,
            )
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
    DailyUsage.objects.bulk_create(deltas.values(), batch_size=2000)
    return len(deltas)


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


@transaction.atomic
def compact_daily_usage():
    """Merge roll-up rows that share a key (left by ``record``'s deltas).

    Rewrites only the days that hold such rows. Returns the number of days.
    """
    days = list(
        DailyUsage.objects.order_by()
        .values(*GRAIN)
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("day", flat=True)
        .distinct()
    )
    if not days:
        return 0
    merged = [
        DailyUsage(**{k: row[k] for k in GRAIN}, **{f: row[f"{f}_total"] for f in SUMMED})
        for row in DailyUsage.objects.filter(day__in=days)
        .order_by()
        .values(*GRAIN)
        .annotate(**{f"{f}_total": Sum(f) for f in SUMMED})
    ]
    DailyUsage.objects.filter(day__in=days).delete()
    DailyUsage.objects.bulk_create(merged, batch_size=2000)
    return len(days)
