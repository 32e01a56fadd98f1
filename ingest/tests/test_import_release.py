"""#16, done when: a database of an older Auto-Analyst release imports with exit
0, and its figures per model over a window are what that application's own
admin dashboard shows for the same window.

The application's dashboard reads its ``model_usage`` table (plain SQL,
``ADMIN_DASHBOARD_SQL``); ours reads the roll-ups through ``usage.metrics``
(the models page) and shows them on the page and in its CSV export. The
source is an older release, as its schema documents describe one: the
``init_db.py`` models of seeds/auto-analyst-schema-design.md (users, chats,
messages, model_usage), or the schema document's tables before agent
templates (``test_import_schema`` covers the other release rules).

Its ledger is awkward: rows just before, at and just after local midnight in
the configured TIME_ZONE (and at UTC midnight), zero and NULL costs, NULL
and zero totals beside non-zero parts, anonymous rows, a user id and a chat
id that the source does not have, one model name under two providers, huge
token counts, and a window that cuts through all of it.
"""

import datetime as dt
import re
import sqlite3
import zoneinfo
from collections import defaultdict
from decimal import Decimal

import psycopg
import pytest
from django.db import connection
from django.urls import reverse

from core.pages.period import Period, Scope
from core.tests import factories as f
from ingest.tests.source_dbs import ddl, postgres_admin_url, run_import, summary_counts
from usage import metrics
from usage.models import ModelUsage
from usage.templatetags.figures import figure
from usage.tests.test_dashboards import _csv, shown_cost, tables_of

pytestmark = pytest.mark.django_db

MODELS_PAGE = reverse("dashboards:models")

# The older releases, as DDL (SQLAlchemy's CREATE TABLE for the init_db.py models).
INIT_DB = """
CREATE TABLE users (
    user_id INTEGER NOT NULL,
    username VARCHAR NOT NULL,
    email VARCHAR NOT NULL,
    created_at {DATETIME},
    PRIMARY KEY (user_id),
    UNIQUE (username),
    UNIQUE (email)
);
CREATE TABLE chats (
    chat_id INTEGER NOT NULL,
    user_id INTEGER,
    title VARCHAR,
    created_at {DATETIME},
    PRIMARY KEY (chat_id),
    FOREIGN KEY(user_id) REFERENCES users (user_id)
);
CREATE TABLE messages (
    message_id INTEGER NOT NULL,
    chat_id INTEGER NOT NULL,
    sender VARCHAR NOT NULL,
    content TEXT NOT NULL,
    timestamp {DATETIME},
    PRIMARY KEY (message_id),
    FOREIGN KEY(chat_id) REFERENCES chats (chat_id)
);
CREATE TABLE model_usage (
    usage_id INTEGER NOT NULL,
    user_id INTEGER,
    chat_id INTEGER,
    model_name VARCHAR(100) NOT NULL,
    provider VARCHAR(50) NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    query_size INTEGER,
    response_size INTEGER,
    cost FLOAT,
    timestamp {DATETIME},
    is_streaming BOOLEAN,
    request_time_ms INTEGER,
    PRIMARY KEY (usage_id),
    FOREIGN KEY(user_id) REFERENCES users (user_id),
    FOREIGN KEY(chat_id) REFERENCES chats (chat_id)
)
"""
TEMPLATE_TABLES = ("agent_templates", "user_template_preferences")


def release_ddl(release, dialect):
    if release == "init_db":
        types = {"sqlite": "DATETIME", "postgres": "TIMESTAMP WITHOUT TIME ZONE"}
        text = INIT_DB.replace("{DATETIME}", types[dialect])
        if dialect == "postgres":  # no FOREIGN KEY, as ddl(): the orphans can be written
            text = re.sub(r",\s+FOREIGN KEY\(\w+\) REFERENCES \w+ \(\w+\)", "", text)
            text = text.replace("FLOAT", "DOUBLE PRECISION")
        return [s.strip() for s in text.split(";") if s.strip()]
    # The schema document's tables, before agent templates came.
    return [
        s
        for s in ddl("auto_analyst", dialect)
        if not any(f"TABLE {t} " in s or f"ON {t}(" in s for t in TEMPLATE_TABLES)
    ]


