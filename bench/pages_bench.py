"""Page benchmark: server time of every heavy page at 100k, 1M and 10M ledger rows.

For each size and database it builds a fresh database (PostgreSQL:
``aa_bench_<size>``; SQLite: ``/tmp/aa_bench_<size>.sqlite3``), migrated with
``manage.py migrate`` in a subprocess, and fills it fast (psycopg 3 COPY on
PostgreSQL, executemany in big transactions on SQLite; secondary indexes are
dropped during the load and rebuilt after it, as pg_restore does):

- 20 organisations, 3 sources, size/1000 app users (at least 100) whose
  activity follows a Zipf law (app user 1 is the heaviest);
- size/10 chats and size/5 messages (user and assistant turns of 100–600
  characters of markdown-ish text from a small vocabulary), chat 1 holding
  exactly 1,000 messages (the transcript);
- ``size`` ledger rows over the last 90 days across 12 models of 4
  providers, with NULL costs (one unpriced model and a few others), anonymous
  rows and NULL request times in realistic shares;

then runs ``manage.py rebuild_rollups`` and ANALYZE (VACUUM ANALYZE on
PostgreSQL). Each measurement runs in a subprocess with DATABASE_URL set:
django.test.Client, a superuser logged in with force_login, DEBUG off,
every page requested once to warm up and then ``--runs`` times; the table
shows medians (ms). For comparison it also times the overview computed from
the raw ledger (``metrics.reading_from(metrics.LedgerReader())``) and the
bare SQL aggregate of 30 days of the raw ledger.

    .venv/bin/python bench/pages_bench.py                      # the defaults
    .venv/bin/python bench/pages_bench.py --sizes 100000 --databases sqlite
    .venv/bin/python bench/pages_bench.py --sizes 10000000 --build-only   # then
    .venv/bin/python bench/pages_bench.py --sizes 10000000 --skip-build
    .venv/bin/python bench/pages_bench.py --report             # saved results

Results of each (database, size) are saved as JSON in ``--results`` so runs
made separately print as one table with ``--report``. The databases are
kept (``--drop`` removes them at the end; ``--drop-only`` removes them all).
Nothing here touches the project's own database.
"""

import argparse
import bisect
import datetime as dt
import itertools
import json
import math
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402, F401  (DEBUG off, a throwaway SECRET_KEY)

# bench/scale_bench.py points it at a server of its own (a primary with a replica)
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
DEFAULT_SIZES = [100_000, 1_000_000, 10_000_000]
SQLITE_MAX_DEFAULT = 1_000_000  # sqlite runs at 100k and 1M unless --sizes says
RESULTS = Path(tempfile.gettempdir()) / "aa_bench_results"

ORGANIZATIONS = 20
SOURCES = [
    (1, "auto-analyst", "auto_analyst"),
    (2, "ai-chat-v2", "ai_chat_v2"),
    (3, "ingest-api", "api"),
]
# (model, provider, USD per million input, per million output, median ms,
# share of traffic); mixtral has no price: its costs stay NULL.
MODELS = [
    ("gpt-4o-mini", "openai", "0.15", "0.60", 700, 20),
    ("gpt-4o", "openai", "2.50", "10.00", 1500, 12),
    ("gpt-4.1", "openai", "2.00", "8.00", 1700, 6),
    ("o3-mini", "openai", "1.10", "4.40", 4500, 4),
    ("claude-3-5-haiku-latest", "anthropic", "0.80", "4.00", 900, 10),
    ("claude-sonnet-4-20250514", "anthropic", "3.00", "15.00", 2200, 12),
    ("claude-opus-4-20250514", "anthropic", "15.00", "75.00", 4000, 2),
    ("gemini-2.0-flash", "google", "0.10", "0.40", 600, 14),
    ("gemini-2.5-pro", "google", "1.25", "10.00", 3500, 5),
    ("gemini-1.5-flash", "google", "0.075", "0.30", 650, 3),
    ("llama-3.3-70b-versatile", "groq", "0.59", "0.79", 400, 9),
    ("mixtral-8x7b-32768", "groq", None, None, 350, 3),
]
ANONYMOUS_SHARE = 0.08  # ledger rows and chats without an app user
NULL_COST_SHARE = 0.02  # besides the unpriced model: a source reported nothing
NULL_LATENCY_SHARE = 0.05
STREAMING_SHARE = 0.35
LONG_CHAT_MESSAGES = 1_000
SEARCH_WORD = "revenue"  # a common word of the vocabulary (share printed)

