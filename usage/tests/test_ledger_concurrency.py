"""Exact under concurrent writers (PostgreSQL): eight threads, each with its
own connection, insert, update and delete the same ledger ids through every
write function at once (the importer's COPY path included); afterwards every
roll-up key equals plain SQL over the ledger, and no writer hit a deadlock or
lost an update."""

import contextlib
import datetime as dt
import random
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from core.models import Source
from usage import ledger
from usage.models import ModelUsage
from usage.pricing import PriceBook
from usage.rollups import ROLLUPS, SUMMED

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL"),
]

WRITERS = 8
ROUNDS = 25
IDS = [f"u{n}" for n in range(24)]  # shared by every writer: they collide
START = dt.datetime(2024, 3, 1, 22, tzinfo=dt.UTC)


def _row(rng, source_pk):
    prompt, completion = rng.randrange(10_000), rng.randrange(10_000)
    return ModelUsage(
        source_pk=source_pk,
        model_name=rng.choice(["gpt-4o", "claude"]),
        provider="openai",
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_input_tokens=rng.choice([None, 0, prompt // 3]),
        reasoning_tokens=rng.choice([None, 0, completion // 2]),
        total_tokens=None,
        cost=rng.choice([None, Decimal(rng.randrange(10**6)) / 10**6]),
        timestamp=START + dt.timedelta(minutes=rng.randrange(6 * 60)),  # two days
        request_time_ms=rng.choice([None, rng.randrange(100_000)]),
        is_streaming=rng.random() < 0.5,
    )


LEDGER_VALUES = [f.attname for f in ModelUsage._meta.concrete_fields if not f.primary_key]


def _copy_batch(source, rows, book, optimistic):
    """What ingest.importers.writers.LedgerWriter does with a batch on
    PostgreSQL, in the batch's one transaction."""
    wanted = {
        row.source_pk: {
            name: getattr(row, name)
            for name in LEDGER_VALUES
            if name not in ("source_id", "source_pk", "user_id", "chat_id", "organization_id")
        }
        for row in rows
    }
    with transaction.atomic():
        ledger.copy_upsert(source, wanted, book, optimistic=optimistic)


def _writer(seed, source_pk, errors, barrier):
    rng = random.Random(seed)
    source = Source.objects.get(pk=source_pk)
    book = PriceBook()
    try:
        barrier.wait()
        for _ in range(ROUNDS):
            action = rng.random()
            ids = rng.sample(IDS, rng.randrange(1, 8))
            if action < 0.45:  # insert or update (API, importer batch on SQLite)
                ledger.upsert_usage(source, [_row(rng, pk) for pk in ids], price_book=book)
            elif action < 0.6:  # an importer batch on PostgreSQL: COPY the new, upsert the rest
                _copy_batch(source, [_row(rng, pk) for pk in ids], book, rng.random() < 0.5)
            elif action < 0.75:  # delete (admin)
                ledger.delete_usage(ModelUsage.objects.filter(source=source, source_pk__in=ids))
            elif action < 0.9:  # edit one row by hand (admin)
                row = ModelUsage.objects.filter(source=source, source_pk=ids[0]).first()
                if row is not None:
                    row.prompt_tokens = rng.randrange(10_000)
                    row.cached_input_tokens = rng.choice([None, row.prompt_tokens])
                    row.cost = Decimal(rng.randrange(1000)) / 100
                    with contextlib.suppress(ModelUsage.DoesNotExist):  # deleted meanwhile
                        ledger.save_usage(row)
            else:  # recompute_costs
                pks = ModelUsage.objects.filter(source=source, source_pk__in=ids)
                ledger.reprice(list(pks.values_list("pk", flat=True)), book)
    except Exception as error:  # noqa: BLE001 (reported by the test)
        errors.append(repr(error))
    finally:
        connections.close_all()


def _plain_sql(rollup):
    """{key: sums} of one roll-up's grain, by GROUP BY on usage_modelusage."""
    day = "(timestamp AT TIME ZONE %s)::date"
    if rollup.span == "month":
        day = "date_trunc('month', timestamp AT TIME ZONE %s)::date"
    keys = ", ".join([day, *rollup.grain[1:]])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {keys}, COUNT(*), COALESCE(SUM(prompt_tokens), 0), "  # noqa: S608
            "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(total_tokens), 0), "
            "COALESCE(SUM(cost), 0), COUNT(*) FILTER (WHERE cost IS NULL), "
            "COALESCE(SUM(total_tokens) FILTER (WHERE cost IS NULL), 0), "
            "COUNT(*) FILTER (WHERE is_streaming), COUNT(request_time_ms), "
            "COALESCE(SUM(request_time_ms), 0), "
            "COALESCE(SUM(cached_input_tokens), 0), COUNT(cached_input_tokens), "
            "COALESCE(SUM(reasoning_tokens), 0), COUNT(reasoning_tokens) FROM usage_modelusage "
            f"GROUP BY {', '.join(str(i + 1) for i in range(len(rollup.grain)))}",
            ["UTC"],
        )
        width = len(rollup.grain)
        return {tuple(r[:width]): tuple(r[width:]) for r in cursor.fetchall()}


def test_concurrent_writers_leave_every_rollup_equal_to_the_ledger(settings):
    settings.TIME_ZONE = "UTC"
    source = Source.objects.create(name="race", kind="auto_analyst")
    errors, barrier = [], threading.Barrier(WRITERS)
    threads = [
        threading.Thread(target=_writer, args=(seed, source.pk, errors, barrier))
        for seed in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []  # no deadlock, no unique violation, no other failure
    assert ModelUsage.objects.exists()
    for rollup in ROLLUPS:
        got = {
            tuple(row[: len(rollup.grain)]): tuple(row[len(rollup.grain) :])
            for row in rollup.rows().values_list(*rollup.grain, *SUMMED)
        }
        assert len(got) == rollup.rows().count()  # one row per key
        assert got == _plain_sql(rollup), rollup
        if rollup.latency:
            timed = ModelUsage.objects.filter(request_time_ms__isnull=False).count()
            assert sum(rollup.latency.objects.values_list("requests", flat=True)) == timed
