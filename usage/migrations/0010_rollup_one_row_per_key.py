"""One roll-up row per key: merge the delta rows writers appended, then a
unique index on each roll-up's grain (NULL keys equal: COALESCE(…, 0)), which
also serves the period scans the dropped (day, model, provider) indexes did.
``total_tokens`` has no default: usage.ledger derives it only when not
reported (no SQL change).

Reversing drops the unique indexes and restores the old ones; merged rows
stay merged (readers sum over the grain either way).
"""

import django.db.models.functions.comparison
from django.db import migrations, models
from django.db.models import Count, Sum

MEASURES = (
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
TOTAL = ("day", "model_name", "provider")
MODEL = (*TOTAL, "organization_id", "source_id")
USER = (*MODEL, "user_id")
TABLES = (
    ("dailyusage", USER, MEASURES),
    ("dailymodelusage", MODEL, MEASURES),
    ("dailytotal", TOTAL, MEASURES),
    ("userusage", ("span", "day", "user_id", "organization_id"), MEASURES),
    ("dailylatency", (*USER, "bucket"), ("requests",)),
    ("dailymodellatency", (*MODEL, "bucket"), ("requests",)),
    ("dailytotallatency", (*TOTAL, "bucket"), ("requests",)),
)


def merge(apps, schema_editor):
    """Rewrite the days that hold several rows of one key as one row per key."""
    for name, grain, summed in TABLES:
        model = apps.get_model("usage", name)
        rows = model.objects.all()
        days = list(
            rows.order_by()
            .values(*grain)
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .values_list("day", flat=True)
            .distinct()
        )
        for start in range(0, len(days), 50):
            chunk = days[start : start + 50]
            merged = [
                model(**{k: row[k] for k in grain}, **{f: row[f"{f}_total"] for f in summed})
                for row in rows.filter(day__in=chunk)
                .order_by()
                .values(*grain)
                .annotate(**{f"{f}_total": Sum(f) for f in summed})
                if row["requests_total"]
            ]
            rows.filter(day__in=chunk).delete()
            model.objects.bulk_create(merged, batch_size=2000)
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            for name, _, _ in TABLES:
                cursor.execute(f"ANALYZE usage_{name}")


def coalesce(name):
    return django.db.models.functions.comparison.Coalesce(name, 0)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0007_sync_groups_templateversion"),
        ("usage", "0009_spend_watch"),
    ]

    operations = [
        migrations.RunPython(merge, migrations.RunPython.noop, elidable=True),
        migrations.AddConstraint(
            model_name="dailyusage",
            constraint=models.UniqueConstraint(
                models.F("day"),
                models.F("model_name"),
                models.F("provider"),
                coalesce("organization"),
                coalesce("source"),
                coalesce("user"),
                name="usage_daily_key_uniq",
            ),
        ),
        migrations.AddConstraint(
            model_name="dailymodelusage",
            constraint=models.UniqueConstraint(
                models.F("day"),
                models.F("model_name"),
                models.F("provider"),
                coalesce("organization"),
                coalesce("source"),
                name="usage_dmu_key_uniq",
            ),
        ),
        migrations.AddConstraint(
            model_name="dailytotal",
            constraint=models.UniqueConstraint(
                models.F("day"),
                models.F("model_name"),
                models.F("provider"),
                name="usage_dt_key_uniq",
            ),
        ),
        migrations.AddConstraint(
            model_name="userusage",
            constraint=models.UniqueConstraint(
                models.F("span"),
                models.F("day"),
                coalesce("user"),
                coalesce("organization"),
                name="usage_uu_key_uniq",
            ),
        ),
        migrations.AddConstraint(
            model_name="dailylatency",
            constraint=models.UniqueConstraint(
                models.F("day"),
                models.F("model_name"),
                models.F("provider"),
                coalesce("organization"),
                coalesce("source"),
                coalesce("user"),
                models.F("bucket"),
                name="usage_lat_key_uniq",
            ),
        ),
        migrations.AddConstraint(
            model_name="dailymodellatency",
            constraint=models.UniqueConstraint(
                models.F("day"),
                models.F("model_name"),
                models.F("provider"),
                coalesce("organization"),
                coalesce("source"),
                models.F("bucket"),
                name="usage_dml_key_uniq",
            ),
        ),
        migrations.AddConstraint(
            model_name="dailytotallatency",
            constraint=models.UniqueConstraint(
                models.F("day"),
                models.F("model_name"),
                models.F("provider"),
                models.F("bucket"),
                name="usage_dtl_key_uniq",
            ),
        ),
        migrations.RemoveIndex(model_name="dailylatency", name="usage_lat_day_model_idx"),
        migrations.RemoveIndex(model_name="dailymodellatency", name="usage_dml_day_model_idx"),
        migrations.RemoveIndex(model_name="dailymodelusage", name="usage_dmu_day_model_idx"),
        migrations.RemoveIndex(model_name="dailytotal", name="usage_dt_day_model_idx"),
        migrations.RemoveIndex(model_name="dailytotallatency", name="usage_dtl_day_model_idx"),
        migrations.RemoveIndex(model_name="dailyusage", name="usage_daily_day_model_idx"),
        migrations.RemoveIndex(model_name="userusage", name="usage_uu_span_day_idx"),
        migrations.AlterField(
            model_name="modelusage",
            name="total_tokens",
            field=models.BigIntegerField(blank=True, default=None),
        ),
    ]