# Content words, most common first (word k is drawn with probability
# sqrt((k+1)/n) - sqrt(k/n)); FILLER words are English stop words the
# full-text index skips, as in real text.
VOCABULARY = [
    "sales",
    "customers",
    "churn",
    "cohort",
    "retention",
    "forecast",
    "growth",
    "margin",
    "region",
    "quarter",
    "monthly",
    "weekly",
    "daily",
    "average",
    "median",
    "total",
    "count",
    "distinct",
    "table",
    "column",
    "query",
    "join",
    "filter",
    "group",
    "order",
    "chart",
    "revenue",
    "plot",
    "histogram",
    "scatter",
    "line",
    "bar",
    "trend",
    "outlier",
    "missing",
    "values",
    "null",
    "dataset",
    "dataframe",
    "pandas",
    "numpy",
    "regression",
    "model",
    "feature",
    "accuracy",
    "precision",
    "recall",
    "correlation",
    "variance",
    "segment",
    "funnel",
    "conversion",
    "campaign",
    "marketing",
    "product",
    "price",
    "discount",
    "inventory",
    "supplier",
    "shipping",
    "order_id",
    "customer_id",
    "created_at",
    "amount",
    "currency",
    "profit",
    "cost",
    "budget",
    "spend",
    "users",
    "sessions",
    "events",
    "clicks",
    "pageviews",
    "signup",
    "activation",
    "subscription",
    "plan",
    "upgrade",
    "downgrade",
    "refund",
    "invoice",
    "payment",
    "country",
    "city",
    "store",
    "category",
    "brand",
    "season",
    "holiday",
    "anomaly",
    "spike",
    "drop",
    "increase",
    "decrease",
    "compare",
    "baseline",
    "target",
    "metric",
    "dashboard",
    "report",
    "summary",
    "insight",
    "recommendation",
    "analysis",
]
FILLER = ["the", "of", "by", "for", "and", "in", "with", "to", "is", "a", "per", "over"]
OPENERS = [
    "Show me",
    "Can you compute",
    "Plot",
    "What is the",
    "Break down",
    "Compare",
    "Why did",
    "Forecast",
    "List the top",
    "Explain the",
]


# -- data ---------------------------------------------------------------------


