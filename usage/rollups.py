"""The roll-ups of the usage ledger: ``DailyUsage`` and ``DailyLatency``.

Days are cut in settings.TIME_ZONE, the zone the dashboards display. Writers
add delta rows (``record``) in the transaction that changes the ledger;
readers always SUM over the grain, so several rows of one key are correct and
concurrent writers never conflict. ``compact`` merges them, ``rebuild``
recomputes everything from the ledger with the same results.
"""

from django.db import transaction
from django.db.models import Case, Count, IntegerField, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import LATENCY_BUCKETS_MS, DailyLatency, DailyUsage, ModelUsage, latency_bucket

GRAIN = ("day", "model_name", "provider", "user_id", "organization_id", "source_id")
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


def _local_day():
    return TruncDate("timestamp", tzinfo=timezone.get_current_timezone())


def _bucket_expression():
    whens = [
        When(request_time_ms__lt=bound, then=Value(index))
        for index, bound in enumerate(LATENCY_BUCKETS_MS)
    ]
    return Case(*whens, default=Value(len(LATENCY_BUCKETS_MS)), output_field=IntegerField())


def aggregate_ledger(queryset):
    """DailyUsage rows (unsaved) for ledger rows, with one GROUP BY."""
    rows = (
        queryset.order_by()
        .annotate(day=_local_day())
        .values(*GRAIN)
        .annotate(
            n=Count("id"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            total=Sum("total_tokens"),
            cost_total=Sum("cost"),
            unpriced=Count("id", filter=Q(cost__isnull=True)),
            streaming=Count("id", filter=Q(is_streaming=True)),
            timed=Count("request_time_ms"),
            time_total=Sum("request_time_ms"),
        )
    )
    for row in rows.iterator(chunk_size=5000):
        yield DailyUsage(
            **{key: row[key] for key in GRAIN},
            requests=row["n"],
            prompt_tokens=row["prompt"] or 0,
            completion_tokens=row["completion"] or 0,
            total_tokens=row["total"] or 0,
            cost=row["cost_total"] or 0,
            unpriced_requests=row["unpriced"],
            streaming_requests=row["streaming"],
            timed_requests=row["timed"],
            request_time_ms_sum=row["time_total"] or 0,
        )


def aggregate_latency(queryset):
    """DailyLatency rows (unsaved) for ledger rows with a request time."""
    rows = (
        queryset.filter(request_time_ms__isnull=False)
        .order_by()
        .annotate(day=_local_day(), bucket=_bucket_expression())
        .values(*GRAIN, "bucket")
        .annotate(n=Count("id"))
    )
    for row in rows.iterator(chunk_size=5000):
        yield DailyLatency(
            **{key: row[key] for key in GRAIN}, bucket=row["bucket"], requests=row["n"]
        )


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
    """Add (sign=1) or take away (sign=-1) ledger rows from the roll-ups.

    Call it in the transaction that writes the ledger rows, so the two never
    disagree. Returns the number of DailyUsage delta rows written.
    """
    usage_deltas, latency_deltas = {}, {}
    for usage in usages:
        key = _key(usage)
        row = usage_deltas.get(key)
        if row is None:
            row = usage_deltas[key] = DailyUsage(**dict(zip(GRAIN, key, strict=True)))
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
            bucket_key = (*key, latency_bucket(usage.request_time_ms))
            latency = latency_deltas.get(bucket_key)
            if latency is None:
                latency = latency_deltas[bucket_key] = DailyLatency(
                    **dict(zip(GRAIN, key, strict=True)), bucket=bucket_key[-1]
                )
            latency.requests += sign
    DailyUsage.objects.bulk_create(usage_deltas.values(), batch_size=2000)
    DailyLatency.objects.bulk_create(latency_deltas.values(), batch_size=2000)
    return len(usage_deltas)


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
    """Replace both roll-ups with ones computed from the whole ledger.

    Returns (DailyUsage rows, DailyLatency rows) written.
    """
    DailyUsage.objects.all().delete()
    DailyLatency.objects.all().delete()
    ledger = ModelUsage.objects.all()
    return (
        _bulk_write(DailyUsage, aggregate_ledger(ledger)),
        _bulk_write(DailyLatency, aggregate_latency(ledger)),
    )


def _compact(model, grain, summed):
    days = list(
        model.objects.order_by()
        .values(*grain)
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("day", flat=True)
        .distinct()
    )
    if not days:
        return 0
    merged = [
        model(**{k: row[k] for k in grain}, **{f: row[f"{f}_total"] for f in summed})
        for row in model.objects.filter(day__in=days)
        .order_by()
        .values(*grain)
        .annotate(**{f"{f}_total": Sum(f) for f in summed})
    ]
    model.objects.filter(day__in=days).delete()
    model.objects.bulk_create(merged, batch_size=2000)
    return len(days)


@transaction.atomic
def compact():
    """Merge roll-up rows that share a key (left by ``record``'s deltas).

    Rewrites only the days that hold such rows. Returns the number of days.
    """
    return max(
        _compact(DailyUsage, GRAIN, SUMMED),
        _compact(DailyLatency, (*GRAIN, "bucket"), ("requests",)),
    )

