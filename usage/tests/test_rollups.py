"""The daily roll-up equals a plain-SQL GROUP BY over the raw ledger."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection

from core.tests.factories import AppUserFactory, ModelUsageFactory, OrganizationFactory
from usage import ledger
from usage.models import DailyLatency, DailyUsage, ModelUsage

pytestmark = pytest.mark.django_db

UTC = dt.UTC
CENT_MILLIONTHS = Decimal("0.00000001")


def _at(*args):
    return dt.datetime(*args, tzinfo=UTC)


def _money(value):
    # SQLite sums DECIMAL columns as floats, PostgreSQL as numeric; NULL sum is 0.
    return Decimal(str(value or 0)).quantize(CENT_MILLIONTHS)


@pytest.fixture
def awkward_ledger():
    """Ledger rows that trip roll-ups: NULL and zero cost, anonymous callers,
    10**9 tokens, and the last and first second of a UTC day."""
    org = OrganizationFactory()
    ann, bob = AppUserFactory(organization=org), AppUserFactory()
    gpt = {"model_name": "gpt-4o", "provider": "openai"}
    claude = {"model_name": "claude-3-5-sonnet", "provider": "anthropic"}
    llama = {"model_name": "llama-3-70b", "provider": "groq"}
    rows = [
        ModelUsageFactory(
            user=ann, timestamp=_at(2024, 3, 1, 23, 59, 59), cost=Decimal("0.5"), **gpt
        ),
        ModelUsageFactory(
            user=ann, timestamp=_at(2024, 3, 2, 0, 0, 0), cost=Decimal("0.25"), **gpt
        ),
        ModelUsageFactory(user=None, timestamp=_at(2024, 3, 1, 12), cost=None, **gpt),
        ModelUsageFactory(user=None, timestamp=_at(2024, 3, 1, 13), cost=Decimal("0"), **gpt),
        ModelUsageFactory(
            user=bob,
            timestamp=_at(2024, 3, 1, 10),
            prompt_tokens=6 * 10**8,
            completion_tokens=4 * 10**8,
            total_tokens=10**9,
            cost=Decimal("99999.12345678"),
            request_time_ms=125_000,
            **claude,
        ),
        ModelUsageFactory(user=bob, timestamp=_at(2024, 3, 2, 8), cost=None, **claude),
        # A model whose every row is unpriced: SQL SUM(cost) is NULL.
        ModelUsageFactory(user=bob, timestamp=_at(2024, 3, 2, 9), cost=None, **llama),
        ModelUsageFactory(
            user=None, timestamp=_at(2024, 3, 2, 9), cost=None, request_time_ms=None, **llama
        ),
    ]
    return rows


def _ledger_by_model_sql():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT model_name, provider, COUNT(*), SUM(prompt_tokens),
                   SUM(completion_tokens), SUM(total_tokens), SUM(cost),
                   COUNT(*) - COUNT(cost)
            FROM usage_modelusage
            GROUP BY model_name, provider
            ORDER BY model_name, provider
            """
        )
        return [(*row[:6], _money(row[6]), row[7]) for row in cursor.fetchall()]


def _rollup_by_model_sql():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT model_name, provider, SUM(requests), SUM(prompt_tokens),
                   SUM(completion_tokens), SUM(total_tokens), SUM(cost),
                   SUM(unpriced_requests)
            FROM usage_dailyusage
            GROUP BY model_name, provider
            ORDER BY model_name, provider
            """
        )
        return [(*row[:6], _money(row[6]), row[7]) for row in cursor.fetchall()]


def _days(**filters):
    rows = DailyUsage.objects.filter(**filters).order_by("day")
    return [(row.day, row.requests) for row in rows]


def test_rebuild_equals_plain_sql_group_by_per_model(settings, awkward_ledger):
    settings.TIME_ZONE = "UTC"

    written = ledger.rebuild()["DailyUsage"]

    assert _rollup_by_model_sql() == _ledger_by_model_sql()
    assert _ledger_by_model_sql() == [
        (
            "claude-3-5-sonnet",
            "anthropic",
            2,
            6 * 10**8 + 1000,
            4 * 10**8 + 500,
            10**9 + 1500,
            Decimal("99999.12345678"),
            1,
        ),
        ("gpt-4o", "openai", 4, 4000, 2000, 6000, Decimal("0.75"), 1),
        ("llama-3-70b", "groq", 2, 2000, 1000, 3000, Decimal("0E-8"), 2),
    ]
    # (day, model, provider, user, organization, source) keys in the data.
    assert written == DailyUsage.objects.count() == 7


def test_rebuild_per_user_equals_plain_sql_with_anonymous_rows(settings, awkward_ledger):
    settings.TIME_ZONE = "UTC"

    ledger.rebuild()

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT model_name, user_id, COUNT(*), SUM(total_tokens), SUM(cost)
            FROM usage_modelusage GROUP BY model_name, user_id
            """
        )
        from_ledger = {(m, u): (n, t, _money(c)) for m, u, n, t, c in cursor.fetchall()}
        cursor.execute(
            """
            SELECT model_name, user_id, SUM(requests), SUM(total_tokens), SUM(cost)
            FROM usage_dailyusage GROUP BY model_name, user_id
            """
        )
        from_rollup = {(m, u): (n, t, _money(c)) for m, u, n, t, c in cursor.fetchall()}

    assert from_rollup == from_ledger
    # Two anonymous gpt-4o calls: one unpriced, one free.
    assert from_ledger[("gpt-4o", None)] == (2, 3000, Decimal("0E-8"))
    anonymous = DailyUsage.objects.get(model_name="gpt-4o", user=None)
    assert (anonymous.requests, anonymous.unpriced_requests) == (2, 1)