class Data:
    """The rows of one benchmark database, generated lazily and reproducibly."""

    def __init__(self, size, seed=20250101):
        self.size = size
        self.seed = seed
        self.users = max(100, size // 1000)
        self.chats = max(10, size // 10)
        self.messages = max(LONG_CHAT_MESSAGES + 2 * self.chats, size // 5)
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.start = self.now - dt.timedelta(days=90)
        rng = random.Random(seed)
        # Zipf activity: app user r is 1/r as active as app user 1.
        self.user_cum = list(itertools.accumulate(1 / r for r in range(1, self.users + 1)))
        self.user_org = [None] + [
            1 + min(int(rng.paretovariate(1.2)) - 1, ORGANIZATIONS - 1) if u > 1 else 1
            for u in range(1, self.users + 1)
        ]
        self.user_source = [None] + [rng.choice((1, 1, 2, 3)) for _ in range(self.users)]
        # Each app user mostly sticks to two or three models.
        model_weights = [m[5] for m in MODELS]
        self.model_cum = list(itertools.accumulate(model_weights))
        self.user_models = [None] + [
            rng.choices(range(len(MODELS)), cum_weights=self.model_cum, k=rng.choice((2, 3)))
            for _ in range(self.users)
        ]
        # The owner of each chat (None: anonymous); chat 1 is app user 1's.
        self.chat_user = [None, 1]
        for _ in range(2, self.chats + 1):
            if rng.random() < ANONYMOUS_SHARE:
                self.chat_user.append(None)
            else:
                self.chat_user.append(self.pick_user(rng))
        self.user_chats = {}
        for chat, user in enumerate(self.chat_user):
            if user is not None:
                self.user_chats.setdefault(user, []).append(chat)

    def pick_user(self, rng):
        return bisect.bisect_left(self.user_cum, rng.random() * self.user_cum[-1]) + 1

    def when(self, i, total, rng):
        """The i-th of ``total`` moments over 90 days, in order, jittered."""
        seconds = 90 * 86400 * (i + rng.random()) / total
        return self.start + dt.timedelta(seconds=min(seconds, 90 * 86400 - 1))

    # Each generator yields tuples in the column order of COLUMNS[table].

    def organizations(self):
        for o in range(1, ORGANIZATIONS + 1):
            yield (o, "", f"org-{o}", f"Organisation {o:02d}", self.start, None)

    def sources(self):
        for pk, name, kind in SOURCES:
            yield (pk, name, kind, "", "{}", None, self.start)

    def prices(self):
        for n, (model, provider, price_in, price_out, _ms, _w) in enumerate(MODELS, 1):
            if price_in is not None:
                yield (n, model, provider, price_in, price_out, "2024-01-01", self.start)

    def app_users(self):
        rng = random.Random(self.seed + 1)
        for u in range(1, self.users + 1):
            created = self.start - dt.timedelta(days=rng.randint(1, 400))
            yield (
                u,
                str(u),
                f"user{u}",
                f"user{u}@example.com",
                f"App User {u}",
                None,
                "viewer",
                True,
                "",
                0,
                None,
                None,
                created,
                None,
                self.user_org[u],
                self.user_source[u],
            )

    def chat_rows(self):
        rng = random.Random(self.seed + 2)
        for c in range(1, self.chats + 1):
            user = self.chat_user[c]
            created = self.when(c - 1, self.chats, rng) if c > 1 else self.start
            source = self.user_source[user] if user else 1
            words = rng.sample(VOCABULARY, 3)
            yield (
                c,
                str(c),
                " ".join(words).capitalize(),
                False,
                True,
                None,
                None,
                created + dt.timedelta(minutes=5),
                None,
                created,
                None,
                self.user_org[user] if user else None,
                source,
                user,
            )

    def _text(self, rng, role):
        """100–600 characters of markdown-ish text (a question, or an answer
        with a heading, bold and code words and a short list)."""
        n = len(VOCABULARY)
        if role == "user":
            length, words = rng.randint(100, 260), [rng.choice(OPENERS)]
        else:
            length, words = rng.randint(180, 600), ["## Summary\n\n"] if rng.random() < 0.3 else []
        size = sum(len(w) + 1 for w in words)
        while size < length:
            r = rng.random()
            if r < 0.4:
                word = FILLER[int(r * 30)]
            else:
                r = rng.random()
                word = VOCABULARY[int(n * r * r)]  # skewed: early words more common
                if role == "assistant" and r > 0.9:
                    word = rng.choice((f"**{word}**", f"`{word}`", f"\n- {word}"))
            words.append(word)
            size += len(word) + 1
        return " ".join(words)[:599] + ("?" if role == "user" else ".")

    def _message_plan(self):
        """(chat, turn) of every message in order: chat 1 holds 1,000, the
        others share the rest about evenly (user and assistant turns)."""
        for turn in range(LONG_CHAT_MESSAGES):
            yield 1, turn
        others = self.messages - LONG_CHAT_MESSAGES
        per_chat = others / (self.chats - 1)
        given = 0
        for chat in range(2, self.chats + 1):
            upto = others if chat == self.chats else round((chat - 1) * per_chat)
            for turn in range(upto - given):
                yield chat, turn
            given = upto

    def message_rows(self):
        rng = random.Random(self.seed + 3)
        chat_start = {}
        for m, (chat, turn) in enumerate(self._message_plan(), 1):
            role = "user" if turn % 2 == 0 else "assistant"
            if chat == 1:
                created = self.start + dt.timedelta(minutes=turn)
            else:
                base = chat_start.get(chat)
                if base is None:
                    chat_start.clear()
                    base = chat_start[chat] = self.when(chat - 1, self.chats, rng)
                created = base + dt.timedelta(seconds=20 * turn + rng.randint(0, 15))
            model = prompt = completion = None
            if role == "assistant" and rng.random() < 0.3:  # ai-chat-v2 carries its model
                model = MODELS[bisect.bisect_left(self.model_cum, rng.random() * 100)][0]
                prompt, completion = rng.randint(50, 3000), rng.randint(20, 900)
            user = self.chat_user[chat]
            source = self.user_source[user] if user else 1
            yield (
                m,
                str(m),
                role,
                self._text(rng, role),
                created,
                turn,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                model,
                prompt,
                completion,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                False,
                rng.random() < 0.002,
                None,
                None,
                chat,
                None,
                source,
            )

    def ledger_rows(self):
        rng = random.Random(self.seed + 4)
        size = self.size
        quantum = Decimal("0.00000001")
        prices = [
            (Decimal(m[2]) / 1_000_000, Decimal(m[3]) / 1_000_000) if m[2] else None for m in MODELS
        ]
        for i in range(size):
            anonymous = rng.random() < ANONYMOUS_SHARE
            if anonymous:
                user = org = None
                source = 3
                model = bisect.bisect_left(self.model_cum, rng.random() * 100)
                chats = None
            else:
                user = self.pick_user(rng)
                org, source = self.user_org[user], self.user_source[user]
                model = (
                    rng.choice(self.user_models[user])
                    if rng.random() < 0.85
                    else bisect.bisect_left(self.model_cum, rng.random() * 100)
                )
                chats = self.user_chats.get(user)
            name, provider, _pin, _pout, median_ms, _w = MODELS[model]
            prompt = min(int(math.exp(rng.gauss(6.8, 1.0))) + 10, 120_000)
            completion = min(int(math.exp(rng.gauss(5.3, 0.8))) + 5, 16_000)
            price = prices[model]
            if price is None or rng.random() < NULL_COST_SHARE:
                cost, cost_source = None, "unpriced"
            else:
                cost = (prompt * price[0] + completion * price[1]).quantize(quantum)
                cost_source = "computed" if rng.random() < 0.2 else "reported"
            latency = (
                None
                if rng.random() < NULL_LATENCY_SHARE
                else int(median_ms * math.exp(rng.gauss(0, 0.6)))
            )
            chat = rng.choice(chats) if chats and rng.random() < 0.7 else None
            yield (
                i + 1,
                str(i + 1),
                name,
                provider,
                prompt,
                completion,
                prompt + completion,
                prompt * 4,
                completion * 4,
                cost,
                cost_source,
                self.when(i, size, rng),
                rng.random() < STREAMING_SHARE,
                latency,
                chat,
                org,
                source,
                user,
            )


COLUMNS = {
    "core_organization": "id source_pk slug name created_at source_id",
    "core_source": "id name kind description sync_cursor last_synced_at created_at",
    "usage_modelprice": (
        "id model_name provider input_per_million output_per_million effective_from created_at"
    ),
    "core_appuser": (
        "id source_pk username email full_name company role is_active password_hash "
        "token_usage preferences last_login created_at updated_at organization_id source_id"
    ),
    "chats_chat": (
        "id source_pk title starred is_active expires_at metadata last_message_at "
        "message_count created_at updated_at organization_id source_id user_id"
    ),
    "chats_message": (
        "id source_pk role content created_at sequence_number turn_number agent_type "
        "context_data query_id sql_query query_result execution_time error_message "
        "model_name prompt_tokens completion_tokens persona tone behavior context_type "
        "confidence signal_strength context_clarity needs_knowledge is_mistake "
        "mistake_note mistake_flagged_at chat_id mistake_flagged_by_id source_id"
    ),
    "usage_modelusage": (
        "id source_pk model_name provider prompt_tokens completion_tokens total_tokens "
        "query_size response_size cost cost_source timestamp is_streaming request_time_ms "
        "chat_id organization_id source_id user_id"
    ),
}
BIG_TABLES = ("core_appuser", "chats_chat", "chats_message", "usage_modelusage")


def table_rows(data):
    """(table, row iterator) in an order that satisfies the foreign keys."""
    return [
        ("core_source", data.sources()),
        ("core_organization", data.organizations()),
        ("usage_modelprice", data.prices()),
        ("core_appuser", data.app_users()),
        ("chats_chat", data.chat_rows()),
        ("chats_message", data.message_rows()),
        ("usage_modelusage", data.ledger_rows()),
    ]


# -- building the databases ---------------------------------------------------


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def manage(database_url, *args):
    env = {**os.environ, "DATABASE_URL": database_url}
    command = [sys.executable, str(ROOT / "manage.py"), *args]
    subprocess.run(command, env=env, check=True, cwd=ROOT)  # noqa: S603 (our own command)


def pg_url(size):
    return f"{PG_SERVER}/aa_bench_{size}"


def sqlite_path(size):
    return Path(tempfile.gettempdir()) / f"aa_bench_{size}.sqlite3"


def database_url(database, size):
    return pg_url(size) if database == "postgres" else f"sqlite:///{sqlite_path(size)}"


def drop_postgres(size):
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "aa_bench_{size}" WITH (FORCE)')


def load_postgres(url, data):
    with psycopg.connect(url) as connection:
        cursor = connection.cursor()
        # Bulk load: foreign-key triggers off for this session (the rows are
        # consistent by construction), secondary indexes built after the load.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE t.relname = ANY(%s) AND NOT i.indisprimary AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
            [list(BIG_TABLES)],
        )
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        for table, rows in table_rows(data):
            started, count = time.monotonic(), 0
            with cursor.copy(
                f"COPY {table} ({', '.join(COLUMNS[table].split())}) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
            )
            log(f"  {table}: {count:,} rows in {time.monotonic() - started:.1f}s")
        connection.commit()
        started = time.monotonic()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 2")
        for _name, definition in indexes:
            cursor.execute(definition)
        connection.commit()
        log(f"  {len(indexes)} secondary indexes rebuilt in {time.monotonic() - started:.1f}s")


def load_sqlite(path, data):
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA cache_size=-500000")
    indexes = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({','.join('?' * len(BIG_TABLES))})",
        BIG_TABLES,
    ).fetchall()
    for name, _sql in indexes:
        connection.execute(f'DROP INDEX "{name}"')
    for table, rows in table_rows(data):
        started, count = time.monotonic(), 0
        columns = COLUMNS[table].split()
        marks = ", ".join("?" * len(columns))
        statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        while batch := list(itertools.islice(rows, 200_000)):
            connection.execute("BEGIN")
            connection.executemany(statement, (_sqlite_row(row) for row in batch))
            connection.execute("COMMIT")
            count += len(batch)
        log(f"  {table}: {count:,} rows in {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    for _name, sql in indexes:
        connection.execute(sql)
    log(f"  {len(indexes)} secondary indexes rebuilt in {time.monotonic() - started:.1f}s")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.close()


def _sqlite_row(row):
    # As Django stores them: datetimes as ISO text in UTC, decimals as text.
    return tuple(
        value.strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(value, dt.datetime)
        else str(value)
        if isinstance(value, Decimal)
        else value
        for value in row
    )


def build(database, size):
    """A fresh, filled, rolled-up and analysed database; its build timings."""
    url = database_url(database, size)
    log(f"building {database} at {size:,} ledger rows ({url})")
    timings = {}
    started = time.monotonic()
    if database == "postgres":
        drop_postgres(size)
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "aa_bench_{size}"')
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_path(size)}{suffix}").unlink(missing_ok=True)
    manage(url, "migrate", "-v0")
    timings["migrate"] = time.monotonic() - started
    started = time.monotonic()
    data = Data(size)
    if database == "postgres":
        load_postgres(url, data)
    else:
        load_sqlite(sqlite_path(size), data)
    timings["load"] = time.monotonic() - started
    started = time.monotonic()
    manage(url, "rebuild_rollups")  # INSERT … SELECT on PostgreSQL, batched ORM on SQLite
    timings["rollups"] = time.monotonic() - started
    started = time.monotonic()
    if database == "postgres":
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
    else:
        connection = sqlite3.connect(sqlite_path(size), isolation_level=None)
        connection.execute("ANALYZE")
        connection.close()
    timings["analyze"] = time.monotonic() - started
    log(f"built {database} {size:,}: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    return timings


# -- measuring (in a child process with DATABASE_URL set) ---------------------

PAGES = [
    # (key, label, url or special, target group)
    ("overview", "overview (30 days)", "/admin/dashboards/", "dashboard"),
    ("overview_7d", "overview, 7 days", "/admin/dashboards/?period=7d", "dashboard"),
    ("overview_90d", "overview, 90 days", "/admin/dashboards/?period=90d", "dashboard"),
    ("models", "models page", "/admin/dashboards/models/", "dashboard"),
    ("user", "app user page (heaviest user)", "/admin/dashboards/users/1/", "dashboard"),
    ("message_changelist", "message changelist", "/admin/chats/message/", "changelist"),
    ("usage_changelist", "usage changelist", "/admin/usage/modelusage/", "changelist"),
    ("transcript", "transcript, 1,000 msgs, page 1", "/admin/review/chats/1/", "transcript"),
    ("transcript_p10", "transcript, page 10", "/admin/review/chats/1/?page=10", "transcript"),
    (
        "search",
        f"message search '{SEARCH_WORD}'",
        f"/admin/review/search/?q={SEARCH_WORD}",
        "search",
    ),
    ("overview_ledger", "overview from the raw ledger", "/admin/dashboards/", None),
    ("sql_ledger_30d", "bare SQL aggregate, raw ledger, 30 d", None, None),
]
PAGE_LABELS = {key: label for key, label, _url, _group in PAGES}
# Targets (ms, median) on PostgreSQL at 10M and SQLite at 1M.
PG_TARGETS = {"dashboard": 150, "changelist": 200, "transcript": 150, "search": 300}
SQLITE_TARGET = 500
LEDGER_RATIO_TARGET = 20


def _cpu_ns(pid):
    """CPU time a process has run, in ns (/proc/<pid>/schedstat), or 0."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def timed(function, runs, backend_pid=None):
    """Median and p90 (nearest rank) of ``runs`` timed calls after a warm-up,
    in wall ms. ``cpu`` is the median CPU time of this (the Django) process,
    ``db_cpu`` that of its PostgreSQL backend (not of parallel workers): CPU
    time, unlike wall time, barely changes when other busy processes share
    the machine."""
    function()  # warm-up
    samples, cpu, db_cpu = [], [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        started_db = _cpu_ns(backend_pid) if backend_pid else 0
        function()
        samples.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        if backend_pid:
            db_cpu.append((_cpu_ns(backend_pid) - started_db) / 1e6)
    ordered = sorted(samples)
    return {
        "median": statistics.median(samples),
        "p90": ordered[math.ceil(0.9 * len(ordered)) - 1],
        "cpu": statistics.median(cpu),
        "db_cpu": statistics.median(db_cpu) if db_cpu else None,
        "samples": samples,
    }


def search_hits(word):
    """How many messages the search for ``word`` finds (same match as the page)."""
    from django.contrib.postgres.search import SearchQuery, SearchVector
    from django.db import connection

    from chats import search
    from chats.models import Message

    if connection.vendor == "postgresql":
        query = SearchQuery(word, config=search.CONFIG, search_type="websearch")
        vector = SearchVector("content", config=search.CONFIG)
        return Message.objects.annotate(document=vector).filter(document=query).count()
    return Message.objects.filter(content__icontains=word).count()


def measuring_client():
    """In a child with Django set up: production settings but plain static
    files, one kept connection (as CONN_MAX_AGE does in production, so its
    PostgreSQL backend can be given this process's priority), and a test
    Client logged in as the superuser "bench"."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    from core.models import User

    override_settings(
        ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"],
        DEBUG=False,
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    ).enable()
    connection.settings_dict["CONN_MAX_AGE"] = None
    user = User.objects.filter(username="bench").first()
    if user is None:
        user = User.objects.create_superuser("bench", "bench@example.com", None)
    client = Client()
    client.force_login(user)
    return client


def measure(database, size, runs, pages, priority=0, serial=False):
    """Runs in the child: time every page, return {key: {median, p90, ...}}."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analyst_admin.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    from usage import metrics

    client = measuring_client()
    backend_pid = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend_pid = cursor.fetchone()[0]
            if serial:  # every query in this backend, so its CPU time is all of it
                cursor.execute("SET max_parallel_workers_per_gather = 0")
    if priority:
        os.setpriority(os.PRIO_PROCESS, 0, priority)
        if backend_pid:
            os.setpriority(os.PRIO_PROCESS, backend_pid, priority)

    def get(url):
        def request():
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            response.content  # noqa: B018 (render streamed bodies too)

        return request

    period = metrics.Period.preset("30d")
    start, end = period.local_bounds()

    def sql_ledger():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT model_name, provider, COUNT(*), SUM(prompt_tokens), "
                "SUM(completion_tokens), SUM(cost) FROM usage_modelusage "
                "WHERE timestamp >= %s AND timestamp < %s GROUP BY model_name, provider",
                [start, end],
            )
            cursor.fetchall()

    def ledger_overview():
        with metrics.reading_from(metrics.LedgerReader()):
            get("/admin/dashboards/")()

    executed = []

    def count_queries(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    results, load = {}, [os.getloadavg()[0]]
    for key, _label, url, _group in PAGES:
        load.append(os.getloadavg()[0])
        if pages and key not in pages:
            continue
        function = {"overview_ledger": ledger_overview, "sql_ledger_30d": sql_ledger}.get(
            key
        ) or get(url)
        with connection.execute_wrapper(count_queries):
            function()  # a first request, its queries counted
        result = timed(function, runs, backend_pid)
        result["queries"], executed[:] = len(executed), []
        results[key] = result
        print(
            f"  {key:22} median {result['median']:9.1f} ms  p90 {result['p90']:9.1f} ms  "
            f"Django CPU {result['cpu']:8.1f} ms  DB CPU {result['db_cpu'] or 0:8.1f} ms  "
            f"{result['queries']} queries  "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    with connection.cursor() as cursor:
        counts = {}
        for table in (
            "usage_modelusage",
            "chats_message",
            "chats_chat",
            "core_appuser",
            "usage_dailyusage",
            "usage_dailymodelusage",
            "usage_dailylatency",
            "usage_dailymodellatency",
            "usage_dailytotal",
            "usage_dailytotallatency",
            "usage_userusage",
        ):
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
        counts["search_hits"] = search_hits(SEARCH_WORD)
    return {
        "database": database,
        "size": size,
        "runs": runs,
        "pages": results,
        "rows": counts,
        "load_average": load,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "nice": priority,
        "serial": serial,
    }


def run_measure(database, size, runs, pages, results_dir, priority=0, serial=False):
    """Measure in a subprocess with DATABASE_URL set; save and return the result."""
    out = results_dir / f"{database}-{size}.json"
    command = [
        sys.executable,
        __file__,
        "--child",
        database,
        str(size),
        "--runs",
        str(runs),
        "--out",
        str(out),
        "--nice",
        str(priority),
        *(["--serial"] if serial else []),
        *(["--pages", ",".join(pages)] if pages else []),
    ]
    env = {**os.environ, "DATABASE_URL": database_url(database, size), "DEBUG": "false"}
    log(f"measuring {database} at {size:,} ({runs} runs a page, nice {priority})")
    subprocess.run(command, env=env, check=True, cwd=ROOT)  # noqa: S603 (this script)
    result = json.loads(out.read_text())
    return result


# -- the report -----------------------------------------------------------------


def short(size):
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


def report(results):
    """The table of medians, the ratios and the targets, as markdown."""
    results = sorted(results, key=lambda r: (r["database"] != "postgres", r["size"]))
    lines = []
    header = [f"{r['database']} {short(r['size'])}" for r in results]
    lines.append("| page (median ms) | " + " | ".join(header) + " |")
    lines.append("|---|" + "---:|" * len(results))
    for key, label, _url, _group in PAGES:
        cells = []
        for r in results:
            page = r["pages"].get(key)
            cells.append(f"{page['median']:,.1f}" if page else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "| page: p90 ms / CPU ms (Django + PostgreSQL backend) / queries | "
        + " | ".join(header)
        + " |"
    )
    lines.append("|---|" + "---:|" * len(results))
    for key, label, _url, _group in PAGES:
        cells = []
        for r in results:
            page = r["pages"].get(key)
            if not page:
                cells.append("–")
                continue
            cpu = f"{page.get('cpu', 0):,.0f}"
            if page.get("db_cpu") is not None:
                cpu += f" + {page['db_cpu']:,.0f}"
            cells.append(f"{page['p90']:,.0f} / {cpu} / {page['queries']}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(
        "| load average (1 min) during the run | "
        + " | ".join(
            f"{min(r.get('load_average', [0])):.1f}–{max(r.get('load_average', [0])):.1f}"
            f" (nice {r.get('nice', 0)}{', serial' if r.get('serial') else ''})"
            for r in results
        )
        + " |"
    )
    lines.append("")
    lines.append("| rows | " + " | ".join(header) + " |")
    lines.append("|---|" + "---:|" * len(results))
    lines.extend(
        f"| {table} | " + " | ".join(f"{r['rows'].get(table, 0):,}" for r in results) + " |"
        for table in results[0]["rows"]
    )
    lines.append("")
    for r in results:
        pages = r["pages"]
        name = f"{r['database']} {short(r['size'])}"
        if "overview" in pages and "overview_ledger" in pages:
            ratio = pages["overview_ledger"]["median"] / pages["overview"]["median"]
            lines.append(
                f"- {name}: overview from the raw ledger / from the roll-ups = "
                f"{pages['overview_ledger']['median']:,.0f} / {pages['overview']['median']:,.1f}"
                f" ms = **{ratio:,.1f}×**"
            )
    for database in ("postgres", "sqlite"):
        rows = [r for r in results if r["database"] == database and "overview" in r["pages"]]
        if not rows:
            continue
        growth = rows[-1]["pages"]["overview"]["median"] / rows[0]["pages"]["overview"]["median"]
        days = "; ".join(
            f"{short(r['size'])}: "
            + " / ".join(
                f"{r['pages'][k]['median']:.0f}"
                for k in ("overview_7d", "overview", "overview_90d")
                if k in r["pages"]
            )
            for r in rows
        )
        lines.append(
            f"- {database}: overview 7 / 30 / 90 days (ms) — {days}. "
            f"30-day overview from {short(rows[0]['size'])} to {short(rows[-1]['size'])} ledger "
            f"rows: ×{growth:.2f}"
            f" for ×{rows[-1]['size'] / rows[0]['size']:,.0f} the rows."
        )
    lines.append("")
    lines.extend(check_targets(results))
    return "\n".join(lines)


def check_targets(results):
    lines = []
    for r in results:
        pages = r["pages"]
        if r["database"] == "postgres" and r["size"] >= 10_000_000:
            for key, label, _url, group in PAGES:
                if group is None or key not in pages:
                    continue
                target = PG_TARGETS[group]
                median = pages[key]["median"]
                verdict = "met" if median < target else "MISSED"
                lines.append(
                    f"- target postgres {short(r['size'])} {label}: {median:,.1f} ms "
                    f"< {target} ms — {verdict}"
                )
            if "overview_ledger" in pages and "overview" in pages:
                ratio = pages["overview_ledger"]["median"] / pages["overview"]["median"]
                verdict = "met" if ratio >= LEDGER_RATIO_TARGET else "MISSED"
                lines.append(
                    f"- target postgres {short(r['size'])} overview ≥ {LEDGER_RATIO_TARGET}× "
                    f"faster than raw ledger: {ratio:,.1f}× — {verdict}"
                )
        if r["database"] == "sqlite" and r["size"] == 1_000_000:
            worst = max(
                (pages[key]["median"], PAGE_LABELS[key])
                for key, _l, _u, group in PAGES
                if group and key in pages
            )
            verdict = "met" if worst[0] < SQLITE_TARGET else "MISSED"
            lines.append(
                f"- target sqlite 1M every page < {SQLITE_TARGET} ms: slowest is {worst[1]} "
                f"at {worst[0]:,.1f} ms — {verdict}"
            )
    return lines


# -- command line -------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        help="comma-separated ledger sizes (default 100000,1000000,10000000; "
        "SQLite only up to 1M unless --sizes names more)",
    )
    parser.add_argument("--databases", default="postgres,sqlite")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority of the measuring process and of its PostgreSQL "
        "backend (negative needs root): on a machine shared with other busy work, "
        "-10 keeps their load from queueing the pages measured",
    )
    parser.add_argument(
        "--serial",
        action="store_true",
        help="no parallel query workers (PostgreSQL), so the backend's CPU time "
        "column holds all of a page's database work",
    )
    parser.add_argument("--pages", default="", help="comma-separated page keys (default all)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--skip-build", action="store_true", help="measure existing databases")
    parser.add_argument("--report", action="store_true", help="print the saved results")
    parser.add_argument("--drop", action="store_true", help="drop the databases at the end")
    parser.add_argument("--drop-only", action="store_true", help="drop every benchmark database")
    parser.add_argument("--child", nargs=2, metavar=("DATABASE", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    pages = [p for p in args.pages.split(",") if p]

    if args.child:
        database, size = args.child[0], int(args.child[1])
        result = measure(database, size, args.runs, pages, args.nice, args.serial)
        args.out.write_text(json.dumps(result, indent=1))
        return

    args.results.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s] if args.sizes else DEFAULT_SIZES
    databases = [d for d in args.databases.split(",") if d]
    plan = [
        (database, size)
        for size in sizes
        for database in databases
        if database == "postgres" or args.sizes or size <= SQLITE_MAX_DEFAULT
    ]

    if args.drop_only:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
            names = connection.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'aa\\_bench\\_%'"
            ).fetchall()
            for (name,) in names:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                log(f"dropped {name}")
        for path in Path(tempfile.gettempdir()).glob("aa_bench_*.sqlite3*"):
            path.unlink()
            log(f"removed {path}")
        return

    if not args.report:
        builds = {}
        for database, size in plan:
            if not args.skip_build:
                builds[(database, size)] = build(database, size)
            if not args.build_only:
                result = run_measure(database, size, args.runs, pages, args.results, args.nice)
                if (database, size) in builds:
                    result["build"] = builds[(database, size)]
                    (args.results / f"{database}-{size}.json").write_text(
                        json.dumps(result, indent=1)
                    )
        if args.build_only:
            return
    results = [json.loads(p.read_text()) for p in sorted(args.results.glob("*.json"))]
    if not args.report:
        results = [r for r in results if (r["database"], r["size"]) in plan]
    print()
    print(report(results))
    if args.drop:
        for database, size in plan:
            if database == "postgres":
                drop_postgres(size)
            else:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{sqlite_path(size)}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
