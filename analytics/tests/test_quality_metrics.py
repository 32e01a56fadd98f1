"""Every figure of analytics.metrics equals the same figure computed another way:
plain SQL on the raw rows (code executions, feedback, messages, chats, app
users, sessions, query analytics, the ledger), with local days cut in
Python (zoneinfo) from the raw timestamps and error messages parsed in
Python from the raw JSON.

The data (``world``) is awkward on purpose: anonymous chats and queries,
NULL models, ratings, temperatures, end times and execution times, error
messages stored as a map, a list, a bare string, NULL, {} and "", a day with
nothing at all (8 March), and rows at 23:59:59 / 00:00:00 UTC, at New York
midnight and on either side of New York's switch to summer time (10 March).
Each test runs with days cut in UTC and again in America/New_York.
"""

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from analytics import metrics as quality
from chats.models import Message
from core.tests import factories as f
from usage import ledger
from usage.metrics import Period, Scope
from usage.models import ModelUsage, QueryAnalytics
from usage.tests.conftest import TODAY, utc

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["UTC", "America/New_York"])
def time_zone(request, settings):
    settings.TIME_ZONE = request.param
    return request.param


def traceback(error, line=7):
    return (
        "Traceback (most recent call last):\n"
        '  File "/app/runner.py", line 88, in execute_code\n'
        "    exec(compiled, namespace)\n"
        f'  File "<string>", line {line}, in <module>\n'
        f"{error}"
    )