# The window (local days, both included) and the ledger around it.
WINDOW = (dt.date(2025, 3, 8), dt.date(2025, 3, 10))  # New York moves to summer time on the 9th
MICRO = dt.timedelta(microseconds=1)

USERS = [
    (1, "alice", "alice@example.com", "2025-01-01 00:00:00.000000"),
    (2, "Zoë 🚀", "zoe@example.com", None),
]
CHATS = [
    (10, 1, "Sales", "2025-03-01 00:00:00.000000"),
    (11, None, "New Chat", "2025-03-01 00:00:00.000000"),  # anonymous
    (12, 2, None, "2025-03-01 00:00:00.000000"),
]
MESSAGES = [
    (100, 10, "user", "Load the CSV", "2025-03-08 12:00:00.000000"),
    (101, 10, "ai", "Done.", "2025-03-08 12:00:01.000000"),
]
MODELS = [
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("gpt-4o", "azure"),  # one model name, two providers: the app groups by name
    ("claude-3-5-haiku-latest", "anthropic"),
    ("gemini-1.5-pro", "google"),
    ("llama-3.3-70b-versatile", "groq"),
]


def local_midnight(day, zone):
    """Local midnight of ``day`` as the app stores times: naive UTC."""
    moment = dt.datetime.combine(day, dt.time.min, zone)
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def ledger(zone):
    """model_usage rows: (usage_id, user_id, chat_id, model_name, provider,
    prompt, completion, total, query_size, response_size, cost, timestamp,
    is_streaming, request_time_ms); timestamps naive UTC (datetime.utcnow)."""
    first, last = WINDOW
    start = local_midnight(first, zone)
    end = local_midnight(last + dt.timedelta(days=1), zone)
    utc_midnight = dt.datetime.combine(first + dt.timedelta(days=1), dt.time.min)
    summer = local_midnight(first + dt.timedelta(days=1), zone) + dt.timedelta(hours=2, minutes=30)
    moments = [
        start - MICRO,  # the last instant before the window
        start,  # its first
        start + MICRO,
        utc_midnight - MICRO,  # UTC midnight, inside the window: not a boundary here
        utc_midnight,
        summer,  # the hour New York skips
        end - MICRO,  # its last instant
        end,  # the first after it
        start - dt.timedelta(days=40),  # well outside, both sides
        end + dt.timedelta(days=40),
    ]
    # (user_id, chat_id): known, anonymous, no chat, a user and a chat the
    # source does not have (stored without them), a user but no such chat.
    owners = [(1, 10), (None, 11), (2, None), (99, 10), (1, 77), (None, None), (2, 12)]
    # (prompt, completion, total, cost): zero cost, NULL cost (no price:
    # unpriced, counted as $0 as the app's SUM does), a total 0 beside
    # non-zero parts (stays 0), NULL tokens, huge counts.
    amounts = [
        (1200, 300, 1500, 0.00036),
        (10, 5, 15, 0.0),
        (1000, 2000, 3000, None),
        (7, 8, 0, 0.000021),
        (None, None, None, 0.25),
        (600_000_000, 300_000_000, 900_000_000, 1234.56789),
        (0, 0, 0, 0.0),
        (3, 4, 7, 0.1),
        (250, 40, 290, 0.003125),
    ]
    rows, usage_id = [], 5000
    for index, moment in enumerate(moments):
        for offset in range(len(MODELS) + 1):  # every model at most moments, some twice
            model_name, provider = MODELS[(index + offset) % len(MODELS)]
            if (index * 5 + offset) % 4 == 3:
                continue
            user_id, chat_id = owners[(index + offset) % len(owners)]
            prompt, completion, total, cost = amounts[(index * 3 + offset) % len(amounts)]
            usage_id += 1
            rows.append(
                (
                    usage_id,
                    user_id,
                    chat_id,
                    model_name,
                    provider,
                    prompt,
                    completion,
                    total,
                    40,
                    900,
                    cost,
                    moment,
                    offset % 2 == 0,
                    100 + 37 * offset,
                )
            )
    return rows


