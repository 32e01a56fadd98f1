"""Every table of the overview adds up to its total, and usage without a
price is its own state (#18): checked against plain SQL on the raw ledger
(usage_modelusage) for every period and scope of the awkward ledger (nulls,
anonymous calls, no organisation, unpriced calls, day boundaries, zero and
huge costs), in UTC and in New York."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from usage import metrics
from usage.metrics import Period, Scope

from .conftest import TODAY
from .test_metrics import COST_SUM, Raw, _sql, combinations, cost_sum, money

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["UTC", "America/New_York"])
def time_zone(request, settings):
    settings.TIME_ZONE = request.param
    return request.param


def raw_sums(raw, period, scope, extra="", params=()):
    """(cost, tokens, requests) of the period's ledger rows (unpriced: $0)."""
    where, base = raw.where(period, scope)
    ((cost, tokens, requests),) = _sql(
        f"SELECT {COST_SUM}, COALESCE(SUM(u.total_tokens), 0), COUNT(*) "  # noqa: S608
        f"FROM usage_modelusage u WHERE {where} {extra}",
        [*base, *params],
    )
    return {"cost": cost_sum(cost), "tokens": int(tokens), "requests": requests}


def add_up(rows):
    return {
        "cost": money(sum((r["cost"] for r in rows), Decimal(0))),
        "tokens": sum(r["tokens"] for r in rows),
        "requests": sum(r["requests"] for r in rows),
    }


def remainder(rows, kind):
    found = [r for r in rows if r.get("remainder") == kind]
    assert len(found) <= 1
    if not found:
        return {"cost": money(0), "tokens": 0, "requests": 0}
    return add_up(found)


@pytest.mark.parametrize("limit", [1, 10])
def test_top_users_add_up_to_the_total(awkward, time_zone, limit):
    raw = Raw(time_zone)
    for period, scope in combinations(awkward):
        where = (period, scope, limit)
        rows = metrics.top_users(period, scope, limit)
        total = raw_sums(raw, period, scope)
        assert add_up(rows) == total, where
        anonymous = raw_sums(raw, period, scope, "AND u.user_id IS NULL")
        assert remainder(rows, "missing") == anonymous, where
        shown = [r["user_id"] for r in rows if "remainder" not in r]
        assert len(shown) <= limit
        if shown:
            marks = ", ".join(["%s"] * len(shown))
            others = raw_sums(
                raw,
                period,
                scope,
                f"AND u.user_id IS NOT NULL AND u.user_id NOT IN ({marks})",
                shown,
            )
            assert remainder(rows, "others") == others, where


@pytest.mark.parametrize("limit", [1, 10])
def test_top_organizations_add_up_to_the_total(awkward, time_zone, limit):
    raw = Raw(time_zone)
    for period, scope in combinations(awkward):
        where = (period, scope, limit)
        rows = metrics.top_organizations(period, scope, limit)
        assert add_up(rows) == raw_sums(raw, period, scope), where
        no_org = raw_sums(raw, period, scope, "AND u.organization_id IS NULL")
        assert remainder(rows, "missing") == no_org, where
        shown = [r["organization_id"] for r in rows if "remainder" not in r]
        if shown:
            marks = ", ".join(["%s"] * len(shown))
            others = raw_sums(
                raw,
                period,
                scope,
                f"AND u.organization_id IS NOT NULL AND u.organization_id NOT IN ({marks})",
                shown,
            )
            assert remainder(rows, "others") == others, where


def test_remainder_rows_are_labelled(awkward, time_zone):
    thirty = Period.preset("30d", TODAY)
    rows = metrics.top_users(thirty, Scope(), 1)
    assert [r["label"] for r in rows[1:]] == ["3 other app users", "Anonymous (no app user)"]
    assert [r["user_id"] for r in rows[1:]] == [None, None]
    rows = metrics.top_organizations(thirty, Scope(), 1)
    assert [r["label"] for r in rows[1:]] == ["1 other organisation", "No organisation"]
    # A table that holds everything has no remainder row.
    rows = metrics.top_users(thirty, Scope(user_id=awkward.ann.pk), 10)
    assert [r.get("remainder") for r in rows] == [None]