@pytest.fixture
def world(time_zone):
    """Organisations, app users, sources, chats, messages, code executions,
    feedback, sessions, query analytics and ledger rows, Feb–Mar 2024."""
    acme = f.OrganizationFactory(name="Acme", slug="acme")
    globex = f.OrganizationFactory(name="Globex", slug="globex")
    aa = f.SourceFactory(name="auto-analyst", kind="auto_analyst")
    ds = f.SourceFactory(name="ds-ml", kind="ds_ml_agent")
    tts = f.SourceFactory(name="text-to-sql", kind="text_to_sql")

    def user(name, org, source, created):
        return f.AppUserFactory(
            username=name,
            email=f"{name}@example.test",
            organization=org,
            source=source,
            source_pk=name,
            created_at=created,
        )

    # 4 Mar 04:30 UTC is Sunday 3 March 23:30 in New York; 11 Mar 03:00 UTC
    # is Sunday 10 March 23:00 there: both sign up a week earlier in New York.
    ann = user("ann", acme, aa, utc(2024, 3, 4, 4, 30))
    bob = user("bob", acme, aa, utc(2024, 3, 11, 3))
    cat = user("cat", globex, ds, utc(2024, 2, 20, 12))
    dan = user("dan", None, tts, utc(2024, 3, 14, 3))
    user("eve", acme, aa, utc(2024, 3, 12, 12))  # never active

    def chat(name, who, org, source, created):
        return f.ChatFactory(
            title=name,
            user=who,
            organization=org,
            source=source,
            source_pk=name,
            created_at=created,
        )

    chat_ann = chat("ann's sales", ann, acme, aa, utc(2024, 3, 4, 5))
    chat_ann2 = chat("ann's march", ann, acme, aa, utc(2024, 3, 1, 0, 0, 0))
    chat_bob = chat("bob's churn", bob, acme, aa, utc(2024, 3, 11, 3, 10))
    chat_cat = chat("cat's clusters", cat, globex, ds, utc(2024, 3, 5, 12))
    chat_anon = chat("anonymous", None, None, aa, utc(2024, 3, 13, 23, 59, 59))
    chat_dan = chat("dan's sql", dan, None, tts, utc(2024, 3, 14, 3, 5))

    numbers = iter(range(1, 1000))

    def message(chat_, when, role="user", **extra):
        return f.MessageFactory(
            chat=chat_,
            role=role,
            created_at=when,
            source=chat_.source,
            source_pk=f"m{next(numbers)}",
            **extra,
        )

    def answer(chat_, when, **extra):
        return message(chat_, when, role="assistant", **extra)

    message(chat_ann, utc(2024, 3, 4, 5, 1))
    a1 = answer(chat_ann, utc(2024, 3, 4, 5, 2), model_name="gpt-4o")
    message(chat_ann, utc(2024, 3, 13, 23, 59, 59))
    a2 = answer(chat_ann, utc(2024, 3, 13, 23, 59, 59), model_name="gpt-4o", is_mistake=True)
    message(chat_ann, utc(2024, 3, 14, 0, 0, 0))
    a3 = answer(chat_ann, utc(2024, 3, 14, 0, 0, 30))
    message(chat_ann, utc(2024, 3, 14, 3))
    a4 = answer(chat_ann, utc(2024, 3, 14, 4), model_name="claude", is_mistake=True)
    message(chat_ann, utc(2024, 3, 2, 10), role="system")
    message(chat_ann2, utc(2024, 3, 1, 0, 0, 0))
    a0 = answer(chat_ann2, utc(2024, 3, 1, 0, 0, 30), model_name="gpt-4o")
    message(chat_bob, utc(2024, 3, 11, 3, 10))
    b1 = answer(chat_bob, utc(2024, 3, 11, 3, 11), model_name="gpt-4o")
    message(chat_bob, utc(2024, 3, 12, 10))
    b2 = answer(chat_bob, utc(2024, 3, 12, 10, 1))
    message(chat_cat, utc(2024, 3, 5, 12))
    c1 = answer(chat_cat, utc(2024, 3, 5, 12, 1), agent_type="csv_analysis")
    message(chat_cat, utc(2024, 3, 12, 12))
    c2 = answer(chat_cat, utc(2024, 3, 12, 12, 1), agent_type="ml_analysis")
    c3 = answer(chat_cat, utc(2024, 3, 10, 4, 59, 59), agent_type="ml_analysis")
    message(chat_anon, utc(2024, 3, 13, 23, 59, 59))
    n1 = answer(chat_anon, utc(2024, 3, 14, 0, 0, 0), model_name="gpt-4o", is_mistake=True)
    message(chat_dan, utc(2024, 3, 14, 3, 5))
    d1 = answer(chat_dan, utc(2024, 3, 15, 2), model_name="llama", query_id="q-dan-1")

    def execution(n, msg, ok, model, provider, created, updated=None, chat_=None, **extra):
        chat_ = msg.chat if msg else chat_
        return f.CodeExecutionFactory(
            message=msg,
            chat=chat_,
            user=chat_.user if chat_ else None,
            is_successful=ok,
            model_name=model,
            model_provider=provider,
            created_at=created,
            updated_at=updated,
            source=chat_.source if chat_ else aa,
            source_pk=f"e{n}",
            **extra,
        )

    same = {"initial_code": "print(1)", "latest_code": "print(1)"}
    execution(1, a1, True, "gpt-4o", "openai", utc(2024, 3, 4, 5, 3), utc(2024, 3, 4, 5, 3, 40))
    execution(
        11, a1, True, "gpt-4o", "openai", utc(2024, 3, 4, 5, 4), utc(2024, 3, 4, 5, 4), **same
    )
    execution(
        2,
        a2,
        False,
        "gpt-4o",
        "openai",
        utc(2024, 3, 13, 23, 59, 59),
        None,
        error_messages={
            "planner_preprocessing_agent": traceback("KeyError: 'revenue'"),
            "data_viz_agent": "Timeout after 30 seconds",
        },
        failed_agents=["planner_preprocessing_agent"],
        **same,
    )
    execution(
        3,
        a2,
        False,
        "gpt-4o",
        "openai",
        utc(2024, 3, 14, 0, 0, 0),
        utc(2024, 3, 14, 0, 0, 10),
        error_messages={
            "planner_preprocessing_agent": traceback("KeyError: 'sales'", 9) + "\r\n\n"
        },
        failed_agents=["planner_preprocessing_agent"],
    )
    execution(
        4,
        a3,
        False,
        None,
        None,
        utc(2024, 3, 14, 3),
        utc(2024, 3, 14, 2, 59),
        error_messages=[
            "ValueError: could not convert: 'N/A'",
            "  pandas.errors.ParserError: Error tokenizing data  ",
        ],
        failed_agents=None,
    )
    execution(
        5,
        b1,
        False,
        "claude",
        "anthropic",
        utc(2024, 3, 11, 3, 12),
        utc(2024, 3, 11, 3, 13),
        error_messages="Error: something broke\n",
        failed_agents=[],
    )
    execution(
        6, b2, True, "claude", "anthropic", utc(2024, 3, 12, 10, 2), utc(2024, 3, 12, 10, 2), **same
    )
    # No message and no chat: counted, but in no chat and no transcript.
    execution(
        7,
        None,
        False,
        "gpt-4o",
        "openai",
        utc(2024, 3, 10, 4, 59, 59),
        error_messages=None,
        failed_agents=["sk_learn_agent"],
    )
    execution(
        8,
        a4,
        False,
        "claude",
        "anthropic",
        utc(2024, 3, 14, 4),
        utc(2024, 3, 14, 4, 2),
        error_messages={},
        failed_agents=None,
    )
    stats = "\n\nline one\n  NameError: name 'x' is not defined\n"
    execution(
        9,
        n1,
        False,
        "gpt-4o",
        "openai",
        utc(2024, 3, 14, 0, 0, 1),
        error_messages={"sql_agent": "", "viz_agent": None, "stats_agent": stats},
        failed_agents=["viz_agent"],
    )
    execution(10, d1, True, "llama", "groq", utc(2024, 3, 15, 2), None, initial_code=None)
    execution(
        12,
        a0,
        False,
        "gpt-4o",
        "openai",
        utc(2024, 3, 1, 0, 0, 40),
        utc(2024, 3, 1, 0, 1, 40),
        error_messages={"agent_x": "SyntaxError: invalid syntax"},
        failed_agents=["agent_x"],
    )

    def feedback(n, msg, rating, model, provider, created, temperature=None, max_tokens=None):
        return f.MessageFeedbackFactory(
            message=msg,
            rating=rating,
            model_name=model,
            model_provider=provider,
            temperature=temperature,
            max_tokens=max_tokens,
            created_at=created,
            source=msg.source,
            source_pk=f"f{n}",
        )

    feedback(1, a1, 5, "gpt-4o", "openai", utc(2024, 3, 4, 5, 5), 0.0, 1000)
    feedback(2, a2, 1, "gpt-4o", "openai", utc(2024, 3, 14, 0, 0, 0), 0.3, 2000)
    feedback(3, a3, 2, None, None, utc(2024, 3, 14, 4, 0, 0), 0.7, 8000)
    feedback(4, a4, None, "claude", "anthropic", utc(2024, 3, 14, 5), 1.0, 4000)
    feedback(5, b1, 3, "claude", "anthropic", utc(2024, 3, 11, 3, 20))
    feedback(6, c1, 4, None, None, utc(2024, 3, 5, 12, 5), 0.31, 16000)
    feedback(7, c2, 2, None, None, utc(2024, 3, 12, 12, 5), 0.29, 1001)
    feedback(8, n1, 1, "gpt-4o", "openai", utc(2024, 3, 15, 2), 0.5, 4000)
    feedback(9, c3, 5, None, None, utc(2024, 3, 10, 5))
    feedback(10, d1, 4, "llama", "groq", utc(2024, 2, 2, 12), 0.0, 500)
    feedback(11, a0, 3, "gpt-4o", "openai", utc(2024, 3, 1, 0, 1))

    def session(who, start, seconds):
        end = None if seconds is None else start + dt.timedelta(seconds=seconds)
        return f.UserSessionFactory(
            user=who,
            session_start=start,
            session_end=end,
            source=who.source,
            source_pk=f"s{next(numbers)}",
        )

    session(ann, utc(2024, 3, 13, 23, 59, 59), 90)
    session(ann, utc(2024, 3, 14, 0, 0, 0), None)
    session(bob, utc(2024, 3, 11, 3), 3600)
    session(cat, utc(2024, 3, 10, 4, 59, 59), 31)
    session(dan, utc(2024, 3, 14, 3), -60)  # ends before it starts: no length
    session(dan, utc(2024, 3, 15, 2), 45)

    def usage(n, who, model, provider, when, source, tokens):
        return ModelUsage(
            user=who,
            model_name=model,
            provider=provider,
            prompt_tokens=tokens,
            completion_tokens=tokens // 2,
            cost=Decimal("0.001"),
            timestamp=when,
            source=source,
            source_pk=f"u{n}",
        )

    rows = ledger.add_usage(
        [
            usage(1, dan, "gpt-4o", "openai", utc(2024, 3, 14, 3, 5), tts, 1000),
            usage(2, dan, "llama", "groq", utc(2024, 3, 13, 23, 59, 59), tts, 800),
            usage(3, cat, "gpt-4o", "openai", utc(2024, 3, 10, 4, 59, 59), tts, 600),
            usage(4, None, "gpt-4o", "openai", utc(2024, 3, 14, 0, 0, 0), aa, 400),
            usage(5, ann, "claude", "anthropic", utc(2024, 3, 14, 4), aa, 300),
            usage(6, bob, "gpt-4o", "openai", utc(2024, 3, 11, 3, 11), aa, 200),
        ]
    )

    def query(n, who, ok, seconds, count, when, error=None, use=None, query_id=None):
        return QueryAnalytics.objects.create(
            user=who,
            success=ok,
            execution_time=seconds,
            row_count=count,
            timestamp=when,
            error_message=error,
            usage=use,
            query_id=query_id or f"q{n}",
            question=f"question {n}",
            sql_query=f"SELECT {n}",
            source=tts,
            source_pk=f"q{n}",
        )

    relation = 'relation "sales" does not exist'
    query(1, dan, True, 0.5, 5, utc(2024, 3, 14, 3, 5), use=rows[0], query_id="q-dan-1")
    query(2, dan, False, 30.0, None, utc(2024, 3, 13, 23, 59, 59), relation, rows[1])
    query(3, None, False, 0.01, None, utc(2024, 3, 14, 4), relation)
    query(4, cat, None, None, None, utc(2024, 3, 10, 4, 59, 59), use=rows[2])
    query(5, cat, True, 2.0, 0, utc(2024, 3, 12, 12))
    query(6, bob, True, 1.0, 150, utc(2024, 3, 11, 3), use=rows[5])
    query(7, bob, True, 3.0, 5000, utc(2024, 3, 15, 2))
    query(8, ann, False, 0.2, None, utc(2024, 3, 1, 0, 0, 0), "permission denied for table x")
    query(9, ann, True, 0.7, 1, utc(2024, 3, 13, 12))
    query(10, ann, False, 0.3, None, utc(2024, 3, 13, 13))  # failed without an error text
    query(11, dan, True, 1.5, 1001, utc(2024, 3, 14, 12))

    return SimpleNamespace(
        acme=acme,
        globex=globex,
        aa=aa,
        ds=ds,
        tts=tts,
        ann=ann,
        bob=bob,
        cat=cat,
        dan=dan,
        chat_ann=chat_ann,
        chat_anon=chat_anon,
        a2=a2,
    )


