"""usage.ledger is the one write path: writes elsewhere raise, the source
holds none, every writer keeps the roll-ups equal to plain SQL over the
ledger at one row per key, and no row outside core.bounds gets in."""

import datetime as dt
import random
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.tests import factories as f
from usage import ledger
from usage.models import (
    DailyLatency,
    DailyModelUsage,
    DailyTotal,
    DailyTotalLatency,
    DailyUsage,
    LedgerBypass,
    ModelUsage,
    UserUsage,
)
from usage.rollups import ROLLUPS, SUMMED

pytestmark = pytest.mark.django_db

GUARDED = ("ModelUsage", *(m.__name__ for r in ROLLUPS for m in (r.usage, r.latency) if m))


def _row(**fields):
    values = {
        "model_name": "gpt-4o",
        "provider": "openai",
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "cost": Decimal("0.01"),
        "timestamp": dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC),
        "request_time_ms": 900,
    }
    return ModelUsage(**{**values, **fields})


# -- the guard ------------------------------------------------------------------------


def test_writes_outside_the_ledger_module_raise():
    (saved,) = ledger.add_usage([_row()])
    day = dt.date(2024, 3, 1)
    attempts = {
        "create": lambda: ModelUsage.objects.create(model_name="x", provider="y", total_tokens=0),
        "bulk_create": lambda: ModelUsage.objects.bulk_create([_row(total_tokens=150)]),
        "update": lambda: ModelUsage.objects.filter(pk=saved.pk).update(cost=0),
        "bulk_update": lambda: ModelUsage.objects.bulk_update([saved], ["cost"]),
        "queryset delete": lambda: ModelUsage.objects.filter(pk=saved.pk).delete(),
        "save": saved.save,
        "instance delete": saved.delete,
        "roll-up create": lambda: DailyTotal.objects.create(day=day, model_name="m", provider="p"),
        "roll-up update": lambda: DailyUsage.objects.update(requests=0),
        "roll-up delete": lambda: UserUsage.objects.all().delete(),
        "latency bulk_create": lambda: DailyLatency.objects.bulk_create(
            [DailyLatency(day=day, model_name="m", provider="p", bucket=1)]
        ),
        "roll-up save": lambda: DailyModelUsage(day=day, model_name="m", provider="p").save(),
    }
    for name, attempt in attempts.items():
        with pytest.raises(LedgerBypass):
            attempt()
        assert ModelUsage.objects.count() == 1, name
    assert DailyTotal.objects.get().requests == 1


# Writes to the ledger or a roll-up: a guarded model's manager write, raw
# SQL that changes their tables, or a COPY into them.
_NAMES = "|".join(GUARDED)
_TABLES = "usage_(?:modelusage|daily\\w*|userusage)"
WRITES = [
    re.compile(
        rf"\b(?:{_NAMES})\.(?:objects|_default_manager|_base_manager)\b[^\n]*?"
        r"\.(?:create|bulk_create|bulk_update|update|update_or_create|get_or_create|delete)\("
    ),
    re.compile(rf"(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY|TRUNCATE)\s+\"?{_TABLES}\b", re.I),
    re.compile(r"\b(?:rollup|r)\.(?:usage|latency)\.objects\b[^\n]*\.(?:bulk_create|delete)\("),
]


def _app_sources():
    root = Path(settings.BASE_DIR)
    for package in ("analyst_admin", "core", "chats", "usage", "reports", "ingest"):
        for path in (root / package).rglob("*.py"):
            relative = path.relative_to(root).as_posix()
            if "/tests/" in relative or "/migrations/" in relative:
                continue
            yield relative, path.read_text(encoding="utf-8")


def test_no_source_writes_the_ledger_outside_the_ledger_module():
    found = [
        f"{relative}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)[:80]}"
        for relative, text in _app_sources()
        if relative != "usage/ledger.py"
        for pattern in WRITES
        for match in pattern.finditer(text)
    ]
    assert found == []


def test_the_source_scan_finds_a_bypass():
    """The patterns above catch the writes they are meant to."""
    samples = [
        "ModelUsage.objects.bulk_create(rows)",
        "DailyUsage.objects.filter(user_id=1).update(user_id=None)",
        'cursor.execute("INSERT INTO usage_dailytotal (day) VALUES (%s)")',
        "COPY usage_modelusage (a, b) FROM STDIN",
        "rollup.usage.objects.bulk_create(deltas)",
    ]
    assert all(any(p.search(s) for p in WRITES) for s in samples)
    assert not any(p.search("ModelUsage.objects.filter(pk=1).count()") for p in WRITES)


