"""The partitioned ledger at N rows: conversion rate, swap lock, import rate
before and after, and a month's detach (PostgreSQL).

    createdb -h 127.0.0.1 -U postgres aa_part
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/aa_part \\
        .venv/bin/python bench/partition_bench.py --rows 1000000

The database named by DATABASE_URL is migrated, and must hold an empty
ledger: the script generates ``--rows`` ledger rows over six months of 2024
in SQL, rebuilds the roll-ups, times import batches through
``usage.ledger.copy_upsert`` (the importers' COPY path: new rows, then the
same rows changed), converts the ledger with ``usage.partitions.convert``,
times the same batches on the partitioned ledger, detaches January, and
prints a markdown table. It leaves the database partitioned: drop it after.
"""

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _env  # noqa: E402, F401 (before Django starts)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analyst_admin.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from core.models import Source  # noqa: E402
from usage import ledger, partitions  # noqa: E402
from usage.models import ModelUsage  # noqa: E402


def generate(source_id, rows):
    with connection.cursor() as cursor:
        seconds = 180 * 86400 / rows
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
                'reported', timestamptz '2024-01-01 00:00:00+00' + n * %s * interval '1 second',
                n %% 2 = 0, CASE WHEN n %% 20 = 0 THEN NULL ELSE n %% 5000 END,
                CASE WHEN n %% 4 = 0 THEN n %% 500 END, NULL
            FROM generate_series(1, %s) AS n
            """,  # noqa: S608 (the ledger's name)
            [source_id, seconds, rows],
        )
        cursor.execute(f"VACUUM ANALYZE {partitions.LEDGER}")


def import_rate(source, label, batches, size):
    """Rows/s of ``batches`` COPY-path batches of new rows, then of the same
    rows changed."""
    book = ledger.PriceBook()
    start_day = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    rates = []
    for changed in (False, True):
        t0 = time.monotonic()
        for batch in range(batches):
            wanted = {
                f"{label}-{batch}-{n}": {
                    "model_name": "gpt-4o",
                    "provider": "p",
                    "prompt_tokens": n + (7 if changed else 0),
                    "completion_tokens": 1,
                    "total_tokens": None,
                    "cost": None,
                    "timestamp": start_day + dt.timedelta(seconds=n * 37 + batch),
                    "request_time_ms": n % 3000,
                }
                for n in range(size)
            }
            with transaction.atomic():
                result = ledger.copy_upsert(source, wanted, book)
            assert len(result["updated" if changed else "created"]) == size
        rates.append(batches * size / (time.monotonic() - t0))
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--import-batches", type=int, default=5)
    parser.add_argument("--import-size", type=int, default=5000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("PostgreSQL only: set DATABASE_URL to a throwaway database")
    call_command("migrate", verbosity=0)
    if partitions.state() != "plain" or ModelUsage.objects.exists():
        sys.exit("the ledger must be plain and empty: use a fresh database")
    source = Source.objects.create(name="bench", kind="auto_analyst")
    t0 = time.monotonic()
    generate(source.pk, args.rows)
    ledger.rebuild()
    print(f"generated {args.rows:,} rows and rebuilt the roll-ups in {time.monotonic() - t0:.1f} s")
    plain = import_rate(source, "plain", args.import_batches, args.import_size)

    lines = []
    t0 = time.monotonic()
    result = partitions.convert(batch_size=args.batch_size, log=lines.append)
    took = time.monotonic() - t0
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {partitions.LEDGER}")
    parted = import_rate(source, "parted", args.import_batches, args.import_size)

    t0 = time.monotonic()
    detach_lines = []
    entry = partitions.detach(2024, 1, log=detach_lines.append)
    detach_took = time.monotonic() - t0

    print()
    print(f"| {args.rows:,} ledger rows | figure |")
    print("|---|---|")
    print(f"| conversion, total | {took:.1f} s |")
    copy_rate = [line for line in lines if line.startswith("copied ids")][-1]
    print(f"| copy (last batch's running figure) | {copy_rate} |")
    print(f"| swap: ACCESS EXCLUSIVE held | {result['lock_seconds'] * 1000:.0f} ms |")
    for n, kind in enumerate(("new", "changed")):
        rates = f"{plain[n]:,.0f} → {parted[n]:,.0f} rows/s"
        print(f"| import, {kind} rows, plain → partitioned | {rates} |")
    print(f"| detach 2024-01 ({entry.old_values['rows']:,} rows) | {detach_took:.2f} s |")
    print(f"| {detach_lines[0]} | |")


if __name__ == "__main__":
    main()