# -- plain SQL on the raw rows ---------------------------------------------------


def _sql(query, params=()):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def _aware(value):
    """A timestamp from a raw cursor (PostgreSQL: aware; SQLite: naive UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _json(text):
    return None if text is None else json.loads(text)


def ratio(part, whole):
    return part / whole if whole else None


def percentile_cont(values, q=0.95):
    ordered = sorted(values)
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = int(position)
    if low + 1 >= len(ordered):
        return float(ordered[low])
    return ordered[low] + (ordered[low + 1] - ordered[low]) * (position - low)


def error_type(message):
    """The module docstring's rule, in Python."""
    if message is None:
        return quality.NO_ERROR
    text = str(message).rstrip(" \t\n\r")
    last = text.rsplit("\n", 1)[-1].strip(" \t\r")
    if last == "":
        return "(empty message)"
    head = last.split(":", 1)[0].strip(" \t")
    return head[:100] if head and " " not in head else last[:100]


def entries(stored):
    """[(agent, message)] of a stored error_messages value."""
    if isinstance(stored, dict):
        return list(stored.items())
    if isinstance(stored, list):
        return [(None, item) for item in stored]
    if stored is None:
        return []
    return [(None, stored)]


def agents_of(row):
    found = set()
    if isinstance(row["failed_agents"], list):
        found |= {str(a) for a in row["failed_agents"] if a is not None}
    if isinstance(row["error_messages"], dict):
        found |= set(row["error_messages"])
    return found or {quality.NO_AGENT}