# -- bounds and reported values ----------------------------------------------------------


def test_refusal_names_each_bound():
    now = timezone.now()
    assert ledger.refusal(_row(total_tokens=150)) is None
    assert "prompt_tokens" in ledger.refusal(_row(prompt_tokens=10**9 + 1))
    assert "completion_tokens" in ledger.refusal(_row(completion_tokens=-1))
    assert "total_tokens" in ledger.refusal(_row(total_tokens=2**63 - 1))
    assert "cost" in ledger.refusal(_row(cost=Decimal("100000.01")))
    assert "cost" in ledger.refusal(_row(cost=Decimal("-0.01")))
    assert "timestamp" in ledger.refusal(_row(timestamp=dt.datetime(1999, 12, 31, tzinfo=dt.UTC)))
    assert "timestamp" in ledger.refusal(_row(timestamp=now + dt.timedelta(days=2)))
    assert ledger.refusal(_row(timestamp=now + dt.timedelta(hours=23))) is None
    assert "cached_input_tokens" in ledger.refusal(_row(cached_input_tokens=-1))
    assert "reasoning_tokens" in ledger.refusal(_row(reasoning_tokens=10**9 + 1))
    assert "reasoning_tokens" in ledger.refusal(_row(reasoning_tokens=True))


def test_a_part_larger_than_its_whole_is_refused():
    """Cached input tokens are part of the prompt tokens, reasoning tokens
    part of the completion tokens: each at most its whole; None is unknown."""
    assert ledger.refusal(_row(cached_input_tokens=100, reasoning_tokens=50)) is None
    assert ledger.refusal(_row(cached_input_tokens=0, reasoning_tokens=0)) is None
    assert ledger.refusal(_row(cached_input_tokens=None, reasoning_tokens=None)) is None
    assert ledger.refusal(_row(cached_input_tokens=101)) == (
        "cached_input_tokens: 101 is more than the 100 of prompt_tokens"
    )
    assert ledger.refusal(_row(reasoning_tokens=51)) == (
        "reasoning_tokens: 51 is more than the 50 of completion_tokens"
    )
    with pytest.raises(ledger.LedgerRefusal, match="cached_input_tokens"):
        ledger.add_usage([_row(cached_input_tokens=101)])
    assert not ModelUsage.objects.exists()


def test_the_new_token_counts_are_stored_as_reported_and_updated():
    source = f.SourceFactory()
    ledger.upsert_usage(
        source,
        [
            _row(source_pk="unknown"),
            _row(source_pk="zero", cached_input_tokens=0, reasoning_tokens=0),
            _row(source_pk="parts", cached_input_tokens=100, reasoning_tokens=50),
        ],
    )
    stored = dict(
        ModelUsage.objects.values_list("source_pk", "cached_input_tokens").order_by("source_pk")
    )
    assert stored == {"parts": 100, "unknown": None, "zero": 0}
    # the total is prompt + completion: the parts are not added again
    assert set(ModelUsage.objects.values_list("total_tokens", flat=True)) == {150}
    result = ledger.upsert_usage(
        source, [_row(source_pk="zero", cached_input_tokens=0, reasoning_tokens=0)]
    )
    assert len(result["unchanged"]) == 1
    result = ledger.upsert_usage(source, [_row(source_pk="zero", reasoning_tokens=20)])
    assert len(result["updated"]) == 1
    row = ModelUsage.objects.get(source_pk="zero")
    assert (row.cached_input_tokens, row.reasoning_tokens) == (None, 20)
    total = DailyTotal.objects.get()
    assert (total.cached_input_tokens, total.cached_reported_requests) == (100, 1)
    assert (total.reasoning_tokens, total.reasoning_reported_requests) == (70, 2)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's")
