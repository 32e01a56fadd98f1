"""Converting a 1M-row ledger while writers write (PostgreSQL; issue #21).

One million rows over six months are generated in SQL (INSERT … SELECT
generate_series) and the roll-ups rebuilt from them; then the ledger is
partitioned with ``prepare``, ``copy`` (100,000-row batches) and ``swap``
while two writers insert, update (moving rows across months) and delete
through usage.ledger. After the swap the old table and the partitioned one
hold the same rows, value for value; every roll-up equals plain SQL over
the partitioned ledger, and again after January is detached. The figures
measured (rows/s, the time the swap held its locks, the detach) are printed
(``-s``) and written down in docs/DEPLOY.md §12.

Runs in the PostgreSQL half of CI (about a minute); ``-m "not million_rows"``
leaves it out of a quick local run.
"""

import datetime as dt
import random
import threading
import time

import pytest
from django.db import connection, connections

from core.models import Source
from usage import ledger, partitions
from usage.models import ModelUsage

from .partitioning import restore_plain
from .test_partitions import assert_no_key_twice, assert_rollups_equal_ledger, utc

ROWS = 1_000_000

pytestmark = [
    pytest.mark.million_rows,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="declarative partitioning is PostgreSQL's; SQLite keeps the plain ledger",
    ),
    pytest.mark.django_db(transaction=True),
]


def _generate(source_id):
    """ROWS ledger rows in SQL: 2024-01 to 2024-06, three models, a tenth
    unpriced, a twentieth with no request time, keys g1 … g1000000."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {partitions.LEDGER} (
                source_id, source_pk, model_name, provider, prompt_tokens,
                completion_tokens, total_tokens, query_size, response_size, cost,
                cost_source, "timestamp", is_streaming, request_time_ms,
                cached_input_tokens, reasoning_tokens)
            SELECT %s, 'g' || n, (ARRAY['gpt-4o', 'claude', 'llama'])[n %% 3 + 1],
                'p', n %% 1000, n %% 100, n %% 1000 + n %% 100, 0, 0,
                CASE WHEN n %% 10 = 0 THEN NULL ELSE (n %% 997) / 100000.0 END,
                'reported',
                timestamptz '2024-01-01 00:00:00+00' + (n * interval '15.5 seconds'),
                n %% 2 = 0,
                CASE WHEN n %% 20 = 0 THEN NULL ELSE n %% 5000 END,
                CASE WHEN n %% 4 = 0 THEN n %% 500 END, NULL
            FROM generate_series(1, %s) AS n
            """,  # noqa: S608 (the ledger's name)
            [source_id, ROWS],
        )
        cursor.execute(f"ANALYZE {partitions.LEDGER}")


def _writer(seed, source_pk, stop, errors, done):
    rng = random.Random(seed)
    source = Source.objects.get(pk=source_pk)
    try:
        while not stop.is_set():
            keys = [f"g{rng.randrange(1, ROWS + 1)}" for _ in range(5)] + [f"w{seed}-{done[seed]}"]
            action = rng.random()
            if action < 0.6:
                rows = [
                    ModelUsage(
                        source_pk=key,
                        model_name="gpt-4o",
                        provider="p",
                        prompt_tokens=rng.randrange(1000),
                        completion_tokens=1,
                        total_tokens=None,
                        cost=None,
                        # anywhere in the six months: rows move across them
                        timestamp=utc(2024, 1, 1) + dt.timedelta(hours=rng.randrange(24 * 180)),
                        request_time_ms=rng.randrange(5000),
                    )
                    for key in keys
                ]
                ledger.upsert_usage(source, rows)
            else:
                ledger.delete_usage(ModelUsage.objects.filter(source=source, source_pk__in=keys))
            done[seed] += 1
    except Exception as error:  # noqa: BLE001 (reported by the test)
        errors.append(repr(error))
    finally:
        connections.close_all()


def test_a_million_row_ledger_converts_online(settings):
    settings.TIME_ZONE = "UTC"
    source = Source.objects.create(name="million", kind="auto_analyst")
    started = time.monotonic()
    _generate(source.pk)
    ledger.rebuild()
    generated = time.monotonic() - started

    stop, errors, done = threading.Event(), [], {0: 0, 1: 0}
    threads = [
        threading.Thread(target=_writer, args=(seed, source.pk, stop, errors, done))
        for seed in done
    ]
    for thread in threads:
        thread.start()
    try:
        t0 = time.monotonic()
        partitions.prepare(months_ahead=3, log=lambda message: None)
        t1 = time.monotonic()
        copied = partitions.copy(batch_size=100_000, log=lambda message: None)
        t2 = time.monotonic()
        writes_during_copy = sum(done.values())
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        held = partitions.swap(log=lambda message: None)
        assert errors == []
        assert writes_during_copy > 0
        print(  # noqa: T201 (the bench figures, with -s)
            f"\n1M conversion: generated + rebuilt in {generated:.1f} s; prepare {t1 - t0:.2f} s; "
            f"copy {copied} rows in {t2 - t1:.1f} s ({copied / (t2 - t1):,.0f} rows/s) "
            f"with {writes_during_copy} writer transactions meanwhile; swap locks held "
            f"{held * 1000:.0f} ms"
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COUNT(*) FROM {partitions.OLD} o FULL JOIN {partitions.LEDGER} n "  # noqa: S608
                "ON o.id = n.id WHERE o.id IS NULL OR n.id IS NULL "
                "OR ROW(o.*)::text <> ROW(n.*)::text"
            )
            assert cursor.fetchone()[0] == 0
            cursor.execute(f"SELECT COUNT(*) FROM {partitions.DEFAULT}")  # noqa: S608
            assert cursor.fetchone()[0] == 0
        assert_no_key_twice()
        assert_rollups_equal_ledger()
        # Detaching January (about 167,000 rows): writes wait while its sums
        # leave the roll-ups; the DETACH itself holds its lock briefly.
        lines, t3 = [], time.monotonic()
        entry = partitions.detach(2024, 1, log=lines.append)
        took = time.monotonic() - t3
        print(f"detach 2024-01: {entry.old_values['rows']} rows in {took:.2f} s; {lines[0]}")  # noqa: T201
        assert entry.old_values["rows"] > 150_000
        assert not ModelUsage.objects.filter(timestamp__lt=utc(2024, 2, 1)).exists()
        assert_rollups_equal_ledger()
    finally:
        stop.set()
        restore_plain()
