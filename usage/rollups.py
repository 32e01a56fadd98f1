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