class Raw:
    """Figures straight from the raw tables, for periods of local days."""

    def __init__(self, zone):
        self.zone = ZoneInfo(zone)

    def day(self, timestamp):
        return _aware(timestamp).astimezone(self.zone).date()

    def within(self, timestamp, period):
        return timestamp is not None and period.start <= self.day(timestamp) <= period.end

    @staticmethod
    def matches(row, scope, **columns):
        """Whether a row is in scope; ``columns`` maps Scope fields to the
        row's keys (a field not given does not apply)."""
        for name, value in (
            ("user", scope.user_id),
            ("organization", scope.organization_id),
            ("source", scope.source_id),
            ("model", scope.model_name),
            ("provider", scope.provider),
        ):
            key = columns.get(name)
            if key and value is not None and row[key] != value:
                return False
        return True

    # -- raw rows ------------------------------------------------------------------

    def executions(self, period, scope):
        rows = _sql(
            """
            SELECT e.id, e.created_at, e.updated_at, e.is_successful, e.model_name,
                   e.model_provider, e.source_id, e.chat_id, e.message_id, e.initial_code,
                   e.latest_code, CAST(e.failed_agents AS TEXT), CAST(e.error_messages AS TEXT),
                   c.user_id, c.organization_id, c.title
            FROM chats_codeexecution e LEFT JOIN chats_chat c ON c.id = e.chat_id
            """
        )
        keys = (
            "id",
            "created_at",
            "updated_at",
            "ok",
            "model",
            "provider",
            "source",
            "chat_id",
            "message_id",
            "initial",
            "latest",
            "failed_agents",
            "error_messages",
            "user",
            "organization",
            "title",
        )
        found = []
        for values in rows:
            row = dict(zip(keys, values, strict=True))
            row["ok"] = bool(row["ok"])
            row["created_at"], row["updated_at"] = (
                _aware(row["created_at"]),
                _aware(row["updated_at"]),
            )
            row["failed_agents"] = _json(row["failed_agents"])
            row["error_messages"] = _json(row["error_messages"])
            row["changed"] = (
                row["initial"] is not None
                and row["latest"] is not None
                and row["initial"] != row["latest"]
            )
            if self.within(row["created_at"], period) and self.matches(
                row,
                scope,
                user="user",
                organization="organization",
                source="source",
                model="model",
                provider="provider",
            ):
                found.append(row)
        return found

    def feedback(self, period, scope):
        rows = _sql(
            """
            SELECT fb.id, fb.created_at, fb.rating, fb.model_name, fb.model_provider,
                   fb.temperature, fb.max_tokens, fb.source_id, m.agent_type, m.id,
                   c.user_id, c.organization_id
            FROM chats_messagefeedback fb JOIN chats_message m ON m.id = fb.message_id
            JOIN chats_chat c ON c.id = m.chat_id
            """
        )
        keys = (
            "id",
            "created_at",
            "rating",
            "model",
            "provider",
            "temperature",
            "max_tokens",
            "source",
            "agent_type",
            "message_id",
            "user",
            "organization",
        )
        found = []
        for values in rows:
            row = dict(zip(keys, values, strict=True))
            if (
                row["rating"] is not None
                and self.within(row["created_at"], period)
                and self.matches(
                    row,
                    scope,
                    user="user",
                    organization="organization",
                    source="source",
                    model="model",
                    provider="provider",
                )
            ):
                found.append(row)
        return found

    def messages(self, period, scope, **columns):
        rows = _sql(
            """
            SELECT m.id, m.created_at, m.role, m.model_name, m.is_mistake, m.source_id,
                   m.chat_id, c.user_id, c.organization_id, c.source_id,
                   (SELECT fb.rating FROM chats_messagefeedback fb WHERE fb.message_id = m.id)
            FROM chats_message m JOIN chats_chat c ON c.id = m.chat_id
            """
        )
        keys = (
            "id",
            "created_at",
            "role",
            "model",
            "mistake",
            "source",
            "chat_id",
            "user",
            "organization",
            "chat_source",
            "rating",
        )
        columns = columns or {"user": "user", "organization": "organization", "source": "source"}
        found = []
        for values in rows:
            row = dict(zip(keys, values, strict=True))
            row["mistake"] = bool(row["mistake"])
            if self.within(row["created_at"], period) and self.matches(row, scope, **columns):
                found.append(row)
        return found

    def chats(self, period, scope):
        rows = _sql("SELECT id, created_at, user_id, organization_id, source_id FROM chats_chat")
        return [
            dict(zip(("id", "created_at", "user", "organization", "source"), r, strict=True))
            for r in rows
            if self.within(r[1], period)
            and self.matches(
                {"user": r[2], "organization": r[3], "source": r[4]},
                scope,
                user="user",
                organization="organization",
                source="source",
            )
        ]

    def app_users(self, period, scope):
        rows = _sql("SELECT id, created_at, organization_id, source_id FROM core_appuser")
        return [
            {"id": r[0], "created_at": _aware(r[1])}
            for r in rows
            if self.within(r[1], period)
            and self.matches(
                {"user": r[0], "organization": r[2], "source": r[3]},
                scope,
                user="user",
                organization="organization",
                source="source",
            )
        ]

    def sessions(self, period, scope):
        rows = _sql(
            "SELECT s.id, s.session_start, s.session_end, s.user_id, u.organization_id, "
            "s.source_id FROM core_usersession s JOIN core_appuser u ON u.id = s.user_id"
        )
        return [
            {"start": _aware(r[1]), "end": _aware(r[2])}
            for r in rows
            if self.within(r[1], period)
            and self.matches(
                {"user": r[3], "organization": r[4], "source": r[5]},
                scope,
                user="user",
                organization="organization",
                source="source",
            )
        ]

    def queries(self, period, scope):
        rows = _sql(
            """
            SELECT q.id, q.timestamp, q.success, q.execution_time, q.row_count, q.error_message,
                   q.query_id, q.user_id, u.organization_id, q.source_id, mu.model_name,
                   mu.provider
            FROM usage_queryanalytics q LEFT JOIN core_appuser u ON u.id = q.user_id
            LEFT JOIN usage_modelusage mu ON mu.id = q.usage_id
            """
        )
        keys = (
            "id",
            "timestamp",
            "success",
            "time",
            "rows",
            "error",
            "query_id",
            "user",
            "organization",
            "source",
            "model",
            "provider",
        )
        found = []
        for values in rows:
            row = dict(zip(keys, values, strict=True))
            row["success"] = None if row["success"] is None else bool(row["success"])
            row["timestamp"] = _aware(row["timestamp"])
            if self.within(row["timestamp"], period) and self.matches(
                row,
                scope,
                user="user",
                organization="organization",
                source="source",
                model="model",
                provider="provider",
            ):
                found.append(row)
        return found

    def ledger(self, period, scope):
        rows = _sql(
            "SELECT timestamp, source_id, organization_id, user_id, total_tokens "
            "FROM usage_modelusage"
        )
        return [
            {"source": r[1], "organization": r[2], "tokens": r[4]}
            for r in rows
            if self.within(r[0], period)
            and self.matches(
                {"user": r[3], "organization": r[2], "source": r[1]},
                scope,
                user="user",
                organization="organization",
                source="source",
            )
        ]

    # -- code execution ---------------------------------------------------------------

    def execution_totals(self, period, scope):
        rows = self.executions(period, scope)
        n, ok = len(rows), sum(r["ok"] for r in rows)
        chats = {r["chat_id"] for r in rows if r["chat_id"] is not None}
        retried = sum(r["changed"] for r in rows)
        return {
            "executions": n,
            "successes": ok,
            "retried": retried,
            "chats": len(chats),
            "failures": n - ok,
            "success_rate": ratio(ok, n),
            "retried_share": ratio(retried, n),
            "per_chat": ratio(sum(r["chat_id"] is not None for r in rows), len(chats)),
        }

    def success_per_day(self, period, scope):
        by_day = defaultdict(lambda: [0, 0])
        for r in self.executions(period, scope):
            by_day[self.day(r["created_at"])][0] += 1
            by_day[self.day(r["created_at"])][1] += r["ok"]
        return [
            (d, *by_day.get(d, (0, 0)), ratio(by_day[d][1], by_day[d][0]) if d in by_day else None)
            for d in period.each_day()
        ]

    def success_by_model(self, period, scope):
        groups = defaultdict(list)
        for r in self.executions(period, scope):
            groups[(r["model"], r["provider"])].append(r)
        rows = []
        for (model, provider), items in groups.items():
            n, ok, retried = (
                len(items),
                sum(r["ok"] for r in items),
                sum(r["changed"] for r in items),
            )
            rows.append(
                {
                    "model_name": model,
                    "model_provider": provider,
                    "executions": n,
                    "successes": ok,
                    "retried": retried,
                    "failures": n - ok,
                    "success_rate": ok / n,
                    "retried_share": retried / n,
                }
            )
        rows.sort(
            key=lambda r: (
                -r["executions"],
                r["model_name"] is None,
                r["model_name"] or "",
                r["model_provider"] or "",
            )
        )
        return rows

    def error_entries(self, period, scope):
        """[(execution row, agent, error type, last line)] of failed executions."""
        found = []
        for r in self.executions(period, scope):
            if r["ok"]:
                continue
            items = entries(r["error_messages"]) or [(None, None)]
            for agent, message in items:
                last = None
                if message is not None:
                    last = str(message).rstrip(" \t\n\r").rsplit("\n", 1)[-1].strip(" \t\r")
                found.append((r, agent, error_type(message), last))
        return found

    def failures_by_error_type(self, period, scope):
        groups = defaultdict(lambda: (set(), set(), []))
        for r, agent, kind, last in self.error_entries(period, scope):
            ids, agents, lines = groups[kind]
            ids.add(r["id"])
            if agent is not None:
                agents.add(agent)
            if last is not None:
                lines.append(last)
        rows = [
            {
                "error_type": kind,
                "executions": len(ids),
                "agents": len(agents),
                "example": min(lines) if lines else None,
            }
            for kind, (ids, agents, lines) in groups.items()
        ]
        rows.sort(key=lambda r: (-r["executions"], r["error_type"]))
        return rows

    def failures_by_agent(self, period, scope):
        failing = [r for r in self.executions(period, scope) if not r["ok"]]
        groups = defaultdict(list)
        for r in failing:
            for agent in agents_of(r):
                groups[agent].append(r)
        rows = [
            {
                "agent": agent,
                "executions": len(items),
                "share": len(items) / len(failing),
                "chats": len({r["chat_id"] for r in items if r["chat_id"] is not None}),
            }
            for agent, items in groups.items()
        ]
        rows.sort(key=lambda r: (-r["executions"], r["agent"]))
        return rows

    def executions_per_chat(self, period, scope):
        per_chat = defaultdict(int)
        for r in self.executions(period, scope):
            if r["chat_id"] is not None:
                per_chat[r["chat_id"]] += 1
        buckets = defaultdict(int)
        for n in per_chat.values():
            buckets[min(n, 5)] += 1
        return [(n, buckets.get(n, 0)) for n in range(1, 6)]

    def busiest_chats(self, period, scope):
        groups = defaultdict(list)
        for r in self.executions(period, scope):
            if r["chat_id"] is not None:
                groups[(r["chat_id"], r["title"])].append(r)
        rows = [
            {
                "chat_id": chat_id,
                "chat__title": title,
                "executions": len(items),
                "failures": sum(not r["ok"] for r in items),
            }
            for (chat_id, title), items in groups.items()
        ]
        rows.sort(key=lambda r: (-r["executions"], -r["failures"], r["chat_id"]))
        return rows[:10]

    def slowest(self, period, scope):
        rows = [
            r
            for r in self.executions(period, scope)
            if r["updated_at"] is not None and r["updated_at"] > r["created_at"]
        ]
        rows.sort(key=lambda r: (-(r["updated_at"] - r["created_at"]).total_seconds(), -r["id"]))
        return [(r["id"], r["updated_at"] - r["created_at"]) for r in rows[:10]]

    def most_retried(self, period, scope):
        groups = defaultdict(list)
        for r in self.executions(period, scope):
            if r["message_id"] is not None:
                groups[r["message_id"]].append(r)
        rows = []
        for message_id, items in groups.items():
            runs, changed = len(items), sum(r["changed"] for r in items)
            if runs > 1 or changed:
                rows.append(
                    {
                        "message_id": message_id,
                        "runs": runs,
                        "changed": changed,
                        "failures": sum(not r["ok"] for r in items),
                        "last": max(r["created_at"] for r in items),
                    }
                )
        rows.sort(
            key=lambda r: (
                -r["runs"],
                -r["changed"],
                -r["failures"],
                -r["last"].timestamp(),
                -r["message_id"],
            )
        )
        return rows[:10]

    # -- feedback -----------------------------------------------------------------------

    @staticmethod
    def _ratings(items):
        n = len(items)
        low = sum(r["rating"] <= 2 for r in items)
        return {
            "ratings": n,
            "average": sum(r["rating"] for r in items) / n if n else None,
            "low": low,
            "low_share": ratio(low, n),
        }

    def feedback_totals(self, period, scope):
        row = self._ratings(self.feedback(period, scope))
        if scope.model_name or scope.provider:
            row["rated_share"] = None
        else:
            answers = [m for m in self.messages(period, scope) if m["role"] == "assistant"]
            rated = sum(m["rating"] is not None for m in answers)
            row["rated_share"] = ratio(rated, len(answers))
        mistakes = self.mistake_rows(period, scope)
        row["mistakes"] = sum(m["mistake"] for m in mistakes)
        row["mistake_share"] = ratio(row["mistakes"], len(mistakes))
        return row

    def mistake_rows(self, period, scope):
        if scope.provider:
            return []
        return [
            m
            for m in self.messages(
                period,
                scope,
                user="user",
                organization="organization",
                source="source",
                model="model",
            )
            if m["role"] == "assistant"
        ]

    def rating_per_day(self, period, scope):
        by_day = defaultdict(list)
        for r in self.feedback(period, scope):
            by_day[self.day(r["created_at"])].append(r["rating"])
        return [
            (d, len(by_day.get(d, [])), sum(by_day[d]) / len(by_day[d]) if by_day.get(d) else None)
            for d in period.each_day()
        ]

    def rating_by_model(self, period, scope):
        groups = defaultdict(list)
        for r in self.feedback(period, scope):
            groups[(r["model"], r["provider"])].append(r)
        rows = [
            {"model_name": m, "model_provider": p, **self._ratings(items)}
            for (m, p), items in groups.items()
        ]
        rows.sort(
            key=lambda r: (
                r["average"],
                -r["ratings"],
                r["model_name"] or "",
                r["model_provider"] or "",
            )
        )
        return rows

    def rating_by_agent(self, period, scope):
        given = self.feedback(period, scope)
        rows = []
        by_agent = defaultdict(list)
        for r in given:
            if r["agent_type"] is not None:
                by_agent[r["agent_type"]].append(r)
        rows += [
            {"agent": a, "known_from": "message agent", **self._ratings(items)}
            for a, items in by_agent.items()
        ]
        everything = Period(dt.date(2000, 1, 1), dt.date(2100, 1, 1))
        failing = [e for e in self.executions(everything, Scope()) if not e["ok"]]
        by_failed = defaultdict(dict)
        for r in given:
            for e in failing:
                if e["message_id"] == r["message_id"]:
                    for agent in agents_of(e) - {quality.NO_AGENT}:
                        by_failed[agent][r["id"]] = r
        rows += [
            {"agent": a, "known_from": "code failed", **self._ratings(list(items.values()))}
            for a, items in by_failed.items()
        ]
        rows.sort(key=lambda r: (r["average"], -r["ratings"], r["agent"], r["known_from"]))
        return rows

    def rating_by_band(self, period, scope, field, bands):
        rows = []
        given = self.feedback(period, scope)
        for label, test in bands:
            items = [r for r in given if test(r[field])]
            rows.append({"band": label, **self._ratings(items)})
        return rows

    def mistakes_per_day(self, period, scope):
        by_day = defaultdict(lambda: [0, 0])
        for m in self.mistake_rows(period, scope):
            by_day[self.day(m["created_at"])][0] += 1
            by_day[self.day(m["created_at"])][1] += m["mistake"]
        return [(d, *by_day.get(d, (0, 0))) for d in period.each_day()]

    def mistakes_by_model(self, period, scope):
        groups = defaultdict(list)
        for m in self.mistake_rows(period, scope):
            if m["model"] is not None:
                groups[m["model"]].append(m)
        rows = [
            {
                "model_name": model,
                "answers": len(items),
                "mistakes": sum(m["mistake"] for m in items),
                "share": sum(m["mistake"] for m in items) / len(items),
            }
            for model, items in groups.items()
        ]
        rows.sort(key=lambda r: (-r["mistakes"], r["model_name"]))
        return rows

    # -- activity ---------------------------------------------------------------------

    def user_messages(self, period, scope):
        return [m for m in self.messages(period, scope) if m["role"] == "user"]

    def activity_totals(self, period, scope):
        sessions = self.sessions(period, scope)
        lengths = [
            (s["end"] - s["start"]).total_seconds()
            for s in sessions
            if s["end"] is not None and s["end"] >= s["start"]
        ]
        return {
            "active_users": len({m["user"] for m in self.user_messages(period, scope)} - {None}),
            "new_users": len(self.app_users(period, scope)),
            "chats": len(self.chats(period, scope)),
            "messages": len(self.messages(period, scope)),
            "sessions": len(sessions),
            "session_length": sum(lengths) / len(lengths) if lengths else None,
        }

    def active_per_day(self, period, scope):
        by_day = defaultdict(set)
        for m in self.user_messages(period, scope):
            if m["user"] is not None:
                by_day[self.day(m["created_at"])].add(m["user"])
        return [(d, len(by_day.get(d, ()))) for d in period.each_day()]

    def active_by(self, period, scope, first_of):
        found = defaultdict(set)
        for m in self.user_messages(period, scope):
            if m["user"] is not None:
                found[first_of(self.day(m["created_at"]))].add(m["user"])
        firsts = sorted({first_of(d) for d in period.each_day()})
        return [(first, len(found.get(first, ()))) for first in firsts]

    def per_day_counts(self, rows, key, period):
        counts = defaultdict(int)
        for r in rows:
            counts[self.day(r[key])] += 1
        return [(d, counts.get(d, 0)) for d in period.each_day()]

    def sessions_per_day(self, period, scope):
        by_day = defaultdict(list)
        for s in self.sessions(period, scope):
            by_day[self.day(s["start"])].append(s)
        result = []
        for d in period.each_day():
            items = by_day.get(d, [])
            lengths = [
                (s["end"] - s["start"]).total_seconds()
                for s in items
                if s["end"] is not None and s["end"] >= s["start"]
            ]
            result.append((d, len(items), sum(lengths) / len(lengths) if lengths else None))
        return result

    def cohorts(self, period, scope):
        monday = lambda d: d - dt.timedelta(days=d.weekday())  # noqa: E731
        weeks = sorted({monday(d) for d in period.each_day() if monday(d) >= period.start})
        weeks = weeks[-quality.MAX_COHORT_WEEKS :]
        if not weeks:
            return 0, []
        span = Period(weeks[0], period.end)
        members = {u["id"]: monday(self.day(u["created_at"])) for u in self.app_users(span, scope)}
        active = defaultdict(set)
        everyone = Scope()
        for m in self.user_messages(span, everyone):
            if m["user"] in members:
                active[(members[m["user"]], monday(self.day(m["created_at"])))].add(m["user"])
        rows = []
        for index, cohort in enumerate(weeks):
            size = sum(1 for week in members.values() if week == cohort)
            row = {"cohort": cohort, "users": size}
            for k in range(len(weeks) - index):
                row[f"w{k}"] = ratio(
                    len(active.get((cohort, cohort + dt.timedelta(weeks=k)), ())), size
                )
            rows.append(row)
        return len(weeks), rows

    def usage_by(self, period, scope, key, labels, limit=None):
        activity = defaultdict(lambda: [set(), 0, set()])
        for c in self.chats(period, scope):
            activity[c[key]][0].add(c["id"])
        message_key = "source" if key == "source" else "organization"
        for m in self.messages(period, scope):
            activity[m[message_key]][1] += 1
            if m["role"] == "user" and m["user"] is not None:
                activity[m[message_key]][2].add(m["user"])
        usage = defaultdict(lambda: [0, 0])
        for u in self.ledger(period, scope):
            usage[u[key]][0] += 1
            usage[u[key]][1] += u["tokens"]
        rows = []
        for k in set(activity) | set(usage):
            chats, messages, users = activity.get(k, (set(), 0, set()))
            requests, tokens = usage.get(k, (0, 0))
            if chats or messages or requests:
                rows.append(
                    {
                        f"{key}_id": k,
                        "label": labels.get(k),
                        "chats": len(chats),
                        "messages": messages,
                        "active_users": len(users),
                        "requests": requests,
                        "tokens": tokens,
                    }
                )
        rows.sort(key=lambda r: (-r["messages"], -r["requests"], r["label"] or "~"))
        return rows[:limit] if limit else rows

    # -- text-to-SQL --------------------------------------------------------------------

    def query_totals(self, period, scope):
        rows = self.queries(period, scope)
        ok = sum(r["success"] is True for r in rows)
        failed = sum(r["success"] is False for r in rows)
        times = [r["time"] for r in rows if r["time"] is not None]
        counts = [r["rows"] for r in rows if r["rows"] is not None]
        return {
            "queries": len(rows),
            "succeeded": ok,
            "failed": failed,
            "average_time": sum(times) / len(times) if times else None,
            "rows": sum(counts) if counts else None,
            "average_rows": sum(counts) / len(counts) if counts else None,
            "success_rate": ratio(ok, ok + failed),
            "p95_time": percentile_cont(times),
        }

    def queries_per_day(self, period, scope):
        by_day = defaultdict(list)
        for r in self.queries(period, scope):
            by_day[self.day(r["timestamp"])].append(r)
        result = []
        for d in period.each_day():
            items = by_day.get(d, [])
            times = [r["time"] for r in items if r["time"] is not None]
            result.append(
                (
                    d,
                    len(items),
                    sum(r["success"] is True for r in items),
                    sum(r["success"] is False for r in items),
                    sum(times) / len(times) if times else None,
                )
            )
        return result

    def message_of(self, query_id):
        rows = _sql(
            "SELECT id, chat_id FROM chats_message WHERE query_id = %s ORDER BY created_at, id",
            [query_id],
        )
        return rows[0] if rows else (None, None)

    def frequent_errors(self, period, scope):
        groups = defaultdict(list)
        for r in self.queries(period, scope):
            if r["success"] is False:
                groups[r["error"] or None].append(r)
        rows = []
        for error, items in groups.items():
            latest = max(items, key=lambda r: (r["timestamp"], r["id"]))
            message_id, chat_id = self.message_of(latest["query_id"])
            rows.append(
                {
                    "error_message": error,
                    "queries": len(items),
                    "last": latest["timestamp"],
                    "query_id": latest["query_id"],
                    "message_id": message_id,
                    "chat_id": chat_id,
                }
            )
        rows.sort(
            key=lambda r: (-r["queries"], r["error_message"] is None, r["error_message"] or "")
        )
        return rows[:10]

    def slowest_queries(self, period, scope):
        rows = [r for r in self.queries(period, scope) if r["time"] is not None]
        rows.sort(key=lambda r: (-r["time"], -r["id"]))
        return [(r["id"], r["time"], *self.message_of(r["query_id"])) for r in rows[:10]]

    def rows_returned(self, period, scope):
        rows = self.queries(period, scope)
        found = []
        for label, test in ROW_TESTS:
            n = sum(1 for r in rows if test(r["rows"]))
            found.append({"band": label, "queries": n, "share": ratio(n, len(rows))})
        return found


