"""Import benchmark: ledger rows per second and peak memory of import_source.

Builds an auto_analyst SQLite source of N model_usage rows (plus
proportional users, chats and messages: N/500, N/20, N/10), then imports
it with ``manage.py import_source`` in a subprocess into

- PostgreSQL: a throwaway database (default ``aa_importbench``, dropped and
  created, migrated with ``manage.py migrate``), and
- a fresh SQLite file,

and prints wall time, ledger rows per second (whole import, and the
model_usage table alone from the command's own summary) and the importing
process's peak RSS (``os.wait4`` → ru_maxrss). Run it for two sizes to see
that memory does not grow with the source:

    .venv/bin/python bench/import_bench.py --rows 50000 1000000

Nothing here touches the project's own database.
"""

import argparse
import datetime as dt
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402, F401  (DEBUG off, a throwaway SECRET_KEY)

sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analyst_admin.settings")

from ingest.tests.source_dbs import ddl  # noqa: E402

MODELS = [
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("claude-3-5-haiku-latest", "anthropic"),
    ("claude-sonnet-4-20250514", "anthropic"),
    ("gemini-2.0-flash", "google"),
    ("llama-3.3-70b-versatile", "groq"),
]
PRICES = [  # USD per million tokens, so NULL costs are priced on the way in
    ("gpt-4o-mini", "openai", "0.15", "0.60"),
    ("gpt-4o", "openai", "2.50", "10.00"),
    ("claude-3-5-haiku-latest", "anthropic", "0.80", "4.00"),
    ("gemini-2.0-flash", "google", "0.10", "0.40"),
]
# naive on purpose: the source application stores naive UTC text
START = dt.datetime(2025, 1, 1)  # noqa: DTZ001


def build_source(path, rows, seed=7):
    """An auto_analyst database with ``rows`` model_usage rows, built fast."""
    path.unlink(missing_ok=True)
    rng = random.Random(seed)
    users, chats, messages = max(rows // 500, 1), max(rows // 20, 1), max(rows // 10, 1)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    for statement in ddl("auto_analyst", "sqlite"):
        connection.execute(statement)

    def when(i, total):
        return (START + dt.timedelta(seconds=90 * 86400 * i / total)).isoformat(" ")

    connection.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?)",
        ((i, f"user{i}", f"user{i}@example.com", when(i, users)) for i in range(1, users + 1)),
    )
    connection.executemany(
        "INSERT INTO chats VALUES (?, ?, ?, ?)",
        (
            (i, rng.randint(1, users) if i % 10 else None, f"Chat {i}", when(i, chats))
            for i in range(1, chats + 1)
        ),
    )
    connection.executemany(
        "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
        (
            (
                i,
                (i - 1) // 2 % chats + 1,
                "user" if i % 2 else "ai",
                f"message {i}",
                when(i, messages),
            )
            for i in range(1, messages + 1)
        ),
    )

    def usage(i):
        model, provider = MODELS[i % len(MODELS)]
        prompt, completion = rng.randint(10, 5000), rng.randint(10, 2000)
        cost = None if i % 10 == 0 else round((prompt * 0.15 + completion * 0.6) / 1e6, 8)
        return (
            i,
            rng.randint(1, users),
            rng.randint(1, chats) if i % 4 else None,
            model,
            provider,
            prompt,
            completion,
            prompt + completion,
            rng.randint(10, 2000),
            rng.randint(10, 8000),
            cost,
            when(i, rows),
            i % 3 == 0,
            rng.randint(100, 20000),
        )

    connection.executemany(
        "INSERT INTO model_usage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (usage(i) for i in range(1, rows + 1)),
    )
    for table in (
        "code_executions",
        "message_feedback",
        "deep_analysis_reports",
        "agent_templates",
        "user_template_preferences",
    ):
        connection.execute(f"DELETE FROM {table}")
    connection.commit()
    connection.close()
    return {"users": users, "chats": chats, "messages": messages, "model_usage": rows}


def manage(*args, database_url, **kwargs):
    env = {**os.environ, "DATABASE_URL": database_url}
    command = [sys.executable, str(ROOT / "manage.py"), *args]
    return subprocess.run(command, env=env, check=True, **kwargs)  # noqa: S603 (our own command)


