"""Drill-down (#18): one model's page, the rows behind a day, and the links
from the ledger to the chats and their transcripts.

The model page's figures equal plain SQL over the raw ledger on the awkward
data; its tables add up to its totals; each day's drill URL answers exactly
the ledger rows of that local day and scope; and a manager goes from the
overview to a transcript by following links alone.
"""

import datetime as dt
import html
import re
from collections import defaultdict
from decimal import Decimal

import pytest
from django.urls import reverse

from core.tests import factories as f
from usage import drill, ledger, metrics
from usage.metrics import LedgerReader, Period, Scope
from usage.models import ModelUsage

from .conftest import TODAY, _usage, utc
from .test_dashboards import chart_of, expected_figures, figures_of, get_page, tables_of
from .test_metrics import Raw, _sql, assert_same_bucket, cost, money

pytestmark = pytest.mark.django_db

# A model name with a slash, dots and a colon, as OpenRouter-style names are.
ODD = ("openai/gpt-4o:2024-08-06", "openrouter")
PERIODS = [
    Period(dt.date(2024, 3, 8), TODAY),  # 7 days across New York's clock change
    Period(TODAY, TODAY),  # the 23:59:59 / 00:00:00 edge
    Period(dt.date(2024, 2, 1), dt.date(2024, 3, 31)),  # whole months
]
MODELS = [("gpt-4o", "openai"), ("gpt-4o", "azure"), ("claude-3-5-sonnet", "anthropic"),
          ("llama-3-70b", "groq"), ("mistral-large", "mistral"), ODD]  # fmt: skip


@pytest.fixture(params=["UTC", "America/New_York"])
def time_zone(request, settings):
    settings.TIME_ZONE = request.param
    return request.param


@pytest.fixture
def data(awkward):
    """The awkward ledger and calls of ODD: a zero cost, a huge cost, an
    anonymous call without an organisation, midnight edges."""
    rows = [
        _usage(60, utc(2024, 3, 13, 23, 59, 59), awkward.ann, ODD, 10, 5, "0", False, 10, None),
        _usage(
            61,
            utc(2024, 3, 14, 0, 0, 0),
            None,
            ODD,
            7,
            3,
            "99999.12345678",
            True,
            None,
            None,
            awkward.chat_anon,
        ),  # fmt: skip
        _usage(62, utc(2024, 3, 14, 4), None, ODD, 1, 1, "0.00000001", False, 5000, None),
        _usage(63, utc(2024, 3, 9, 12), awkward.dan, ODD, 5, 5, None, False, 700, awkward.aa),
    ]
    ledger.add_usage(rows)
    return awkward


def model_scope(model):
    return Scope(model_name=model[0], provider=model[1])


def raw_users(zone, period, scope, column):
    """{id or None: (cost, tokens, requests)} per ``column`` from raw rows."""
    found = defaultdict(lambda: [Decimal(0), 0, 0])
    for _ts, key, value, tokens in Raw(zone).raw_rows(
        period, scope, column, "cost", "total_tokens"
    ):
        row = found[key]
        row[0] += cost(value)
        row[1] += tokens
        row[2] += 1
    return {key: tuple(row) for key, row in found.items()}


def as_dict(rows, key):
    return {row[key]: (money(row["cost"]), row["tokens"], row["requests"]) for row in rows}


# -- the figures against plain SQL ----------------------------------------------


def test_model_figures_equal_plain_sql(data, time_zone):
    raw = Raw(time_zone)
    for period in PERIODS:
        for model in MODELS:
            scope = model_scope(model)
            where = (period, model)
            # per day: cost, requests, tokens and unpriced calls
            expected = defaultdict(lambda: [Decimal(0), 0, 0, 0])
            for ts, value, tokens in raw.raw_rows(period, scope, "cost", "total_tokens"):
                day = expected[raw.local_day(ts)]
                day[0] += cost(value)
                day[1] += 1
                day[2] += tokens
                day[3] += value is None
            got = metrics.per_day(period, scope)
            assert [d for d, *_ in got] == period.each_day(), where
            for day, day_cost, requests, tokens, unpriced in got:
                assert (money(day_cost), requests, tokens, unpriced) == tuple(
                    expected.get(day, (Decimal(0), 0, 0, 0))
                ), (where, day)
            # users and organisations, every one (no "others" row at this size)
            users = metrics.users_of(period, scope, 100)
            assert as_dict(users, "user_id") == raw_users(time_zone, period, scope, "user_id")
            orgs = metrics.organizations_of(period, scope, 100)
            assert as_dict(orgs, "organization_id") == raw_users(
                time_zone, period, scope, "organization_id"
            ), where
            # latency, rating, code success, flagged mistakes: the models table's
            summary = metrics.model_summary(period, scope)
            (exact,) = raw.models_table(period, scope) or [None]
            if exact is None:
                assert summary is None, where
                continue
            for key in ("requests", "prompt_tokens", "completion_tokens", "avg_latency_ms",
                        "avg_rating", "code_success_rate", "mistake_share"):  # fmt: skip
                assert summary[key] == exact[key], (where, key)
            assert money(summary["cost"]) == exact["cost"], where
            assert_same_bucket(summary["p95_latency_ms"], exact["p95_exact_ms"], where)


