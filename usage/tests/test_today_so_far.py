"""Today so far against the same hours of yesterday (#18): the overview's
"Today" compares with yesterday up to the same local time, read from the
raw ledger (the roll-ups hold whole days), checked against plain SQL in two
zones; longer periods that end today say their last day is so far."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.urls import reverse

from core.pages.period import PartialPeriod
from core.tests import factories as f
from usage import ledger, metrics
from usage.metrics import Period, Scope
from usage.templatetags.figures import change, figure

from .conftest import TODAY, _usage
from .test_dashboards import ADMIN_REQUEST, expected_figures, figures_of, get_page
from .test_metrics import COST_SUM, assert_same_bucket, cost_sum, nearest_rank

pytestmark = pytest.mark.django_db

ZONES = ["UTC", "America/New_York"]
YESTERDAY = TODAY - dt.timedelta(days=1)


@pytest.fixture
def now(time_zone, monkeypatch):
    """12:30 local time on TODAY, as timezone.now() answers it."""
    instant = dt.datetime.combine(TODAY, dt.time(12, 30), ZoneInfo(time_zone)).astimezone(dt.UTC)
    monkeypatch.setattr("django.utils.timezone.now", lambda: instant)
    return instant


@pytest.fixture
def yesterday_rows(awkward, time_zone):
    """Calls of yesterday on both sides of 12:30 local, at the day's first
    instant, a second before and at 12:30: anonymous, unpriced, zero cost,
    another organisation's, streaming, untimed."""
    zone = ZoneInfo(time_zone)
    gpt, claude, llama = (
        ("gpt-4o", "openai"),
        ("claude-3-5-sonnet", "anthropic"),
        (
            "llama-3-70b",
            "groq",
        ),
    )

    def at(hour, minute=0, second=0):
        return dt.datetime.combine(YESTERDAY, dt.time(hour, minute, second), zone).astimezone(
            dt.UTC
        )

    source = f.SourceFactory(name="so-far", kind="api")
    rows = [
        _usage(901, at(0), awkward.ann, gpt, 1000, 200, "0.0123", True, 700, source),
        _usage(902, at(8, 15), None, claude, 5000, 900, None, False, 2400, source),
        _usage(903, at(9), awkward.cat, llama, 300, 30, None, False, None, source),
        _usage(904, at(12, 29, 59), awkward.dan, gpt, 10**8, 10**7, "0", True, 9000, source),
        _usage(905, at(12, 30), awkward.bob, gpt, 777, 77, "1.5", False, 300, source),
        _usage(906, at(22), awkward.ann, claude, 9000, 900, "25.25", False, 1500, source),
    ]
    ledger.add_usage(rows)
    return rows