def as_stored(value, dialect):
    """A value as the application writes it: SQLAlchemy keeps a SQLite
    DATETIME as 'YYYY-MM-DD HH:MM:SS.ffffff' text."""
    if isinstance(value, dt.datetime) and dialect == "sqlite":
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


class AppDatabase:
    """The application's database (SQLite, or PostgreSQL as some deploy it),
    read by plain SQL as its own admin dashboard does."""

    def __init__(self, dialect, url):
        self.dialect, self.url = dialect, url

    def connect(self):
        if self.dialect == "sqlite":
            return sqlite3.connect(self.url.removeprefix("sqlite:///"))
        return psycopg.connect(self.url)

    def fill(self, release, zone):
        mark = "?" if self.dialect == "sqlite" else "%s"
        tables = {
            "users": USERS,
            "chats": CHATS,
            "messages": MESSAGES,
            "model_usage": ledger(zone),
        }
        db = self.connect()
        try:
            for statement in release_ddl(release, self.dialect):
                db.execute(statement)
            for table, rows in tables.items():
                marks = ", ".join([mark] * len(rows[0]))
                db.cursor().executemany(
                    f"INSERT INTO {table} VALUES ({marks})",  # noqa: S608
                    [tuple(as_stored(v, self.dialect) for v in row) for row in rows],
                )
            db.commit()
        finally:
            db.close()

    def rows(self, sql, params=()):
        if self.dialect == "postgres":
            sql = sql.replace("?", "%s")
        db = self.connect()
        try:
            return list(db.execute(sql, [as_stored(p, self.dialect) for p in params]))
        finally:
            db.close()


def window_bounds(zone):
    """[start, end) of the window in UTC, as the application stores times."""
    return local_midnight(WINDOW[0], zone), local_midnight(WINDOW[1] + dt.timedelta(days=1), zone)


# What Auto-Analyst's admin dashboard computes for a window: per model name.
ADMIN_DASHBOARD_SQL = """
SELECT model_name, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens),
       SUM(total_tokens), SUM(cost)
FROM model_usage
WHERE timestamp >= ? AND timestamp < ?
GROUP BY model_name
ORDER BY model_name
"""


def admin_dashboard(app_db, bounds):
    """{model_name: (requests, prompt, completion, total, cost)} as the app
    shows them for [start, end) in UTC (as it stores times), a sum of only
    NULLs shown as 0, costs to the 8 places of a USD amount."""
    figures = {}
    for name, requests, prompt, completion, total, cost in app_db.rows(ADMIN_DASHBOARD_SQL, bounds):
        cost = Decimal(repr(cost or 0.0)).quantize(Decimal("0.00000001"))
        figures[name] = (requests, prompt or 0, completion or 0, total or 0, cost)
    return figures


def per_model_name(rows):
    """Our rows (per model and provider) added up per model name, as the app groups."""
    keys = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost")
    return {
        name: tuple(sum((r[k] for r in rows if r["model_name"] == name), start=0) for k in keys)
        for name in {r["model_name"] for r in rows}
    }


def per_model_sum(rows, key):
    return {
        name: sum(r[key] for r in rows if r["model_name"] == name)
        for name in {r["model_name"] for r in rows}
    }