def test_rebuild_cuts_days_at_utc_midnight(settings, awkward_ledger):
    settings.TIME_ZONE = "UTC"
    ann = awkward_ledger[0].user

    ledger.rebuild()

    # 23:59:59 stays on 1 March, 00:00:00 starts 2 March.
    assert _days(user=ann, model_name="gpt-4o") == [
        (dt.date(2024, 3, 1), 1),
        (dt.date(2024, 3, 2), 1),
    ]
    ann_days = DailyUsage.objects.filter(user=ann).order_by("day")
    assert [row.cost for row in ann_days] == [Decimal("0.5"), Decimal("0.25")]
    assert {row.organization_id for row in ann_days} == {ann.organization_id}


def test_rebuild_in_new_york_puts_0300_utc_on_previous_local_day(settings):
    settings.TIME_ZONE = "America/New_York"
    user = AppUserFactory()
    # New York is UTC-5 in early March 2024 (DST starts on 10 March).
    ModelUsageFactory(user=user, timestamp=_at(2024, 3, 2, 3, 0, 0))  # 1 Mar 22:00 local
    ModelUsageFactory(user=user, timestamp=_at(2024, 3, 2, 4, 59, 59))  # 1 Mar 23:59:59
    ModelUsageFactory(user=user, timestamp=_at(2024, 3, 2, 5, 0, 0))  # 2 Mar 00:00 local

    ledger.rebuild()

    assert _days(user=user) == [(dt.date(2024, 3, 1), 2), (dt.date(2024, 3, 2), 1)]


def test_rebuild_latency_histogram_counts_timed_rows(settings, awkward_ledger):
    settings.TIME_ZONE = "UTC"

    ledger.rebuild()

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT model_name, COUNT(request_time_ms) FROM usage_modelusage "
            "GROUP BY model_name ORDER BY model_name"
        )
        timed = cursor.fetchall()
        cursor.execute(
            "SELECT model_name, SUM(requests) FROM usage_dailylatency "
            "GROUP BY model_name ORDER BY model_name"
        )
        histogram = cursor.fetchall()
    assert histogram == timed == [("claude-3-5-sonnet", 2), ("gpt-4o", 4), ("llama-3-70b", 1)]
    # 125 s is beyond the last bound (120 s): the open last bucket.
    slow = DailyLatency.objects.get(model_name="claude-3-5-sonnet", day=dt.date(2024, 3, 1))
    assert (slow.bucket, slow.requests) == (18, 1)


def test_rebuild_replaces_previous_rollup(settings, awkward_ledger):
    settings.TIME_ZONE = "UTC"
    ledger.rebuild()
    with ledger.unchecked():  # rows gone behind the roll-ups' back: a repair's case
        ModelUsage.objects.filter(model_name="llama-3-70b").delete()

    ledger.rebuild()

    assert not DailyUsage.objects.filter(model_name="llama-3-70b").exists()
    assert _rollup_by_model_sql() == _ledger_by_model_sql()


def test_rows_added_through_ledger_keep_rollup_equal_to_rebuild(settings):
    settings.TIME_ZONE = "UTC"
    user = AppUserFactory(organization=OrganizationFactory())
    for hour in (22, 23):
        ledger.add_usage(
            [
                ModelUsage(
                    user=user,
                    model_name="gpt-4o",
                    provider="openai",
                    prompt_tokens=100 * hour,
                    completion_tokens=10,
                    cost=Decimal("0.01"),
                    timestamp=_at(2024, 3, 1, hour),
                    request_time_ms=400,
                )
            ]
        )
    incremental = _rollup_by_model_sql()

    ledger.rebuild()

    assert incremental == _rollup_by_model_sql() == _ledger_by_model_sql()
    assert incremental == [("gpt-4o", "openai", 2, 4500, 20, 4520, Decimal("0.02"), 0)]
