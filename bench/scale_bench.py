"""Scale benchmark (#21): pages, import rate and load at 10M and 30M ledger rows.

One run, on a PostgreSQL primary and a streaming replica of the benchmark's
own (initdb and pg_basebackup from the installed server binaries, in
``--root``, on free ports; the machine's own server is not touched):

1. builds the first size with bench/pages_bench.py's builder (COPY, indexes,
   ``rebuild_rollups``, VACUUM ANALYZE), then makes the replica;
2. for each larger size, copies the first database (``CREATE DATABASE …
   TEMPLATE``) and grows the copy by copying its ledger rows (new source
   keys, timestamps jittered by up to an hour, the roll-ups moved by
   ``usage.ledger._upsert_from`` over the new rows, as an import does); for
   each size (``manage.py migrate`` first, so a resumed run measures the code
   as it is) it measures
   - every page's median (pages_bench's measuring child), one server and with
     ``DATABASE_REPLICA_URLS`` set (the router reads dashboards there),
   - the import rate of a fresh 100k-row Auto-Analyst source
     (``manage.py import_source`` into the big database),
   - wrk against gunicorn (bench/load_test.sh) on the overview and the
     models page: one server, then with the replica, then one server while
     bench/api_ingest.py posts 1,000 ledger rows/s through the API;
   - with ``--partition``: converts the ledger to monthly partitions
     (``manage.py partition_ledger``) and measures pages, wrk with the
     replica and the import rate again;
3. prints markdown tables and writes them with the raw numbers to
   ``--results`` (JSON).

    .venv/bin/python bench/scale_bench.py                      # 10M and 30M
    .venv/bin/python bench/scale_bench.py --sizes 1000000,3000000 --duration 10s  # a quick look

Disk: about 1.3 GB per million ledger rows for the primary and as much again
for the replica (30M: ~80 GB in all); ``--root`` on a disk with room.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
import _env  # noqa: E402, F401  (DEBUG off, a throwaway SECRET_KEY)

from core.tests.pg_servers import Pair  # noqa: E402

PAGES = [
    "overview",
    "overview_7d",
    "overview_90d",
    "models",
    "user",
    "message_changelist",
    "usage_changelist",
    "transcript",
    "search",
    "sql_ledger_30d",
]
WRK_PAGES = ["/admin/dashboards/", "/admin/dashboards/models/"]
# The benchmark's servers: fsync and full-page writes on (an import's rate is
# a real one), memory as a small dedicated database machine would give it.
SETTINGS = """
fsync = on
full_page_writes = on
synchronous_commit = on
shared_buffers = 2GB
effective_cache_size = 12GB
work_mem = 16MB
maintenance_work_mem = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
"""
GROW_CHUNK = 2_000_000


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def manage(url, *args, replica=None, capture=False, **extra):
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "false", **extra}
    env.pop("DATABASE_REPLICA_URLS", None)
    if replica:
        env["DATABASE_REPLICA_URLS"] = replica
    result = subprocess.run(  # noqa: S603 (our own command)
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=capture,
        text=True,
    )
    return result.stdout if capture else None


GROW_SNIPPET = """
import os
from django.db import connection, transaction
from usage import ledger

first, last = int(os.environ["GROW_FIRST"]), int(os.environ["GROW_LAST"])
tag = os.environ["GROW_TAG"]
columns = [f.column for f in ledger.LEDGER_FIELDS]
quoted = ", ".join(f'"{c}"' for c in columns)
select = []
for column in columns:
    if column == "source_pk":
        select.append("%s || source_pk")
    elif column == "timestamp":
        select.append(
            "LEAST(now() - interval '1 second', "
            "\\"timestamp\\" + (random() - 0.5) * interval '2 hours')"
        )
    else:
        select.append(f'"{column}"')
with transaction.atomic(), connection.cursor() as cursor:
    # Copies of valid rows: no foreign-key triggers (as bench/pages_bench.py's load)
    cursor.execute("SET LOCAL session_replication_role = replica")
    cursor.execute(f"CREATE TEMP TABLE grow ON COMMIT DROP AS SELECT {quoted} "
                   f"FROM {ledger.LEDGER} WITH NO DATA")
    cursor.execute(
        f"INSERT INTO grow ({quoted}) SELECT {', '.join(select)} FROM {ledger.LEDGER} "
        "WHERE id BETWEEN %s AND %s",
        [f"{tag}-", first, last],
    )
    cursor.execute(f"INSERT INTO {ledger.LEDGER} ({quoted}) SELECT {quoted} FROM grow")
    cursor.execute("SET LOCAL work_mem = '256MB'")
    ledger._upsert_from(cursor, "grow")