def raw_window(start, end):
    """The headline's figures of ledger rows in [start, end), in SQL."""
    adapt = connection.ops.adapt_datetimefield_value
    params = [adapt(start), adapt(end)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT COUNT(*), SUM(u.prompt_tokens), SUM(u.completion_tokens),
                   SUM(u.total_tokens), {COST_SUM}, COUNT(DISTINCT u.user_id),
                   SUM(CASE WHEN u.is_streaming THEN 1 ELSE 0 END),
                   COUNT(u.request_time_ms), SUM(u.request_time_ms)
            FROM usage_modelusage u WHERE u.timestamp >= %s AND u.timestamp < %s""",
            params,
        )
        n, prompt, completion, tokens, total, users, streaming, timed, ms = cursor.fetchone()
        cursor.execute(
            "SELECT u.request_time_ms FROM usage_modelusage u WHERE u.timestamp >= %s "
            "AND u.timestamp < %s AND u.request_time_ms IS NOT NULL",
            params,
        )
        times = [value for (value,) in cursor.fetchall()]
    total = cost_sum(total)
    return {
        "requests": n,
        "prompt_tokens": prompt or 0,
        "completion_tokens": completion or 0,
        "cost": total,
        "active_users": users,
        "cost_per_1k_tokens": total * 1000 / tokens if tokens and total is not None else None,
        "avg_latency_ms": ms / timed if timed else None,
        "streaming_share": streaming / n if n else None,
        "p95": nearest_rank(times),
    }


@pytest.mark.parametrize("time_zone", ZONES, indirect=True)
def test_today_is_compared_with_yesterday_up_to_the_same_local_time(
    time_zone, fixed_today, now, yesterday_rows
):
    zone = ZoneInfo(time_zone)
    today = Period(TODAY, TODAY)
    before, note = metrics.compared_with(today, now)
    start = dt.datetime.combine(YESTERDAY, dt.time(), zone)
    until = dt.datetime.combine(YESTERDAY, dt.time(12, 30), zone)
    assert isinstance(before, PartialPeriod)
    assert before.local_bounds() == (start, until)
    assert note == "Today so far, compared with yesterday until 12:30."

    expected = raw_window(start, until)
    # the day's first instant and 12:29:59 are in, 12:30:00 and later are not
    assert expected["requests"] >= 4
    assert raw_window(start, start + dt.timedelta(days=1))["requests"] > expected["requests"]
    found = {f.key: f for f in metrics.headline(today, Scope(), now)}
    for key in (
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "active_users",
        "avg_latency_ms",
        "streaming_share",
    ):
        assert found[key].previous == pytest.approx(expected[key]), key
    assert found["cost_per_1k_tokens"].previous == pytest.approx(expected["cost_per_1k_tokens"])
    assert_same_bucket(found["p95_latency_ms"].previous, expected["p95"], "p95")
    # Today itself: the whole local day of the roll-ups, as before.
    assert found["requests"].value == metrics.totals(today, Scope())["requests"]


@pytest.mark.parametrize("time_zone", ZONES, indirect=True)
def test_a_scope_narrows_yesterday_s_hours_too(time_zone, fixed_today, now, yesterday_rows):
    scope = Scope(model_name="gpt-4o", provider="openai")
    found = {f.key: f.previous for f in metrics.headline(Period(TODAY, TODAY), scope, now)}
    zone = ZoneInfo(time_zone)
    start = dt.datetime.combine(YESTERDAY, dt.time(), zone)
    until = dt.datetime.combine(YESTERDAY, dt.time(12, 30), zone)
    rows = [
        r
        for r in yesterday_rows
        if r.model_name == "gpt-4o" and r.provider == "openai" and start <= r.timestamp < until
    ]
    # rows of the awkward ledger in the window count too
    extra = list(
        metrics.ModelUsage.objects.filter(
            timestamp__gte=start, timestamp__lt=until, model_name="gpt-4o", provider="openai"
        ).exclude(source__name="so-far")
    )
    assert found["requests"] == len(rows) + len(extra)
    assert found["cost"] == sum((r.cost or Decimal(0) for r in rows + extra), Decimal(0))


def test_the_overview_s_today_shows_the_same_hours_and_says_so(
    client, manager, fixed_today, now, yesterday_rows, django_assert_num_queries
):
    client.force_login(manager)
    with django_assert_num_queries(ADMIN_REQUEST + 21):
        # as many queries as any period: yesterday's sums, active users and
        # latency histogram come from the ledger instead of the roll-ups
        page = get_page(client, reverse("dashboards:overview"), period="today")
    assert "Today so far, compared with yesterday until 12:30." in page
    figures = figures_of(page)
    assert figures == expected_figures_at(now)
    start = dt.datetime.combine(YESTERDAY, dt.time(), dt.UTC)
    assert figures["requests"][1].endswith(
        f"vs {raw_window(start, start.replace(hour=12, minute=30))['requests']:,}"
    )


def expected_figures_at(now):
    return {
        f.key: (
            figure(f.value, f.kind),
            f"{change(f.change)} vs {figure(f.previous, f.kind)}"
            if f.change is not None
            else "no earlier figure",
        )
        for f in metrics.headline(Period(TODAY, TODAY), Scope(), now)
    }


def test_longer_periods_ending_today_say_today_is_so_far(client, manager, awkward, fixed_today):
    client.force_login(manager)
    page = get_page(client, reverse("dashboards:overview"), period="7d")
    assert "The last day, today, is so far; changes compare with the 7 whole days before." in page
    # unchanged: the 7 whole days before
    assert figures_of(page) == expected_figures(
        Period(TODAY - dt.timedelta(days=6), TODAY), Scope()
    )
    page = get_page(
        client,
        reverse("dashboards:overview"),
        period="custom",
        start="2024-03-01",
        end="2024-03-07",
    )
    assert 'id="figures-note"' not in page
    page = get_page(client, reverse("quality:code"), period="today")
    assert "Today so far, compared with the whole of yesterday." in page