def _band(low=None, high=None, exact=None, missing=False):
    """A test for a value in (low, high] (exact: equal; missing: NULL)."""

    def test(value):
        if missing:
            return value is None
        if value is None:
            return False
        if exact is not None:
            return value == exact
        return (low is None or value > low) and (high is None or value <= high)

    return test


TEMPERATURE_TESTS = [
    ("0", _band(exact=0)),
    ("0 – 0.3", _band(0, 0.3)),
    ("0.3 – 0.7", _band(0.3, 0.7)),
    ("above 0.7", _band(0.7)),
    ("not recorded", _band(missing=True)),
]
MAX_TOKENS_TESTS = [
    ("up to 1,000", _band(None, 1000)),
    ("1,000 – 2,000", _band(1000, 2000)),
    ("2,000 – 4,000", _band(2000, 4000)),
    ("4,000 – 8,000", _band(4000, 8000)),
    ("above 8,000", _band(8000)),
    ("not recorded", _band(missing=True)),
]
ROW_TESTS = [
    ("0 rows", _band(exact=0)),
    ("1 row", _band(exact=1)),
    ("2 to 10", _band(1, 10)),
    ("11 to 100", _band(10, 100)),
    ("101 to 1,000", _band(100, 1000)),
    ("more than 1,000", _band(1000)),
    ("not recorded", _band(missing=True)),
]


