"""Import, then browse at once: the state a user is in right after an import.

Generates an Auto-Analyst database shaped like a real deployment (default: 1M
model_usage rows over 10 models of 3 providers, 5 users, 50 chats, the last
30 days, 200k messages, 100k code runs, 50k feedback rows), imports it with
``manage.py import_source`` into a fresh PostgreSQL database and a fresh
SQLite file, and immediately — no rebuild_rollups, no compaction, no VACUUM,
no cron — times every dashboard and quality page with django.test.Client,
side by side in the same child process with:

- the overview and the models page computed from the raw ledger
  (``metrics.LedgerReader``), the product's own comparison;
- the application's own dashboard shape: the four raw-row aggregates an
  analyst app's admin dashboard runs on every request over its usage table
  (totals, per model, per day, per user for 30 days) on the same rows.

It also prints the import rate (ledger rows/s, peak memory) and the roll-up
rows per key left by the import (the issue asks for at most about 2).

    .venv/bin/python bench/import_browse_bench.py                 # 1M rows, both databases
    .venv/bin/python bench/import_browse_bench.py --rows 100000 --databases sqlite
    .venv/bin/python bench/import_browse_bench.py --runs 7 --keep

Nothing here touches the project's own database: PostgreSQL database
``aa_importbrowse``, SQLite files and the source under /tmp.
"""

import argparse
import datetime as dt
import json
import os
import random
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import import_bench  # noqa: E402  (manage, prepare_postgres, prepare_sqlite, run_import)
from pages_bench import measuring_client, timed  # noqa: E402

# BENCH_WORK and BENCH_PG_URL let two runs side by side keep apart.
WORK = Path(os.environ.get("BENCH_WORK", Path(tempfile.gettempdir()) / "aa_importbrowse"))
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/aa_importbrowse")

MODELS = [
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("gpt-4.1", "openai"),
    ("o3-mini", "openai"),
    ("claude-3-5-haiku-latest", "anthropic"),
    ("claude-sonnet-4-20250514", "anthropic"),
    ("claude-opus-4-20250514", "anthropic"),
    ("gemini-2.0-flash", "google"),
    ("gemini-2.5-pro", "google"),
    ("gemini-1.5-flash", "google"),
]
ERRORS = [
    "Traceback (most recent call last):\nKeyError: 'revenue'",
    "Traceback (most recent call last):\nValueError: could not convert string to float",
    "Traceback (most recent call last):\nNameError: name 'df' is not defined",
]