@pytest.fixture
def app_db(request, tmp_path):
    dialect = request.param
    if dialect == "sqlite":
        yield AppDatabase(dialect, f"sqlite:///{tmp_path / 'auto_analyst.db'}")
        return
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL source needs the tests to run on PostgreSQL")
    name = "fidelity_release_src"
    admin_url = postgres_admin_url()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield AppDatabase(dialect, admin_url.rsplit("/", 1)[0] + f"/{name}")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("app_db", ["sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize("release", ["init_db", "before_templates"])
@pytest.mark.parametrize("zone_name", ["America/New_York", "Asia/Kolkata"])
def test_an_older_release_shows_per_model_what_its_own_admin_dashboard_shows(
    app_db, release, zone_name, settings, client, tmp_path
):
    settings.TIME_ZONE = zone_name  # days are cut in it, from the import on
    zone = zoneinfo.ZoneInfo(zone_name)
    app_db.fill(release, zone)

    # manage.py import_source: no CommandError, so exit code 0.
    out, _, report = run_import("auto_analyst", app_db.url, tmp_path / "rejects.jsonl")

    # Every ledger row landed; the links the source cannot back were dropped.
    (read,) = app_db.rows("SELECT COUNT(*) FROM model_usage")[0]
    assert summary_counts(out)["model_usage"] == {
        "read": read,
        "created": read,
        "updated": 0,
        "unchanged": 0,
        "refused": 0,
        "dropped": sum(
            n
            for (n,) in app_db.rows(
                "SELECT COUNT(*) FROM model_usage WHERE user_id = 99 "
                "UNION ALL SELECT COUNT(*) FROM model_usage WHERE chat_id = 77"
            )
        ),
        "deleted_at_source": 0,
    }
    assert ModelUsage.objects.count() == read
    assert not [line for line in report if line["outcome"] == "refused"]
    dropped = {(line["column"], line["value"]) for line in report if line.get("column")}
    assert dropped == {("user_id", 99), ("chat_id", 77)}
    assert "parent user missing at source: user_id=…" in out  # the summary's reasons

    theirs = admin_dashboard(app_db, window_bounds(zone))
    # Rows sit on both edges: a window a microsecond off shows other figures.
    start, end = window_bounds(zone)
    for bounds in (
        (start - MICRO, end),
        (start + MICRO, end),
        (start, end - MICRO),
        (start, end + MICRO),
    ):
        assert admin_dashboard(app_db, bounds) != theirs, bounds
    assert len(theirs) == len({name for name, _ in MODELS})  # the window holds every model
    period = Period(*WINDOW)

    # usage.metrics, as the models page computes it, per model name.
    rows = metrics.models_table(period, Scope())
    assert per_model_name(rows) == theirs
    # The same from the raw ledger (no roll-up in between).
    with metrics.reading_from(metrics.LedgerReader()):
        assert per_model_name(metrics.models_table(period, Scope())) == theirs
    # The requests with no cost at the source are the unpriced ones (no price set).
    unpriced = app_db.rows(
        "SELECT model_name, COUNT(*) FROM model_usage WHERE timestamp >= ? "
        "AND timestamp < ? AND cost IS NULL GROUP BY model_name",
        window_bounds(zone),
    )
    assert dict.fromkeys(theirs, 0) | dict(unpriced) == per_model_sum(rows, "unpriced_requests")

    # The models page, as a manager sees it, and its CSV export.
    client.force_login(f.UserFactory(groups=["Managers"]))
    query = {
        "period": "custom",
        "start": WINDOW[0].isoformat(),
        "end": WINDOW[1].isoformat(),
    }
    response = client.get(MODELS_PAGE, query)
    assert response.status_code == 200
    shown = tables_of(response.content.decode())["models"]
    by_row = {(r["model_name"], r["provider"]): r for r in rows}
    # Requests, input and output tokens, then (after cached input and
    # reasoning tokens) the cost, flagged with its calls without a price.
    assert {(cells[0], cells[1]): [*cells[2:5], cells[7]] for cells in shown} == {
        key: [
            *(figure(row[k]) for k in ("requests", "prompt_tokens", "completion_tokens")),
            shown_cost(row["cost"], row["unpriced_requests"]),
        ]
        for key, row in by_row.items()
    }
    exported = _csv(client.get(MODELS_PAGE, {**query, "export": "models"}))
    header = exported[0]
    assert header[:5] == ["Model", "Provider", "Requests", "Input tokens", "Output tokens"]
    at = header.index("Cost (USD)")
    csv_sums = defaultdict(lambda: [0, 0, 0, Decimal(0)])
    for row in exported[1:]:
        name, _provider, requests, prompt, completion, cost = *row[:5], row[at]
        for index, value in enumerate((int(requests), int(prompt), int(completion), Decimal(cost))):
            csv_sums[name][index] += value
    assert {name: tuple(v) for name, v in csv_sums.items()} == {
        name: (requests, prompt, completion, cost)
        for name, (requests, prompt, completion, _total, cost) in theirs.items()
    }