def prepare_postgres(url):
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    manage("migrate", "-v0", database_url=url)
    with psycopg.connect(url) as connection:
        connection.cursor().executemany(
            "INSERT INTO usage_modelprice (model_name, provider, input_per_million, "
            "output_per_million, effective_from, created_at) VALUES (%s, %s, %s, %s, %s, now())",
            [(*p, "2024-01-01") for p in PRICES],
        )


def prepare_sqlite(path):
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    manage("migrate", "-v0", database_url=url)
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO usage_modelprice (model_name, provider, input_per_million, "
            "output_per_million, effective_from, created_at) "
            "VALUES (?, ?, ?, ?, ?, datetime('now'))",
            [(*p, "2024-01-01") for p in PRICES],
        )
    connection.close()
    return url


def count_ledger(url):
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            return connection.execute("SELECT COUNT(*) FROM usage_modelusage").fetchone()[0]
    with psycopg.connect(url) as connection:
        return connection.execute("SELECT COUNT(*) FROM usage_modelusage").fetchone()[0]


def run_import(source, database_url, batch_size, workdir):
    """Run import_source in a child process; its wall time, peak RSS and output."""
    command = [
        sys.executable,
        str(ROOT / "manage.py"),
        "import_source",
        "auto_analyst",
        f"sqlite:///{source}",
        "--no-progress",
        "--batch-size",
        str(batch_size),
        "--rejects",
        str(workdir / "rejects.jsonl"),
    ]
    env = {**os.environ, "DATABASE_URL": database_url}
    started = time.monotonic()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)  # noqa: S603
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"import failed ({child.returncode}):\n{output}")
    table_seconds = float(re.search(r"^model_usage\s.*\s([\d.]+)$", output, re.M).group(1))
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, table_seconds, usage.ru_maxrss / 1024, cpu, output


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000, 1_000_000])
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/aa_importbench")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "aa_importbench"
    )
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--targets", nargs="+", default=["postgresql", "sqlite"])
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    results = []
    for rows in args.rows:
        source = args.workdir / f"auto_analyst-{rows}.sqlite3"
        started = time.monotonic()
        sizes = build_source(source, rows)
        print(f"built {source} ({sizes}) in {time.monotonic() - started:.1f}s", flush=True)
        for target in args.targets:
            if target == "postgresql":
                prepare_postgres(args.pg_url)
                url = args.pg_url
            else:
                url = prepare_sqlite(args.workdir / f"target-{rows}.sqlite3")
            load = os.getloadavg()[0]
            seconds, table_seconds, peak_mb, cpu, output = run_import(
                source, url, args.batch_size, args.workdir
            )
            load = max(load, os.getloadavg()[0])
            ledger_rows = count_ledger(url)
            assert ledger_rows == rows, (ledger_rows, rows)
            results.append(
                (target, rows, sum(sizes.values()), seconds, table_seconds, peak_mb, cpu, load)
            )
            print(output, flush=True)
            print(
                f"{target} {rows} ledger rows: {seconds:.1f}s total, "
                f"{rows / table_seconds:,.0f} ledger rows/s (model_usage table), "
                f"peak RSS {peak_mb:.0f} MB, importer CPU {cpu:.1f}s, load {load:.1f}",
                flush=True,
            )
        if "postgresql" in args.targets and not args.keep:
            admin = args.pg_url.rsplit("/", 1)[0] + "/postgres"
            with psycopg.connect(admin, autocommit=True) as connection:
                name = args.pg_url.rsplit("/", 1)[1]
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print()
    print(f"machine: {os.cpu_count()} CPUs; batch size {args.batch_size}")
    print(
        "| database | ledger rows | source rows | import wall time | ledger rows/s "
        "(model_usage table) | ledger rows/s (whole import) | peak RSS | importer CPU "
        "| load average |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for target, rows, total, seconds, table_seconds, peak_mb, cpu, load in results:
        print(
            f"| {target} | {rows:,} | {total:,} | {seconds:.1f} s | "
            f"{rows / table_seconds:,.0f} | {rows / seconds:,.0f} | {peak_mb:.0f} MB | "
            f"{cpu:.1f} s | {load:.1f} |"
        )


if __name__ == "__main__":
    main()