def test_the_copy_path_carries_the_new_token_counts(settings):
    settings.TIME_ZONE = "UTC"
    source = f.SourceFactory()
    f.ModelPriceFactory(
        model_name="gpt-4o",
        provider="openai",
        input_per_million=Decimal("2.5"),
        output_per_million=Decimal("10"),
        cached_input_per_million=Decimal("1.25"),
        reasoning_per_million=Decimal("20"),
        effective_from=dt.date(2024, 1, 1),
    )
    fields = {
        "model_name": "gpt-4o",
        "provider": "openai",
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "timestamp": dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC),
        "cost": None,
        "cost_source": ModelUsage.CostSource.COMPUTED,
    }
    result = ledger.copy_upsert(
        source,
        {
            "a": {**fields, "cached_input_tokens": 400, "reasoning_tokens": 60},
            "b": {**fields, "cached_input_tokens": 0},
            "c": fields,
        },
        ledger.PriceBook(),
    )
    assert len(result["created"]) == 3
    rows = {
        r.source_pk: (r.cached_input_tokens, r.reasoning_tokens, r.cost)
        for r in ModelUsage.objects.all()
    }
    # a: 600 x 2.5 + 400 x 1.25 + 40 x 10 + 60 x 20 per million
    assert rows == {
        "a": (400, 60, Decimal("0.00360000")),
        "b": (0, None, Decimal("0.00350000")),
        "c": (None, None, Decimal("0.00350000")),
    }
    assert_rollups_equal_ledger()
    before = _rollup()
    ledger.rebuild()
    assert _rollup() == before


def test_every_write_function_refuses_a_row_out_of_bounds():
    source = f.SourceFactory()
    (kept,) = ledger.add_usage([_row()])
    with pytest.raises(ledger.LedgerRefusal, match="prompt_tokens"):
        ledger.add_usage([_row(prompt_tokens=2**63 - 1)])
    with pytest.raises(ledger.LedgerRefusal, match="cost"):
        ledger.upsert_usage(source, [_row(source_pk="a", cost=Decimal(10**6))])
    kept.total_tokens = 10**10
    with pytest.raises(ledger.LedgerRefusal, match="total_tokens"):
        ledger.save_usage(kept)
    assert ModelUsage.objects.count() == 1
    assert DailyTotal.objects.get().total_tokens == 150


def test_reported_total_stays_as_reported():
    zero, derived = ledger.add_usage([_row(total_tokens=0), _row(total_tokens=None)])
    assert ModelUsage.objects.get(pk=zero.pk).total_tokens == 0
    assert ModelUsage.objects.get(pk=derived.pk).total_tokens == 150


# -- every writer keeps the roll-ups equal to plain SQL --------------------------------------


def _plain_sql(table_grain, zone="UTC"):
    """{key: measures} of DailyUsage's grain, straight from usage_modelusage."""
    day = (
        "(timestamp AT TIME ZONE 'UTC')::date"
        if connection.vendor == "postgresql"
        else "date(timestamp)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {day}, model_name, provider, organization_id, source_id, user_id, "  # noqa: S608
            "COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
            "COALESCE(SUM(total_tokens), 0), COALESCE(SUM(cost), 0), "
            "SUM(CASE WHEN cost IS NULL THEN 1 ELSE 0 END), "
            "COALESCE(SUM(CASE WHEN cost IS NULL THEN total_tokens ELSE 0 END), 0), "
            "SUM(CASE WHEN is_streaming THEN 1 ELSE 0 END), COUNT(request_time_ms), "
            "COALESCE(SUM(request_time_ms), 0), "
            "COALESCE(SUM(cached_input_tokens), 0), COUNT(cached_input_tokens), "
            "COALESCE(SUM(reasoning_tokens), 0), COUNT(reasoning_tokens) "
            "FROM usage_modelusage GROUP BY 1, 2, 3, 4, 5, 6"
        )
        rows = cursor.fetchall()
    return {
        (str(r[0]), *r[1:6]): tuple(Decimal(str(v)).quantize(Decimal("1e-8")) for v in r[6:])
        for r in rows
    }


def _rollup(model=DailyUsage):
    grain = ("day", "model_name", "provider", "organization_id", "source_id", "user_id")
    return {
        (str(r[0]), *r[1:6]): tuple(Decimal(str(v)).quantize(Decimal("1e-8")) for v in r[6:])
        for r in model.objects.values_list(*grain, *SUMMED)
    }


def assert_rollups_equal_ledger():
    """DailyUsage equals plain SQL; every roll-up holds one row per key and
    the same totals; latency histograms count the timed requests."""
    assert _rollup() == _plain_sql(None)
    for rollup in ROLLUPS:
        rows = list(rollup.rows().values_list(*rollup.grain))
        assert len(rows) == len(set(rows)), rollup
        sums = [sum(col) for col in zip(*rollup.rows().values_list(*SUMMED), strict=True)]
        ledger_sums = [sum(v[i] for v in _plain_sql(None).values()) for i in range(len(SUMMED))]
        assert [Decimal(s).quantize(Decimal("1e-8")) for s in sums or [0] * len(SUMMED)] == [
            Decimal(s).quantize(Decimal("1e-8")) for s in ledger_sums or [0] * len(SUMMED)
        ], rollup
    timed = ModelUsage.objects.filter(request_time_ms__isnull=False).count()
    assert sum(DailyTotalLatency.objects.values_list("requests", flat=True)) == timed
    assert not DailyUsage.objects.filter(requests__lte=0).exists()