PAGES = [
    # (key, label, url, group)
    ("overview", "overview, 30 days", "/admin/dashboards/", "cost"),
    ("overview_7d", "overview, 7 days", "/admin/dashboards/?period=7d", "cost"),
    ("models", "models page", "/admin/dashboards/models/", "cost"),
    ("user", "app user page", "/admin/dashboards/users/{user}/", "cost"),
    ("models_csv", "models CSV export", "/admin/dashboards/models/?export=models", "cost"),
    ("quality_code", "quality: code execution", "/admin/quality/code/", "quality"),
    ("quality_feedback", "quality: feedback", "/admin/quality/feedback/", "quality"),
    ("quality_activity", "quality: activity", "/admin/quality/activity/", "quality"),
]
TARGETS = {"cost": 150, "quality": 250}  # ms, median, PostgreSQL
SQLITE_TARGET = 500
LEDGER_RATIO = 20


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def build_source(path, rows, seed=11):
    """The Auto-Analyst database (schema from the seeds' document), built fast."""
    from ingest.tests.source_dbs import ddl

    path.unlink(missing_ok=True)
    rng = random.Random(seed)
    scale = rows / 1_000_000
    users, chats = 5, 50
    messages = max(int(200_000 * scale), 100)
    executions = max(int(100_000 * scale), 50)
    feedback = max(int(50_000 * scale), 25)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start = now - dt.timedelta(days=30)
    span = (now - start).total_seconds() - 60

    def when(i, total):
        return (start + dt.timedelta(seconds=span * i / total)).isoformat(" ")

    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    for statement in ddl("auto_analyst", "sqlite"):
        connection.execute(statement)
    connection.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?)",
        ((i, f"user{i}", f"user{i}@example.com", when(0, 1)) for i in range(1, users + 1)),
    )
    connection.executemany(
        "INSERT INTO chats VALUES (?, ?, ?, ?)",
        (
            (i, i % users + 1 if i % 10 else None, f"Chat {i}", when(i, chats))
            for i in range(1, chats + 1)
        ),
    )
    connection.executemany(
        "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
        (
            (
                i,
                i % chats + 1,
                "user" if i % 2 else "ai",
                f"message {i} about revenue",
                when(i, messages),
            )
            for i in range(1, messages + 1)
        ),
    )

    def usage(i):
        model, provider = MODELS[i % len(MODELS)]
        prompt, completion = rng.randint(10, 5000), rng.randint(10, 2000)
        cost = None if i % 10 == 0 else round((prompt * 0.15 + completion * 0.6) / 1e6, 8)
        chat = rng.randint(1, chats)
        return (
            i,
            chat % users + 1 if chat % 10 else None,
            chat,
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

    def execution(i):
        message = 2 * (i % (messages // 2)) + 2  # an assistant message
        chat = message % chats + 1
        model, provider = MODELS[i % len(MODELS)]
        ok = i % 4 != 0
        failed = None if ok else json.dumps(["planner", "data_viz_agent"][: 1 + i % 2])
        errors = None if ok else json.dumps({"planner": ERRORS[i % len(ERRORS)]})
        return (
            i,
            message,
            chat,
            chat % users + 1 if chat % 10 else None,
            "df.head()",
            "df.describe()" if i % 3 else "df.head()",
            ok,
            "ok" if ok else "",
            provider,
            model,
            failed,
            errors,
            when(i, executions),
            when(i + 1, executions),
        )

    connection.executemany(
        "INSERT INTO code_executions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (execution(i) for i in range(1, executions + 1)),
    )

    def rating(i):
        message = 2 * (i % (messages // 2)) + 2
        model, provider = MODELS[i % len(MODELS)]
        return (
            i,
            message,
            1 + i % 5,
            model,
            provider,
            0.7,
            4096,
            when(i, feedback),
            when(i, feedback),
        )

    connection.executemany(
        "INSERT INTO message_feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (rating(i) for i in range(1, feedback + 1)),
    )
    for table in ("deep_analysis_reports", "agent_templates", "user_template_preferences"):
        connection.execute(f"DELETE FROM {table}")  # noqa: S608 (our own table names)
    connection.commit()
    connection.close()
    return {
        "model_usage": rows,
        "messages": messages,
        "code_executions": executions,
        "message_feedback": feedback,
    }


def measure(runs):
    """In the child: time every page, the raw-ledger figures and the naive
    dashboard's SQL; count the roll-ups' rows per key."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analyst_admin.settings")
    import django

    django.setup()
    from django.db import connection

    from core.models import AppUser
    from usage import metrics
    from usage.rollups import ROLLUPS

    client = measuring_client()
    app_user = AppUser.objects.order_by("pk").values_list("pk", flat=True).first()

    def get(url):
        def request():
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            if response.streaming:  # a CSV export: read it all, as a browser does
                b"".join(response.streaming_content)
            else:
                response.content  # noqa: B018 (the rendered page)

        return request

    period = metrics.Period.preset("30d")
    start, end = period.local_bounds()

    def naive_dashboard():
        """What an analyst app's own admin dashboard runs per request."""
        table = "usage_modelusage"
        where = "WHERE timestamp >= %s AND timestamp < %s"
        with connection.cursor() as cursor:
            for select, group in (
                ("COUNT(*), SUM(total_tokens), SUM(cost)", ""),
                ("model_name, COUNT(*), SUM(total_tokens), SUM(cost)", "GROUP BY model_name"),
                ("DATE(timestamp), COUNT(*), SUM(cost)", "GROUP BY DATE(timestamp)"),
                ("user_id, COUNT(*), SUM(total_tokens), SUM(cost)", "GROUP BY user_id"),
            ):
                cursor.execute(f"SELECT {select} FROM {table} {where} {group}", [start, end])  # noqa: S608
                cursor.fetchall()

    def from_ledger(url):
        def request():
            with metrics.reading_from(metrics.LedgerReader()):
                get(url)()

        return request

    results = {}
    measured = [
        *((key, get(url.format(user=app_user))) for key, _label, url, _group in PAGES),
        ("overview_ledger", from_ledger("/admin/dashboards/")),
        ("models_ledger", from_ledger("/admin/dashboards/models/")),
        ("naive_dashboard", naive_dashboard),
    ]
    for key, function in measured:
        result = timed(function, runs)
        results[key] = {k: v for k, v in result.items() if k != "samples"}
        log(f"  {key:18} median {result['median']:9.1f} ms  p90 {result['p90']:9.1f} ms")
    per_key = {}
    for rollup in ROLLUPS:
        rows = rollup.rows()
        keys = rows.values(*rollup.grain).distinct().count()
        name = f"{rollup.usage.__name__}({rollup.span})"
        per_key[name] = {"rows": rows.count(), "keys": keys}
    return {"pages": results, "rollups": per_key, "vendor": connection.vendor}


def run_child(database_url, runs, out):
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "false"}
    command = [sys.executable, __file__, "--child", "--runs", str(runs), "--out", str(out)]
    subprocess.run(command, env=env, check=True, cwd=ROOT)  # noqa: S603 (this script)
    return json.loads(out.read_text())


def report(name, imported, measured):
    pages = measured["pages"]
    print(f"\n## {name}: import, then browse at once\n")
    seconds, table_seconds, rss, _cpu, output = imported
    print(
        f"import: {imported_rows:,} ledger rows in {seconds:.1f} s = "
        f"{imported_rows / seconds:,.0f} ledger rows/s overall, "
        f"{imported_rows / table_seconds:,.0f} ledger rows/s in the model_usage table, "
        f"peak RSS {rss:.0f} MB, load average {os.getloadavg()[0]:.1f}\n"
    )
    # The import's own summary, per table.
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("table ")), None)
    if start is not None:
        end = next(i for i in range(start, len(lines)) if lines[i].startswith("total"))
        print("```\n" + "\n".join(lines[start : end + 1]) + "\n```\n")
    print("| page | median ms | p90 ms | target | met |")
    print("|---|---:|---:|---:|---|")
    vendor = measured["vendor"]
    for key, label, _url, group in PAGES:
        target = TARGETS[group] if vendor == "postgresql" else SQLITE_TARGET
        page = pages[key]
        met = "yes" if page["median"] < target else "**no**"
        print(f"| {label} | {page['median']:.1f} | {page['p90']:.1f} | {target} | {met} |")
    for key, label in (
        ("overview_ledger", "overview from the raw ledger"),
        ("models_ledger", "models page from the raw ledger"),
        ("naive_dashboard", "the application's own dashboard (raw-row SQL)"),
    ):
        print(f"| {label} | {pages[key]['median']:.1f} | {pages[key]['p90']:.1f} | | |")
    print()
    for page, ledger in (("overview", "overview_ledger"), ("models", "models_ledger")):
        ratio = pages[ledger]["median"] / pages[page]["median"]
        met = "met" if ratio >= LEDGER_RATIO else "MISSED"
        print(f"- {page}: {ratio:.1f}x faster than from the raw ledger ({met}: >= {LEDGER_RATIO}x)")
    naive = pages["naive_dashboard"]["median"]
    print(
        f"- overview vs the application's own dashboard: {naive / pages['overview']['median']:.1f}x"
    )
    print("\nroll-up rows per key right after the import:")
    for name, counts in measured["rollups"].items():
        per = counts["rows"] / counts["keys"] if counts["keys"] else 0
        print(f"- {name}: {counts['rows']:,} rows for {counts['keys']:,} keys ({per:.2f} per key)")


imported_rows = 0


def main():
    global imported_rows
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--databases", default="postgres,sqlite")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument(
        "--measure-only",
        action="store_true",
        help="measure the databases a --keep run left (after a code change), import not redone",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.out.write_text(json.dumps(measure(args.runs)))
        return
    WORK.mkdir(exist_ok=True)
    source = WORK / "auto_analyst.sqlite3"
    if not args.measure_only:
        log(f"building the source: {args.rows:,} ledger rows")
        shape = build_source(source, args.rows)
        log(f"source: {shape}")
    imported_rows = args.rows
    for database in args.databases.split(","):
        saved = WORK / f"{database}-import.json"
        url = PG_URL if database == "postgres" else f"sqlite:///{WORK / 'target.sqlite3'}"
        if args.measure_only:
            imported = json.loads(saved.read_text())
            imported_rows = imported.pop()
            log(f"measuring {database} as a --keep run left it ({args.runs} runs a page)")
        else:
            if database == "postgres":
                import_bench.prepare_postgres(url)
            else:
                import_bench.prepare_sqlite(WORK / "target.sqlite3")
            log(f"importing into {database}")
            imported = import_bench.run_import(source, url, args.batch_size, WORK)
            saved.write_text(json.dumps([*imported, args.rows]))
            log(f"measuring {database} right after the import ({args.runs} runs a page)")
        measured = run_child(url, args.runs, WORK / f"{database}.json")
        report(database, imported, measured)
        if not (args.keep or args.measure_only) and database == "postgres":
            server, name = PG_URL.rsplit("/", 1)
            with psycopg.connect(server + "/postgres", autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