# -- the periods and scopes every figure is checked for -----------------------


def periods():
    presets = [Period.preset(name, today=TODAY) for name in ("today", "7d", "30d", "mtd")]
    return [
        *presets,
        Period(dt.date(2024, 3, 8), dt.date(2024, 3, 8)),  # nothing at all that day
        Period(dt.date(2024, 3, 9), dt.date(2024, 3, 10)),  # New York's short day
        Period(dt.date(2024, 3, 13), dt.date(2024, 3, 15)),
        Period(dt.date(2024, 2, 1), dt.date(2024, 3, 31)),
    ]


def scopes(data):
    return [
        Scope(),
        Scope(organization_id=data.acme.pk),
        Scope(organization_id=data.globex.pk),
        Scope(user_id=data.ann.pk),
        Scope(user_id=data.dan.pk),
        Scope(model_name="gpt-4o"),
        Scope(provider="anthropic"),
        Scope(source_id=data.aa.pk),
        Scope(source_id=data.tts.pk),
        Scope(organization_id=data.acme.pk, model_name="claude"),
    ]


def combinations(data):
    return [(period, scope) for period in periods() for scope in scopes(data)]


def approx_rows(rows):
    """Rows with their floats compared approximately."""
    return [
        {k: pytest.approx(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows
    ]


def approx_tuples(rows):
    return [tuple(pytest.approx(v) if isinstance(v, float) else v for v in row) for row in rows]


# -- code execution ----------------------------------------------------------------


def test_execution_figures_equal_plain_sql(world, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(world):
        where = (period, scope)
        assert quality.execution_totals(period, scope) == pytest.approx(
            raw.execution_totals(period, scope)
        ), where
        assert quality.success_per_day(period, scope) == approx_tuples(
            raw.success_per_day(period, scope)
        ), where
        assert quality.success_by_model(period, scope) == approx_rows(
            raw.success_by_model(period, scope)
        ), where
        assert quality.executions_per_chat(period, scope) == raw.executions_per_chat(
            period, scope
        ), where
        assert quality.busiest_chats(period, scope) == raw.busiest_chats(period, scope), where
        got = [(e.pk, e.run_time) for e in quality.slowest_executions(period, scope)]
        assert got == raw.slowest(period, scope), where
        got = [
            {k: row[k] for k in ("message_id", "runs", "changed", "failures", "last")}
            for row in quality.most_retried(period, scope)
        ]
        assert got == raw.most_retried(period, scope), where


def test_failures_by_error_type_and_agent_equal_python_parsing(world, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(world):
        where = (period, scope)
        assert quality.failures_by_error_type(period, scope) == raw.failures_by_error_type(
            period, scope
        ), where
        assert quality.failures_by_agent(period, scope) == approx_rows(
            raw.failures_by_agent(period, scope)
        ), where


def test_each_group_lists_exactly_its_executions(world, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(world):
        entries_ = raw.error_entries(period, scope)
        for row in quality.failures_by_error_type(period, scope):
            kind = row["error_type"]
            expected = sorted({r["id"] for r, _, k, _ in entries_ if k == kind}, reverse=True)
            got = list(
                quality.execution_list(period, scope, error_type=kind).values_list("id", flat=True)
            )
            assert sorted(got, reverse=True) == expected, (period, scope, kind)
            assert len(got) == row["executions"]
        failing = [r for r in raw.executions(period, scope) if not r["ok"]]
        for row in quality.failures_by_agent(period, scope):
            expected = {r["id"] for r in failing if row["agent"] in agents_of(r)}
            got = set(
                quality.execution_list(period, scope, agent=row["agent"]).values_list(
                    "id", flat=True
                )
            )
            assert got == expected, (period, scope, row["agent"])
        executions = raw.executions(period, scope)
        for outcome, expected in (
            ("failed", {r["id"] for r in executions if not r["ok"]}),
            ("succeeded", {r["id"] for r in executions if r["ok"]}),
            ("all", {r["id"] for r in executions}),
        ):
            got = set(quality.execution_list(period, scope, outcome).values_list("id", flat=True))
            assert got == expected, (period, scope, outcome)


def test_error_types_concrete(world, time_zone):
    month = Period(dt.date(2024, 2, 14), TODAY)
    got = {row["error_type"]: row for row in quality.failures_by_error_type(month, Scope())}

    # Two KeyErrors (one with trailing \r\n\n), in one execution each.
    assert got["KeyError"]["executions"] == 2
    assert got["KeyError"]["example"] == "KeyError: 'revenue'"
    # No colon: the whole last line is the type.
    assert got["Timeout after 30 seconds"]["executions"] == 1
    # A list of messages: each one, leading and trailing spaces trimmed.
    assert "ValueError" in got and "pandas.errors.ParserError" in got
    # A bare string; a class name before the first colon only.
    assert got["Error"]["example"] == "Error: something broke"
    # No message at all (None, {}), a null message in a map, an empty one.
    assert got[quality.NO_ERROR]["executions"] == 3  # e7 (NULL), e8 ({}), e9 (viz_agent: null)
    assert got["(empty message)"]["executions"] == 1  # e9's sql_agent: ""
    assert got["NameError"]["example"] == "NameError: name 'x' is not defined"
    # Most frequent first.
    assert list(got)[0] == quality.NO_ERROR
    errors = quality.execution_errors([world.a2.code_executions.order_by("id").first().pk])
    ((_, found),) = errors.items()
    assert sorted(found) == [
        ("data_viz_agent", "Timeout after 30 seconds", "Timeout after 30 seconds"),
        ("planner_preprocessing_agent", "KeyError", "KeyError: 'revenue'"),
    ]


def test_success_per_day_concrete(world, time_zone):
    three_days = Period(dt.date(2024, 3, 13), dt.date(2024, 3, 15))
    days = {d: (n, ok) for d, n, ok, _ in quality.success_per_day(three_days, Scope())}
    if time_zone == "UTC":
        # 13 Mar 23:59:59 (failed); 14 Mar 00:00:00, 00:00:01, 03:00, 04:00 (all failed).
        assert days[dt.date(2024, 3, 13)] == (1, 0)
        assert days[dt.date(2024, 3, 14)] == (4, 0)
        assert days[dt.date(2024, 3, 15)] == (1, 1)
    else:
        # In New York all but 04:00 UTC (midnight) and 15 Mar 02:00 are on 13 Mar.
        assert days[dt.date(2024, 3, 13)] == (4, 0)
        assert days[dt.date(2024, 3, 14)] == (2, 1)
        assert days[dt.date(2024, 3, 15)] == (0, 0)


# -- feedback and mistakes --------------------------------------------------------------


def test_feedback_figures_equal_plain_sql(world, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(world):
        where = (period, scope)
        assert quality.feedback_totals(period, scope) == pytest.approx(
            raw.feedback_totals(period, scope)
        ), where
        given = raw.feedback(period, scope)
        assert quality.rating_distribution(period, scope) == [
            (n, sum(r["rating"] == n for r in given)) for n in range(1, 6)
        ], where
        assert quality.rating_per_day(period, scope) == approx_tuples(
            raw.rating_per_day(period, scope)
        ), where
        assert quality.rating_by_model(period, scope) == approx_rows(
            raw.rating_by_model(period, scope)
        ), where
        assert quality.rating_by_agent(period, scope) == approx_rows(
            raw.rating_by_agent(period, scope)
        ), where
        assert quality.rating_by_temperature(period, scope) == approx_rows(
            raw.rating_by_band(period, scope, "temperature", TEMPERATURE_TESTS)
        ), where
        assert quality.rating_by_max_tokens(period, scope) == approx_rows(
            raw.rating_by_band(period, scope, "max_tokens", MAX_TOKENS_TESTS)
        ), where
        assert quality.mistakes_per_day(period, scope) == raw.mistakes_per_day(period, scope)
        assert quality.mistakes_by_model(period, scope) == approx_rows(
            raw.mistakes_by_model(period, scope)
        ), where


def test_feedback_concrete(world, time_zone):
    today = quality.feedback_totals(Period.preset("today", TODAY), Scope())
    agents = {
        (r["agent"], r["known_from"]): r
        for r in quality.rating_by_agent(Period(dt.date(2024, 3, 1), dt.date(2024, 3, 15)), Scope())
    }

    if time_zone == "UTC":
        # 14 Mar: 1 ★ at 00:00:00 and 2 ★ at 04:00; the unrated one does not count.
        assert (today["ratings"], today["average"]) == (2, 1.5)
        # Answers of 14 Mar: a3, a4 (rated? a4's feedback has no rating), n1 (1 ★).
        assert today["rated_share"] == pytest.approx(2 / 3)
    else:
        # 14 Mar in New York: 2 ★ at 04:00 UTC (midnight) and 1 ★ on 15 Mar 02:00 UTC.
        assert (today["ratings"], today["average"]) == (2, 1.5)
        # Answers: a4 (04:00 UTC, unrated) and d1 (15 Mar 02:00, rated 4 ★ in February).
        assert today["rated_share"] == pytest.approx(1 / 2)
    # The DS-ML agent's own agent type, and Auto-Analyst's failed agents.
    assert agents[("ml_analysis", "message agent")]["ratings"] == 2
    assert agents[("planner_preprocessing_agent", "code failed")]["average"] == 1
    assert agents[("viz_agent", "code failed")]["ratings"] == 1
    # A provider filter: messages store none, so no mistake figures.
    assert quality.mistakes_by_model(Period.preset("30d", TODAY), Scope(provider="openai")) == []


# -- activity ---------------------------------------------------------------------------


def test_activity_figures_equal_plain_sql(world, time_zone):
    raw = Raw(time_zone)
    organizations = {world.acme.pk: "Acme", world.globex.pk: "Globex", None: "no organisation"}
    sources = {s.pk: f"{s.name} ({s.kind})" for s in (world.aa, world.ds, world.tts)}
    sources[None] = "created here (no source)"

    def monday(day):
        return day - dt.timedelta(days=day.weekday())

    for period, scope in combinations(world):
        if scope.model_name or scope.provider:
            continue  # the activity page has no model or provider filter
        where = (period, scope)
        assert quality.activity_totals(period, scope) == pytest.approx(
            raw.activity_totals(period, scope)
        ), where
        assert quality.active_users_per_day(period, scope) == raw.active_per_day(period, scope)
        weeks = quality.active_users_per_week(period, scope)
        assert [(w, n) for w, n, _ in weeks] == raw.active_by(period, scope, monday), where
        assert sum(days for *_, days in weeks) == period.days
        months = quality.active_users_per_month(period, scope)
        assert [(m, n) for m, n, _, _ in months] == raw.active_by(
            period, scope, lambda d: d.replace(day=1)
        ), where
        assert quality.new_users_per_day(period, scope) == raw.per_day_counts(
            raw.app_users(period, scope), "created_at", period
        ), where
        chats = raw.per_day_counts(raw.chats(period, scope), "created_at", period)
        messages = raw.per_day_counts(raw.messages(period, scope), "created_at", period)
        assert quality.chats_and_messages_per_day(period, scope) == [
            (d, c, m) for (d, c), (_, m) in zip(chats, messages, strict=True)
        ], where
        assert quality.sessions_per_day(period, scope) == approx_tuples(
            raw.sessions_per_day(period, scope)
        ), where
        assert quality.cohorts(period, scope) == raw.cohorts(period, scope), where
        assert quality.usage_by_source(period, scope) == raw.usage_by(
            period, scope, "source", sources
        ), where
        assert quality.usage_by_organization(period, scope) == raw.usage_by(
            period, scope, "organization", organizations, limit=20
        ), where


def test_activity_concrete(world, time_zone):
    week = Period(dt.date(2024, 3, 4), dt.date(2024, 3, 17))
    columns, rows = quality.cohorts(week, Scope())
    day = dict(quality.active_users_per_day(Period(dt.date(2024, 3, 13), TODAY), Scope()))

    assert columns == 2
    if time_zone == "UTC":
        # ann signs up Monday 4 Mar and writes that week and the next; bob
        # signs up Monday 11 Mar; eve never writes.
        assert rows == [
            {"cohort": dt.date(2024, 3, 4), "users": 1, "w0": 1.0, "w1": 1.0},
            {"cohort": dt.date(2024, 3, 11), "users": 3, "w0": pytest.approx(2 / 3)},
        ]
        assert day == {dt.date(2024, 3, 13): 1, dt.date(2024, 3, 14): 2}  # ann; ann and dan
    else:
        # ann (Sunday 3 Mar) is before the period; bob signs up Sunday 10 Mar
        # (week of 4 Mar) and writes that evening and the next week; dan signs
        # up 13 Mar and writes that day; eve never writes.
        assert rows == [
            {"cohort": dt.date(2024, 3, 4), "users": 1, "w0": 1.0, "w1": 1.0},
            {"cohort": dt.date(2024, 3, 11), "users": 2, "w0": 0.5},
        ]
        assert day == {dt.date(2024, 3, 13): 2, dt.date(2024, 3, 14): 0}
    totals = quality.activity_totals(Period(dt.date(2024, 3, 13), dt.date(2024, 3, 15)), Scope())
    # ann's 90 s and dan's 45 s; the open one and dan's backwards one have no length.
    assert totals["session_length"] == (90 + 45) / 2


# -- text-to-SQL --------------------------------------------------------------------------


def test_query_figures_equal_plain_sql(world, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(world):
        where = (period, scope)
        assert quality.query_totals(period, scope) == pytest.approx(
            raw.query_totals(period, scope)
        ), where
        assert quality.queries_per_day(period, scope) == approx_tuples(
            raw.queries_per_day(period, scope)
        ), where
        keys = ("error_message", "queries", "last", "query_id", "message_id", "chat_id")
        got = [{k: r[k] for k in keys} for r in quality.frequent_errors(period, scope)]
        assert got == raw.frequent_errors(period, scope), where
        got = [
            (q.pk, q.execution_time, q.message_id, q.chat_id)
            for q in quality.slowest_queries(period, scope)
        ]
        assert got == raw.slowest_queries(period, scope), where
        assert quality.rows_returned(period, scope) == approx_rows(
            raw.rows_returned(period, scope)
        ), where


def test_p95_is_percentile_cont_on_both_databases(world, time_zone):
    month = Period(dt.date(2024, 2, 14), TODAY)
    totals = quality.query_totals(month, Scope())

    # Times of the 30 days (seconds): 0.01 0.2 0.3 0.5 0.7 1.0 1.5 2.0 30.0
    # (15 Mar 02:00 UTC, 3.0 s, is in them only in New York); NULL left out.
    times = [0.01, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 30.0]
    if time_zone != "UTC":
        times.append(3.0)
    assert totals["p95_time"] == pytest.approx(percentile_cont(times))
    if time_zone == "UTC":
        # position 0.95 × 8 = 7.6: 2.0 + 0.6 × (30.0 − 2.0)
        assert totals["p95_time"] == pytest.approx(18.8)
    for n in range(0, 4):
        values = QueryAnalytics.objects.filter(execution_time__isnull=False).order_by("id")[:n]
        found = QueryAnalytics.objects.filter(pk__in=[q.pk for q in values])
        expected = percentile_cont([q.execution_time for q in values])
        assert quality.percentile_cont(found, "execution_time") == pytest.approx(expected)


def test_query_errors_link_the_latest_query_to_its_transcript(world, time_zone):
    errors = quality.frequent_errors(Period(dt.date(2024, 3, 13), TODAY), Scope())

    relation = errors[0]
    assert (relation["error_message"], relation["queries"]) == (
        'relation "sales" does not exist',
        2,
    )
    # The latest is the anonymous API query (no chat message): no transcript.
    assert (relation["query_id"], relation["message_id"]) == ("q3", None)
    slowest = quality.slowest_queries(Period(dt.date(2024, 3, 13), TODAY), Scope())
    linked = {q.query_id: q.message_id for q in slowest}
    assert linked["q-dan-1"] == Message.objects.get(query_id="q-dan-1").pk


# -- headlines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headline, totals",
    [
        (quality.execution_headline, quality.execution_totals),
        (quality.feedback_headline, quality.feedback_totals),
        (quality.activity_headline, quality.activity_totals),
        (quality.query_headline, quality.query_totals),
    ],
)
def test_headlines_compare_with_the_period_before(world, time_zone, headline, totals):
    for period in periods():
        now, before = totals(period, Scope()), totals(period.previous(), Scope())
        for figure in headline(period, Scope()):
            assert (figure.value, figure.previous) == (now[figure.key], before[figure.key])
            if figure.value is None or not figure.previous:
                assert figure.change is None
            else:
                expected = (float(figure.value) - float(figure.previous)) / float(figure.previous)
                assert figure.change == pytest.approx(expected)