def test_the_rows_add_up_with_others_anonymous_and_no_organisation(data, time_zone):
    period = PERIODS[2]
    for model in MODELS:
        scope = model_scope(model)
        total = metrics.totals(period, scope)
        for rows in (
            metrics.users_of(period, scope, 1),
            metrics.organizations_of(period, scope, 1),
        ):
            assert sum(r["cost"] for r in rows) == total["cost"], model
            assert sum(r["requests"] for r in rows) == total["requests"], model
            assert sum(r["tokens"] for r in rows) == total["total_tokens"], model
    # ann and dan cost $0 each (a zero cost, an unpriced call): ann's lower id first
    labels = [r["label"] for r in metrics.users_of(period, model_scope(ODD), 1)]
    assert labels == ["ann@acme.test", "1 other app user", "Anonymous"]
    # the anonymous call in Globex's chat is Globex's; the one without a chat has none
    orgs = [r["label"] for r in metrics.organizations_of(period, model_scope(ODD), 10)]
    assert orgs == ["Globex", "Acme", "No organisation"]


def test_the_roll_ups_and_the_ledger_reader_agree(data, time_zone):
    for model in MODELS:
        scope = model_scope(model)
        now = (metrics.per_day(PERIODS[0], scope), metrics.users_of(PERIODS[0], scope))
        with metrics.reading_from(LedgerReader()):
            assert (metrics.per_day(PERIODS[0], scope), metrics.users_of(PERIODS[0], scope)) == now


# -- the page --------------------------------------------------------------------


def model_url(model):
    return reverse("dashboards:model", args=[model[1], model[0]])


@pytest.fixture
def as_manager(client, manager, data, fixed_today):
    client.force_login(manager)
    return client


def test_an_odd_model_name_has_a_page_of_its_figures(as_manager, data):
    url = model_url(ODD)
    assert url == "/admin/dashboards/models/openrouter/openai/gpt-4o:2024-08-06/"
    page = get_page(as_manager, url, period="7d")
    period, scope = Period(dt.date(2024, 3, 8), TODAY), model_scope(ODD)
    assert figures_of(page) == expected_figures(period, scope)
    assert figures_of(page)["cost"][0] == "$99,999.12"
    tables = tables_of(page)
    assert [row[0] for row in tables["users"]] == ["ann@acme.test", "dan@solo.test", "Anonymous"]
    assert [row[0] for row in tables["organizations"]] == ["Globex", "Acme", "No organisation"]
    # each day with calls is a link to its ledger rows
    days = [d for d, _c, n, *_ in metrics.per_day(period, scope) if n]
    links = re.findall(r'href="(/admin/usage/modelusage/\?[^"]+)"', page)
    assert [html.unescape(u) for u in links] == [
        drill.ledger_url(day, scope) for day in reversed(days)
    ]
    assert f'data-drill="{html.escape(drill.ledger_url(drill.DAY, scope))}"' in page
    # unknown models are a 404, not an empty page
    assert as_manager.get(model_url(("no-such-model", "openai"))).status_code == 404


def test_the_models_table_links_each_row_to_its_page_keeping_the_filters(as_manager, data):
    page = get_page(as_manager, reverse("dashboards:models"), period="90d", source=data.aa.pk)
    query = html.escape(f"period=90d&source={data.aa.pk}")
    for row in metrics.models_table(Period.preset("90d"), Scope(source_id=data.aa.pk)):
        assert f'href="{model_url((row["model_name"], row["provider"]))}?{query}"' in page


def test_model_page_query_count(as_manager, data, django_assert_num_queries):
    # admin request (4); the model exists (1); filter choices (0: no model or
    # provider field) and selects (2); headline now and before (6); summary:
    # sums, histogram, ratings, executions, mistakes (5); per day (1, the
    # chart's and the table's); users and names (2); organisations and names
    # (2); providers (1); the models the roll-up knows, whose order gives the
    # model its colour (1: the filter bar, which reads them on the other
    # pages, has no model field here); the unpriced calls for the warning (1,
    # through the partial index of unpriced rows).
    with django_assert_num_queries(26):
        assert as_manager.get(model_url(ODD), {"period": "90d"}).status_code == 200