def test_every_writer_keeps_the_rollups_exact(settings):
    settings.TIME_ZONE = "UTC"
    org = f.OrganizationFactory()
    ann, bob = f.AppUserFactory(organization=org), f.AppUserFactory(organization=org)
    source = f.SourceFactory()
    # API / importer batch path: insert, re-send unchanged, change.
    rows = [
        _row(
            source_pk=str(n),
            user=ann if n % 2 else bob,
            cost=None if n % 3 == 0 else "0.5",
            # not reported, reported 0, reported parts
            cached_input_tokens=(None, 0, 60)[n % 3],
            reasoning_tokens=(None, 50, 0, 7)[n % 4],
        )
        for n in range(12)
    ]
    ledger.upsert_usage(source, rows)
    assert_rollups_equal_ledger()
    changed = [
        _row(
            source_pk=str(n),
            user=bob,
            model_name="claude",
            timestamp=dt.datetime(2024, 3, 2, tzinfo=dt.UTC),
            cached_input_tokens=(100, None)[n % 2],
        )
        for n in range(6)
    ]
    result = ledger.upsert_usage(source, changed + [_row(source_pk="new", user=None)])
    assert (len(result["created"]), len(result["updated"])) == (1, 6)
    assert_rollups_equal_ledger()
    # Admin: add, edit, delete one, delete a queryset.
    (added,) = ledger.add_usage([_row(user=ann, request_time_ms=None)])
    added.cost, added.prompt_tokens, added.cached_input_tokens = Decimal("3"), 7, 7
    ledger.save_usage(added)
    assert_rollups_equal_ledger()
    ledger.delete_usage([added])
    ledger.delete_usage(ModelUsage.objects.filter(model_name="claude")[:3])
    assert_rollups_equal_ledger()
    # recompute_costs after a price appears.
    f.ModelPriceFactory(
        model_name="gpt-4o",
        provider="openai",
        effective_from=dt.date(2024, 1, 1),
        cached_input_per_million=Decimal("0.5"),
    )
    unpriced = list(ModelUsage.objects.filter(cost__isnull=True).values_list("pk", flat=True))
    assert ledger.reprice(unpriced, ledger.PriceBook())
    assert_rollups_equal_ledger()
    # Deletes the ledger sees as SET NULL: an app user, an organisation.
    ann.delete()
    assert_rollups_equal_ledger()
    org.delete()
    assert_rollups_equal_ledger()
    assert DailyUsage.objects.filter(user_id=None, organization_id=None).exists()
    # A rebuild changes nothing.
    before = _rollup()
    ledger.rebuild()
    assert _rollup() == before


# -- small without a cron ----------------------------------------------------------------------


def test_rollups_hold_one_row_per_key_after_many_batches(settings):
    """20,000 rows in 40 overlapping batches (new rows, re-sent and changed
    ones): every roll-up holds one row per key and equals plain SQL."""
    settings.TIME_ZONE = "UTC"
    rng = random.Random(15)
    users = [f.AppUserFactory() for _ in range(3)] + [None]
    source = f.SourceFactory()
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    for batch in range(40):
        rows = [
            _row(
                source_pk=str(batch * 500 + n - (250 if batch and n < 100 else 0)),
                user=rng.choice(users),
                model_name=rng.choice(["gpt-4o", "claude", "llama"]),
                prompt_tokens=rng.randrange(10**4, 10**6),
                cached_input_tokens=rng.choice([None, 0, rng.randrange(10**4)]),
                reasoning_tokens=rng.choice([None, 0, 50]),
                cost=rng.choice([None, Decimal(rng.randrange(10**6)) / 10**6]),
                timestamp=start + dt.timedelta(minutes=rng.randrange(60 * 24 * 5)),
                request_time_ms=rng.choice([None, rng.randrange(200_000)]),
                is_streaming=rng.random() < 0.3,
            )
            for n in range(500)
        ]
        ledger.upsert_usage(source, rows)
    assert ModelUsage.objects.count() == 40 * 500 - 39 * 100
    assert_rollups_equal_ledger()
    keys = len(_plain_sql(None))
    assert DailyUsage.objects.count() == keys <= 6 * 3 * 4