"""


def ledger_rows(url):
    with psycopg.connect(url) as connection:
        return connection.execute("SELECT COUNT(*) FROM usage_modelusage").fetchone()[0]


def check_totals(url):
    """The ledger's totals against the day roll-up's (cheap: no rebuild)."""
    with psycopg.connect(url) as connection:
        ledger = connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(cost), 0), COALESCE(SUM(total_tokens), 0) "
            "FROM usage_modelusage"
        ).fetchone()
        rollup = connection.execute(
            "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(cost), 0), "
            "COALESCE(SUM(total_tokens), 0) FROM usage_dailytotal"
        ).fetchone()
    return {"ledger": [str(v) for v in ledger], "rollup": [str(v) for v in rollup]}


def import_rate(url, size, workdir, rows):
    import import_bench

    source = workdir / f"import-{size}.sqlite3"
    source.unlink(missing_ok=True)
    import_bench.build_source(source, rows, seed=size % 1000)
    seconds, table_seconds, rss, cpu, _output = import_bench.run_import(source, url, 5000, workdir)
    return {
        "rows": rows,
        "seconds": round(seconds, 1),
        "ledger_rows_per_s": round(rows / table_seconds),
        "peak_rss_mb": round(rss),
        "cpu_s": round(cpu, 1),
    }


ROW = re.compile(r"^\| (/\S*) \| \S+ \| (\d+) \| ([\d.]+) \| (\S+) \| (\S+) \| (\d+) \| (\d+) \|")


def _ms(text):
    number = float(re.match(r"[\d.]+", text).group())
    return number * 1000 if text.endswith("s") and not text.endswith("ms") else number


def wrk(url, duration, replica=None, ingest=0):
    env = {**os.environ, "BENCH_DATABASE_URL": url, "DURATION": duration}
    env.pop("DATABASE_REPLICA_URLS", None)
    if replica:
        env["DATABASE_REPLICA_URLS"] = replica
    if ingest:
        env["INGEST_RATE"] = str(ingest)
    output = subprocess.run(  # noqa: S603 (our own script)
        [str(ROOT / "bench" / "load_test.sh"), *WRK_PAGES],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    result = {}
    for line in output.stdout.splitlines():
        match = ROW.match(line)
        if match:
            page, requests, rps, p50, p99, non2xx, server5xx = match.groups()
            result[page] = {
                "requests": int(requests),
                "rps": float(rps),
                "p50_ms": round(_ms(p50), 1),
                "p99_ms": round(_ms(p99), 1),
                "non2xx": int(non2xx),
                "5xx": int(server5xx),
            }
        if line.startswith("ingest:"):
            result["ingest"] = line
    if output.returncode or not result:
        result["error"] = (output.stdout + output.stderr)[-2000:]
    return result


def measure_pages(pages_bench, size, runs, results_dir, replica=None):
    saved = os.environ.pop("DATABASE_REPLICA_URLS", None)
    if replica:
        os.environ["DATABASE_REPLICA_URLS"] = replica
    try:
        result = pages_bench.run_measure("postgres", size, runs, PAGES, results_dir)
    finally:
        os.environ.pop("DATABASE_REPLICA_URLS", None)
        if saved:
            os.environ["DATABASE_REPLICA_URLS"] = saved
    return {key: round(page["median"], 1) for key, page in result["pages"].items()}


def report(results):
    sizes = sorted(results["sizes"], key=int)
    lines = ["| page median (ms) | " + " | ".join(_columns(results, sizes)) + " |"]
    lines.append("|---|" + "---:|" * len(_columns(results, sizes)))
    for key in PAGES:
        cells = [
            f"{results['sizes'][size][variant].get(key, '–')}"
            for size in sizes
            for variant in _variants(results["sizes"][size])
        ]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| wrk (gunicorn, 5 sync workers) | req/s | p50 ms | p99 ms | 5xx |")
    lines.append("|---|---:|---:|---:|---:|")
    for size in sizes:
        entry = results["sizes"][size]
        for name in ("wrk_one", "wrk_replica", "wrk_ingest", "wrk_partitioned"):
            for page, row in entry.get(name, {}).items():
                if isinstance(row, dict):
                    lines.append(
                        f"| {_short(int(size))} {name[4:]} {page} | {row['rps']} | "
                        f"{row['p50_ms']} | {row['p99_ms']} | {row['5xx']} |"
                    )
            if "ingest" in entry.get(name, {}):
                lines.append(f"| {_short(int(size))} {name[4:]}: {entry[name]['ingest']} | | | | |")
    lines.append("")
    for size in sizes:
        entry = results["sizes"][size]
        lines.append(
            f"- {_short(int(size))}: import {entry.get('import')}; totals {entry['totals']}"
        )
        if "grow_s" in entry:
            lines.append(f"  grown in {entry['grow_s']:.0f} s")
        if "partition_s" in entry:
            lines.append(f"  partitioned in {entry['partition_s']:.0f} s")
    return "\n".join(lines)


def _variants(entry):
    return [v for v in ("pages_one", "pages_replica", "pages_partitioned") if v in entry]


def _columns(results, sizes):
    return [
        f"{_short(int(size))} {variant[6:]}"
        for size in sizes
        for variant in _variants(results["sizes"][size])
    ]


def _short(size):
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000000,30000000")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--duration", default="30s", help="each wrk run")
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--root", default=tempfile.gettempdir(), help="where the servers live")
    parser.add_argument("--results", type=Path, default=Path(tempfile.gettempdir()) / "aa_scale")
    parser.add_argument("--partition", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the servers running")
    parser.add_argument(
        "--resume",
        nargs=3,
        metavar=("ROOT", "PRIMARY_PORT", "REPLICA_PORT"),
        help="go on with the servers a --keep run left (its results in --results): "
        "sizes measured there are not measured again",
    )
    parser.add_argument("--build-only", action="store_true", help="build the first size, stop")
    parser.add_argument(
        "--again",
        default="",
        help="with --resume: sizes to measure again (comma-separated), after a code change",
    )
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    args.again = {int(s) for s in args.again.split(",") if s}
    args.results.mkdir(parents=True, exist_ok=True)

    if args.resume:
        root, primary_port, replica_port = args.resume
        pair = Pair.attach(root, int(primary_port), int(replica_port))
        results = json.loads((args.results / "scale.json").read_text())
    else:
        pair = Pair(parent=args.root, settings=SETTINGS)
        results = {"sizes": {}, "machine": {"cpus": os.cpu_count()}, "settings": SETTINGS}
    log(f"primary on port {pair.primary_port}, replica on {pair.replica_port}, in {pair.root}")
    os.environ["BENCH_PG_SERVER"] = pair.url(pair.primary_port).rsplit("/", 1)[0]
    import pages_bench  # reads BENCH_PG_SERVER

    base = sizes[0]
    try:
        if not args.resume:
            pair.start_primary()
        if not database_exists(pair, base):
            results["build"] = pages_bench.build("postgres", base)
        if not (pair.root / "replica").exists():
            started = time.monotonic()
            pair.start_replica(timeout=3600)
            results["replica_s"] = round(time.monotonic() - started)
            log(f"replica made in {results['replica_s']} s")
        if args.build_only:
            return
        for size in sizes:
            if str(size) in results["sizes"] and size not in args.again:
                continue  # measured by the run resumed
            entry = results["sizes"][str(size)] = {}
            url = pages_bench.pg_url(size)
            replica = pair.url(pair.replica_port, f"aa_bench_{size}")
            if size > base:
                if not database_exists(pair, size):
                    log(f"aa_bench_{size}: a copy of aa_bench_{base}")
                    pair.sql(
                        pair.primary_port,
                        f'CREATE DATABASE "aa_bench_{size}" TEMPLATE "aa_bench_{base}"',
                    )
                log(f"growing to {size:,} rows")
                entry["grow_s"] = grow_to(url, base, size, args.results / f"indexes-{size}.json")
            manage(url, "migrate", "-v0")  # a resumed run measures the code as it is now
            pair.wait_replayed(timeout=3600)
            entry["totals"] = check_totals(url)
            log(f"{size:,}: pages, one server")
            entry["pages_one"] = measure_pages(pages_bench, size, args.runs, args.results)
            log(f"{size:,}: pages, replica reads")
            entry["pages_replica"] = measure_pages(
                pages_bench, size, args.runs, args.results, replica
            )
            log(f"{size:,}: wrk, one server / replica / one server while the API ingests")
            entry["wrk_one"] = wrk(url, args.duration)
            entry["wrk_replica"] = wrk(url, args.duration, replica=replica)
            entry["wrk_ingest"] = wrk(url, args.duration, ingest=1000)
            log(f"{size:,}: import rate")
            entry["import"] = import_rate(url, size, args.results, args.import_rows)
            if args.partition:
                log(f"{size:,}: partitioning the ledger (manage.py partition_ledger)")
                started = time.monotonic()
                manage(url, "partition_ledger")
                entry["partition_s"] = round(time.monotonic() - started)
                pair.wait_replayed(timeout=3600)
                entry["pages_partitioned"] = measure_pages(
                    pages_bench, size, args.runs, args.results, replica
                )
                entry["wrk_partitioned"] = wrk(url, args.duration, replica=replica)
                entry["import_partitioned"] = import_rate(url, size, args.results, args.import_rows)
            (args.results / "scale.json").write_text(json.dumps(results, indent=1))
            print(report(results), flush=True)
    finally:
        (args.results / "scale.json").write_text(json.dumps(results, indent=1))
        if not args.keep:
            pair.stop()
    print()
    print(report(results))


def database_exists(pair, size):
    name = f"aa_bench_{size}"
    return pair.sql(pair.primary_port, f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"


def ledger_indexes(url):
    """(name, definition) of the ledger's secondary indexes that back no
    constraint and enforce no uniqueness."""
    with psycopg.connect(url) as connection:
        return connection.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'usage_modelusage'::regclass AND NOT i.indisunique"
        ).fetchall()


def grow_to(url, base, target, saved):
    """Copy ledger rows 1..base (in chunks, each its own transaction, the
    roll-ups moved in the same one) until the ledger holds ``target`` rows.

    As a bulk load does, the ledger's non-unique indexes are dropped first
    and built again after (the unique (source, source_pk) index stays, and
    so do the roll-ups' own); then VACUUM ANALYZE. Seconds taken."""
    started = time.monotonic()
    if ledger_rows(url) >= target and not saved.exists():
        return 0  # grown by the run resumed
    if saved.exists():  # a resumed run: dropped by the run before
        indexes = json.loads(saved.read_text())
    else:
        indexes = ledger_indexes(url)
        saved.write_text(json.dumps(indexes))
    with psycopg.connect(url, autocommit=True) as connection:
        for name, _definition in indexes:
            connection.execute(f'DROP INDEX IF EXISTS "{name}"')
    have = ledger_rows(url)
    with psycopg.connect(url) as connection:  # rows grown before (a resumed run)
        grown = connection.execute(
            "SELECT COUNT(*) FROM usage_modelusage WHERE source_pk LIKE 'g%%-%%'"
        ).fetchone()[0]
    round_ = 1 + grown // base
    while have < target:
        first = 1 + grown % base
        grown = 0
        while first <= base and have < target:
            last = min(first + GROW_CHUNK - 1, base, first + (target - have) - 1)
            manage(
                url,
                "shell",
                "-v0",
                "-c",
                GROW_SNIPPET,
                GROW_FIRST=str(first),
                GROW_LAST=str(last),
                GROW_TAG=f"g{round_}",
            )
            have += last - first + 1
            first = last + 1
            log(f"  grown to {have:,} rows")
        round_ += 1
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET maintenance_work_mem = '1GB'")
        connection.execute("SET max_parallel_maintenance_workers = 2")
        for _name, definition in indexes:
            connection.execute(definition)
        log(f"  {len(indexes)} ledger indexes built again")
        connection.execute("VACUUM ANALYZE")
    saved.unlink()
    return round(time.monotonic() - started)


if __name__ == "__main__":
    main()