def test_staff_get_403_and_managers_200(client, staff, manager, data, fixed_today):
    client.force_login(staff)
    assert client.get(model_url(ODD)).status_code == 403
    client.force_login(manager)
    assert client.get(model_url(ODD)).status_code == 200


# -- the rows behind a day --------------------------------------------------------

LEDGER_ROW = re.compile(r'href="/admin/usage/modelusage/(\d+)/change/')
CHAT_ROW = re.compile(r'href="/admin/chats/chat/(\d+)/change/')


def raw_ids(zone, day, scope):
    raw = Raw(zone)
    where, params = raw.where(Period(day, day), scope)
    return {pk for (pk,) in _sql(f"SELECT u.id FROM usage_modelusage u WHERE {where}", params)}


def test_a_day_s_drill_url_lists_exactly_its_ledger_rows(as_manager, data, time_zone):
    scopes = [
        *(model_scope(m) for m in MODELS),
        Scope(),
        Scope(organization_id=data.acme.pk),
        Scope(user_id=data.ann.pk),
        Scope(source_id=data.tts.pk),
        Scope(organization_id=data.globex.pk, model_name="claude-3-5-sonnet", provider="anthropic"),
    ]
    seen = 0
    for day in Period(dt.date(2024, 3, 8), dt.date(2024, 3, 15)).each_day():
        for scope in scopes:
            page = get_page(as_manager, drill.ledger_url(day, scope))
            expected = raw_ids(time_zone, day, scope)
            assert set(map(int, LEDGER_ROW.findall(page))) == expected, (day, scope)
            seen += len(expected)
    assert seen > 50
    # a range of days, and a bad day that is refused, not a 500
    url = drill.admin_changelist_url(ModelUsage, timestamp_day="2024-03-09..2024-03-10")
    page = get_page(as_manager, url)
    ids = raw_ids(time_zone, dt.date(2024, 3, 9), Scope()) | raw_ids(
        time_zone, dt.date(2024, 3, 10), Scope()
    )
    assert set(map(int, LEDGER_ROW.findall(page))) == ids
    bad = as_manager.get(drill.admin_changelist_url(ModelUsage, timestamp_day="2024-13-01"))
    assert bad.status_code == 302 and "e=1" in bad["Location"]


def test_a_day_s_chats_url_lists_the_chats_of_that_day(as_manager, data, time_zone):
    raw = Raw(time_zone)
    for day in (dt.date(2024, 3, 11), dt.date(2024, 3, 13), TODAY):
        for scope in (Scope(), Scope(user_id=data.ann.pk), Scope(organization_id=data.globex.pk)):
            start, end = raw.bounds(Period(day, day))
            clauses, params = ["c.created_at >= %s", "c.created_at < %s"], [start, end]
            for column in ("user_id", "organization_id"):
                if getattr(scope, column) is not None:
                    clauses.append(f"c.{column} = %s")
                    params.append(getattr(scope, column))
            expected = {
                pk
                for (pk,) in _sql(
                    f"SELECT c.id FROM chats_chat c WHERE {' AND '.join(clauses)}", params
                )
            }
            page = get_page(as_manager, drill.chats_url(day, scope))
            assert set(map(int, CHAT_ROW.findall(page))) == expected, (day, scope)


# -- clicking through: overview → model → day → ledger row → transcript -----------


def follow(client, page, pattern):
    found = re.search(pattern, page)
    assert found, (pattern, re.findall(r'href="([^"]*)"', page))
    return get_page(client, html.unescape(found.group(1)))


def test_a_manager_clicks_from_the_overview_to_a_transcript(as_manager, data, time_zone):
    claude = ("claude-3-5-sonnet", "anthropic")
    # the claude call in the anonymous chat (r3: 14 March, 03:00 UTC; the 13th in New York)
    day = Raw(time_zone).local_day(utc(2024, 3, 14, 3)).isoformat()
    overview = get_page(as_manager, reverse("dashboards:overview"), period="7d")
    models = follow(as_manager, overview, r'<a href="(/admin/dashboards/models/\?[^"]*)"')
    model = follow(
        as_manager, models, r'href="(/admin/dashboards/models/anthropic/claude-3-5-sonnet/\?[^"]*)"'
    )
    assert "Model: claude-3-5-sonnet (anthropic)" in model
    rows_page = follow(
        as_manager, model, rf'href="(/admin/usage/modelusage/\?[^"]*timestamp_day={day}[^"]*)"'
    )
    rows = set(map(int, LEDGER_ROW.findall(rows_page)))
    assert rows == raw_ids(time_zone, dt.date.fromisoformat(day), model_scope(claude))
    assert len(rows) == 1
    transcript = follow(as_manager, rows_page, r'href="(/admin/review/chats/\d+/[^"]*)"')
    assert data.chat_anon.title in transcript