def test_cost_by_provider_adds_up_to_the_total(awkward, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(awkward):
        got = money(sum((c for _, c in metrics.cost_by_provider(period, scope)), Decimal(0)))
        assert got == raw_sums(raw, period, scope)["cost"], (period, scope)


# -- usage without a price -------------------------------------------------------


def raw_unpriced(raw, period, scope):
    where, params = raw.where(period, scope)
    rows = _sql(
        "SELECT u.model_name, u.provider, COUNT(*), COALESCE(SUM(u.total_tokens), 0), "  # noqa: S608
        f"MIN(u.timestamp) FROM usage_modelusage u WHERE {where} AND u.cost IS NULL "
        "GROUP BY u.model_name, u.provider ORDER BY COUNT(*) DESC, u.model_name, u.provider",
        params,
    )
    return [
        {
            "model_name": m,
            "provider": p,
            "requests": n,
            "tokens": int(t),
            "first_seen": raw.local_day(first),
        }
        for m, p, n, t, first in rows
    ]


def test_unpriced_equals_plain_sql_and_the_rollups_count(awkward, time_zone):
    raw = Raw(time_zone)
    seen = 0
    for period, scope in combinations(awkward):
        rows = metrics.unpriced(period, scope)
        assert rows == raw_unpriced(raw, period, scope), (period, scope)
        summary = metrics.unpriced_summary(period, scope)
        # The roll-ups' count of unpriced calls agrees with the ledger's.
        assert summary["requests"] == metrics.totals(period, scope)["unpriced_requests"]
        assert summary["tokens"] == sum(r["tokens"] for r in rows)
        seen += summary["requests"]
    assert seen > 0, "the awkward ledger has unpriced calls"


def test_unpriced_first_seen_is_a_local_day(awkward, time_zone):
    rows = metrics.unpriced(Period.preset("90d", TODAY), Scope())
    for row in rows:
        assert isinstance(row["first_seen"], dt.date)
        assert not isinstance(row["first_seen"], dt.datetime)


# -- the overview -----------------------------------------------------------------


def _section(page, name):
    return page.split(f'id="table-{name}"')[1].split("</section>")[0]


def test_overview_warns_of_unpriced_usage_and_lists_it(client, manager, awkward, fixed_today):
    client.force_login(manager)
    period = Period.preset("30d", TODAY)
    summary = metrics.unpriced_summary(period, Scope())
    page = client.get(reverse("dashboards:overview"), {"period": "30d"}).content.decode()
    warning = page.split('id="unpriced-warning"')[1].split("</p>")[0]
    assert f"{summary['requests']:,} requests ({summary['tokens']:,} tokens)" in warning
    section = _section(page, "unpriced")
    for row in metrics.unpriced(period, Scope()):
        assert f'<td class="text">{row["provider"]}</td>' in section
    # Managers cannot add prices: no link to the form, the command named.
    assert "admin/usage/modelprice/add" not in section
    assert "manage.py recompute_costs --model" in section
    assert reverse("watch:alerts") in section


def test_admins_get_a_prefilled_price_form(admin_client, awkward, fixed_today):
    page = admin_client.get(reverse("dashboards:overview"), {"period": "30d"}).content.decode()
    section = _section(page, "unpriced")
    (row, *_) = metrics.unpriced(Period.preset("30d", TODAY), Scope())
    link = re.search(
        r'<a href="(/admin/usage/modelprice/add/\?[^"]+)">' + re.escape(row["model_name"]),
        section,
    )
    assert link, section
    url = link.group(1).replace("&amp;", "&")
    assert f"provider={row['provider']}" in url
    assert f"effective_from={row['first_seen'].isoformat()}" in url
    form = admin_client.get(url).content.decode()
    assert re.search(rf'name="model_name" value="{re.escape(row["model_name"])}"', form)
    assert re.search(rf'name="provider" value="{re.escape(row["provider"])}"', form)


def test_overview_without_unpriced_usage_has_no_warning(client, manager, fixed_today):
    client.force_login(manager)
    page = client.get(reverse("dashboards:overview")).content.decode()
    assert 'id="unpriced-warning"' not in page
    assert "Every call of this period has a price." in _section(page, "unpriced")


def test_overview_remainder_rows_are_not_links(client, manager, awkward, fixed_today):
    client.force_login(manager)
    page = client.get(reverse("dashboards:overview"), {"period": "30d"}).content.decode()
    users = _section(page, "top_users")
    assert '<td class="text">Anonymous (no app user)</td>' in users
    orgs = _section(page, "top_organizations")
    assert '<td class="text">No organisation</td>' in orgs