# -- app users, organisations and the app user admin ------------------------------


def test_the_user_page_links_their_chats_and_each_transcript(as_manager, data):
    page = get_page(as_manager, reverse("dashboards:user", args=[data.ann.pk]))
    assert html.escape(drill.user_chats_url(data.ann.pk)) in page
    assert reverse("review:transcript", args=[data.chat_ann.pk]) in page
    assert reverse("admin:chats_chat_change", args=[data.chat_ann.pk]) not in page
    assert reverse("admin:core_appuser_change", args=[data.ann.pk]) in page
    chats = get_page(as_manager, drill.user_chats_url(data.ann.pk))
    assert set(map(int, CHAT_ROW.findall(chats))) == {data.chat_ann.pk}


def test_the_organisation_page_lists_its_users(as_manager, data):
    page = get_page(
        as_manager, reverse("dashboards:organization", args=[data.acme.pk]), period="90d"
    )
    users = tables_of(page)["users"]
    expected = raw_users(
        "UTC", Period.preset("90d"), Scope(organization_id=data.acme.pk), "user_id"
    )
    assert len(users) == len(expected)
    for pk in (data.ann.pk, data.bob.pk):
        assert f'href="{reverse("dashboards:user", args=[pk])}?period=90d"' in page
    assert sum(Decimal(row[1].lstrip("$").replace(",", "")) for row in users) == pytest.approx(
        sum(c for c, _t, _n in expected.values()), abs=Decimal("0.01") * len(users)
    )


def test_the_app_user_admin_shows_its_real_usage_and_links_its_spend(client, data, fixed_today):
    admin = f.UserFactory(username="root", is_superuser=True, is_staff=True)
    client.force_login(admin)
    page = client.get(reverse("admin:core_appuser_change", args=[data.bob.pk])).content.decode()
    period = Period.preset("30d")
    (tokens, n) = _sql(
        "SELECT SUM(total_tokens), COUNT(*) FROM usage_modelusage u WHERE u.user_id = %s "
        "AND u.timestamp >= %s AND u.timestamp < %s",
        [data.bob.pk, *Raw("UTC").bounds(period)],
    )[0]
    assert tokens > 0
    assert f"{tokens:,} tokens" in page and f"in {n:,} requests" in page
    assert f'href="{reverse("dashboards:user", args=[data.bob.pk])}?period=30d"' in page
    assert "Token usage reported by the source app" in page


def test_every_per_day_chart_carries_its_drill_pattern(as_manager, data):
    overview = get_page(as_manager, reverse("dashboards:overview"), period="7d", source=data.aa.pk)
    pattern = drill.ledger_url(drill.DAY, Scope(source_id=data.aa.pk))
    assert (
        pattern == f"/admin/usage/modelusage/?timestamp_day=__day__&source__id__exact={data.aa.pk}"
    )
    assert overview.count(f'data-drill="{html.escape(pattern)}"') == 2
    stacked = chart_of(overview, "chart-cost-by-model")
    assert stacked["data"] and all(
        trace["meta"] == {"model_name": trace["name"]} for trace in stacked["data"]
    )
    user = get_page(as_manager, reverse("dashboards:user", args=[data.ann.pk]))
    pattern = drill.ledger_url(drill.DAY, Scope(user_id=data.ann.pk))
    assert f'data-drill="{html.escape(pattern)}"' in user
    assert "user__id__exact" in pattern


def test_the_subject_pages_link_the_chats_of_each_day(as_manager, data, time_zone):
    page = get_page(as_manager, reverse("dashboards:user", args=[data.ann.pk]), period="7d")
    scope, period = Scope(user_id=data.ann.pk), Period(dt.date(2024, 3, 8), TODAY)
    days = [day for day, _c, n, *_ in metrics.per_day(period, scope) if n]
    assert days
    for day in days:
        url = drill.chats_url(day, scope)
        assert f'href="{html.escape(url)}"' in page
    # the day of Ann's chat lists it
    start = Raw(time_zone).local_day(data.chat_ann.created_at)
    listed = get_page(as_manager, drill.chats_url(start, scope))
    assert set(map(int, CHAT_ROW.findall(listed))) == {data.chat_ann.pk}
