"""Budget states by projection (#18): over, at risk, on track.

One definition (usage.metrics.budget_statuses and its run-rate projection)
serves the overview, the organisation and app-user pages, the budget admin,
``check_budgets`` and ``watch_spend``. Budget months are calendar months in
TIME_ZONE: the spend is checked against plain SQL over the raw ledger with
the month's local bounds cut in Python, at the month's first and last
instants, in UTC and in Pacific/Auckland (UTC+13 in March 2024), where a
local month starts on the day before in UTC.
"""

import datetime as dt
import math
import re
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse

from core.tests import factories as f
from usage import ledger, metrics, watch
from usage.metrics import BudgetState
from usage.models import Budget, ModelUsage

pytestmark = pytest.mark.django_db

ZONES = ["UTC", "Pacific/Auckland"]


@pytest.fixture(params=ZONES)
def zone(request, settings):
    settings.TIME_ZONE = request.param
    return ZoneInfo(request.param)


def local(zone, *args):
    return dt.datetime(*args, tzinfo=zone)


def _row(user, cost, when):
    return ModelUsage(
        user=user,
        model_name="gpt-4o",
        provider="openai",
        prompt_tokens=1000,
        completion_tokens=500,
        cost=None if cost is None else Decimal(cost),
        timestamp=when,
    )


@pytest.fixture
def month(zone):
    """Acme's app users ann and bob spend at the edges of March 2024 (local
    time); cat (no organisation) spends nothing."""
    acme = f.OrganizationFactory(name="Acme")
    ann = f.AppUserFactory(organization=acme, email="ann@acme.test")
    bob = f.AppUserFactory(organization=acme, email="bob@acme.test")
    cat = f.AppUserFactory(organization=None, email="cat@solo.test")
    ledger.add_usage(
        [
            _row(ann, "7", local(zone, 2024, 2, 29, 23, 59, 59)),  # February
            _row(ann, "1.25", local(zone, 2024, 3, 1, 0, 0, 0)),  # first instant
            _row(bob, "0.75", local(zone, 2024, 3, 1, 23, 59, 59)),
            _row(bob, None, local(zone, 2024, 3, 2, 12)),  # unpriced: $0
            _row(ann, "3", local(zone, 2024, 3, 15, 12)),
            _row(bob, "0", local(zone, 2024, 3, 20, 12)),  # free
            _row(ann, "2", local(zone, 2024, 3, 31, 23, 59, 59)),  # last instant
            _row(ann, "11", local(zone, 2024, 4, 1, 0, 0, 0)),  # April
        ]
    )
    return acme, ann, bob, cat


def raw_spent(zone, today, column, value):
    """The budget month's spend to ``today`` by plain SQL on the ledger."""
    start = dt.datetime.combine(today.replace(day=1), dt.time(), zone).astimezone(dt.UTC)
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            # whole 10^-8 dollars: SQLite sums DECIMAL as doubles
            "SELECT SUM(ROUND(cost * 100000000)) FROM usage_modelusage "
            f"WHERE {column} = %s AND timestamp >= %s AND timestamp < %s",  # noqa: S608 - fixed columns
            [value, adapt(start), adapt(end)],
        )
        (units,) = cursor.fetchone()
    return Decimal(int(units or 0)) / 100_000_000


def status_of(budget, today):
    (status,) = [s for s in metrics.budget_statuses(today=today) if s.budget.pk == budget.pk]
    return status


DAYS = [
    dt.date(2024, 2, 29),  # last day of a leap February
    dt.date(2024, 3, 1),  # first day
    dt.date(2024, 3, 2),
    dt.date(2024, 3, 15),
    dt.date(2024, 3, 31),  # last day
    dt.date(2024, 4, 1),
]


def test_spent_equals_plain_sql_at_the_month_edges(month, zone):
    acme, ann, bob, cat = month
    budgets = {
        ("organization_id", acme.pk): f.BudgetFactory(organization=acme),
        ("user_id", ann.pk): f.BudgetFactory(organization=None, user=ann),
        ("user_id", bob.pk): f.BudgetFactory(organization=None, user=bob),
        ("user_id", cat.pk): f.BudgetFactory(organization=None, user=cat),
    }
    for today in DAYS:
        for (column, pk), budget in budgets.items():
            status = status_of(budget, today)
            assert status.spent == raw_spent(zone, today, column, pk), (today, budget)
            days = 29 if today.month == 2 else 31 if today.month == 3 else 30
            assert status.projected == status.spent * days / today.day


def test_concrete_spend_at_the_edges(month, zone):
    acme, ann, bob, cat = month
    budget = f.BudgetFactory(organization=acme)
    # 29 February, its last day: February's $7, the projection is the spend.
    feb = status_of(budget, dt.date(2024, 2, 29))
    assert (feb.spent, feb.projected) == (Decimal(7), Decimal(7))
    # 1 March: the first instant counts, February's last does not.
    first = status_of(budget, dt.date(2024, 3, 1))
    assert first.spent == Decimal(2)
    assert first.projected == Decimal(62)  # 2 / 1 × 31
    # 31 March: the last instant counts, April's first does not.
    last = status_of(budget, dt.date(2024, 3, 31))
    assert last.spent == last.projected == Decimal("7.00")
    april = status_of(budget, dt.date(2024, 4, 1))
    assert april.spent == Decimal(11)


def test_states_on_the_first_day(month, zone):
    acme, *_ = month
    first = dt.date(2024, 3, 1)  # spent 2, projected 62
    cases = {
        Decimal("1.99"): BudgetState.OVER,
        Decimal("2.00"): BudgetState.AT_RISK,  # spent = limit is not over
        Decimal("61.99"): BudgetState.AT_RISK,
        Decimal("62.00"): BudgetState.ON_TRACK,  # projected = limit is not at risk
        Decimal("500.00"): BudgetState.ON_TRACK,
    }
    budget = f.BudgetFactory(organization=acme)
    for limit, state in cases.items():
        Budget.objects.filter(pk=budget.pk).update(monthly_limit=limit)
        assert status_of(budget, first).state == state, limit


def test_states_on_the_last_day_never_at_risk(month, zone):
    acme, *_ = month
    last = dt.date(2024, 3, 31)  # spent = projected = 7
    budget = f.BudgetFactory(organization=acme)
    for limit, state in (
        (Decimal("6.99"), BudgetState.OVER),
        (Decimal("7.00"), BudgetState.ON_TRACK),
        (Decimal("7.01"), BudgetState.ON_TRACK),
    ):
        Budget.objects.filter(pk=budget.pk).update(monthly_limit=limit)
        assert status_of(budget, last).state == state, limit


def test_zero_spend_and_zero_limits(month, zone):
    acme, ann, bob, cat = month
    nothing = f.BudgetFactory(organization=None, user=cat, monthly_limit=Decimal("10.00"))
    zero_nothing = f.BudgetFactory(
        organization=f.OrganizationFactory(name="Idle"), monthly_limit=Decimal("0.00")
    )
    zero_spent = f.BudgetFactory(organization=None, user=ann, monthly_limit=Decimal("0.00"))
    today = dt.date(2024, 3, 15)

    idle = status_of(nothing, today)
    assert (idle.spent, idle.projected, idle.share, idle.state) == (0, 0, 0.0, "on track")
    # Nothing allowed, nothing spent: on track.
    empty = status_of(zero_nothing, today)
    assert (empty.spent, empty.share, empty.state) == (0, 0.0, "on track")
    # Nothing allowed, $4.25 spent: over, by an infinite share.
    over = status_of(zero_spent, today)
    assert over.spent == Decimal("4.25")
    assert math.isinf(over.share)
    assert over.state == "over"
    # Worst first.
    states = [s.state for s in metrics.budget_statuses(today=today)]
    assert states == ["over", "on track", "on track"]


def test_check_budgets_and_the_watch_share_the_states(month, zone, monkeypatch):
    acme, ann, *_ = month
    f.BudgetFactory(organization=acme, monthly_limit=Decimal("20.00"))  # 2 → 62: at risk
    f.BudgetFactory(organization=None, user=ann, monthly_limit=Decimal("1.00"))  # 1.25: over
    first = dt.date(2024, 3, 1)
    monkeypatch.setattr("django.utils.timezone.localdate", lambda *a, **k: first)
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("check_budgets", stdout=out, no_color=True)
    lines = out.getvalue().splitlines()
    assert [line.rsplit("  ", 1)[1] for line in lines[1:]] == ["over", "at risk"]
    # The watch reports "projected" for the budget at risk only.
    projected = [x for x in watch.budget_findings(first) if x.threshold == "projected"]
    assert [x.budget.organization for x in projected] == [acme]


# -- pages -------------------------------------------------------------------


@pytest.fixture
def as_manager(client, manager, fixed_today):
    client.force_login(manager)
    return client


def _budget_section(page):
    return page.split('id="table-budgets"')[1].split("</section>")[0]


def test_overview_names_states_and_organisations_without_a_budget(as_manager, month, settings):
    acme, ann, *_ = month
    # TODAY is 14 March: ann spent 1.25, projected 2.77 (in either zone).
    f.BudgetFactory(organization=None, user=ann, monthly_limit=Decimal("2.00"))
    page = as_manager.get(reverse("dashboards:overview")).content.decode()
    section = _budget_section(page)
    assert '<span class="state state-at-risk">At risk</span>' in section
    add = reverse("admin:usage_budget_add")
    # Acme spent this month and has no budget.
    assert (
        f'<a href="{add}?organization={acme.pk}">Set a budget for Acme ($2.00 this month)</a>'
        in (section)
    )
    assert f'<a href="{add}">Add a budget</a>' in section


def test_organisation_page_without_a_budget_links_to_set_one(as_manager, month):
    acme, ann, *_ = month
    url = reverse("dashboards:organization", args=[acme.pk])
    section = _budget_section(as_manager.get(url).content.decode())
    assert "No budget set." in section
    add = reverse("admin:usage_budget_add")
    assert f'<a href="{add}?organization={acme.pk}">Set a budget</a>' in section
    # The link fills the form in.
    form = as_manager.get(f"{add}?organization={acme.pk}").content.decode()
    assert re.search(rf'<option value="{acme.pk}" selected>Acme</option>', form)

    f.BudgetFactory(organization=acme, monthly_limit=Decimal("2.00"))
    section = _budget_section(as_manager.get(url).content.decode())
    assert "No budget set." not in section
    assert "Set a budget" not in section
    assert '<span class="state state-over">Over</span>' not in section
    # TODAY is 14 March: spent 2.00 of 2.00 (not over), projected 4.43: at risk.
    assert '<span class="state state-at-risk">At risk</span>' in section


def test_app_user_page_without_a_budget_links_to_set_one(as_manager, month):
    _, ann, *_ = month
    section = _budget_section(
        as_manager.get(reverse("dashboards:user", args=[ann.pk])).content.decode()
    )
    add = reverse("admin:usage_budget_add")
    assert f'<a href="{add}?user={ann.pk}">Set a budget</a>' in section


def test_staff_without_the_add_right_get_no_link(client, month, fixed_today):
    acme, *_ = month
    viewer = f.UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_dashboards"))
    client.force_login(viewer)
    url = reverse("dashboards:organization", args=[acme.pk])
    section = _budget_section(client.get(url).content.decode())
    assert "No budget set." in section
    assert "Set a budget" not in section


# -- the budget admin ----------------------------------------------------------


CHANGELIST = "admin:usage_budget_changelist"


def _rows(page):
    """(target, spent, projected, status) of each row of the changelist."""
    body = page.split('id="result_list"')[1].split("</table>")[0]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>")[1], re.S):
        cells = [
            re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        rows.append(cells)
    return rows


def test_admin_lists_the_state_and_filters_by_it(as_manager, month):
    acme, ann, bob, cat = month
    # 14 March: acme spent 2 → projected 4.43; ann 1.25 → 2.77; bob 0.75 → 1.66.
    f.BudgetFactory(organization=acme, monthly_limit=Decimal("1.50"))  # over
    f.BudgetFactory(organization=None, user=ann, monthly_limit=Decimal("2.50"))  # at risk
    f.BudgetFactory(organization=None, user=bob, monthly_limit=Decimal("2.00"))  # on track
    f.BudgetFactory(organization=None, user=cat, monthly_limit=Decimal("1.00"))  # on track
    url = reverse(CHANGELIST)
    rows = {r[1]: r for r in _rows(as_manager.get(url).content.decode())}
    # status, spent this month, limit, projected month end
    assert rows["$1.50/month for Acme"][2:] == ["Over", "$2.00", "$1.50", "$4.43"]
    assert rows["$2.50/month for ann@acme.test"][2:] == ["At risk", "$1.25", "$2.50", "$2.77"]
    assert rows["$2.00/month for bob@acme.test"][2:] == ["On track", "$0.75", "$2.00", "$1.66"]
    assert rows["$1.00/month for cat@solo.test"][2:] == ["On track", "$0.00", "$1.00", "$0.00"]
    for state, names in (
        ("over", ["$1.50/month for Acme"]),
        ("at risk", ["$2.50/month for ann@acme.test"]),
        ("on track", ["$2.00/month for bob@acme.test", "$1.00/month for cat@solo.test"]),
    ):
        page = as_manager.get(url, {"state": state}).content.decode()
        assert [r[1] for r in _rows(page)] == names, state


def test_admin_query_count_does_not_grow_with_budgets(as_manager, month, django_assert_num_queries):
    acme, ann, bob, cat = month
    url = reverse(CHANGELIST)
    f.BudgetFactory(organization=acme, monthly_limit=Decimal("1.50"))  # over
    f.BudgetFactory(organization=None, user=ann, monthly_limit=Decimal("2.50"))  # at risk
    # The admin request (session, account, its permissions, its groups': 4);
    # the organisation filter's choices (1); the filtered and the whole
    # count (2); the page's budgets with their organisation and app user (1);
    # the page's spend by organisation (1) and by app user (1).
    expected = 4 + 6
    with django_assert_num_queries(expected):
        assert as_manager.get(url).status_code == 200
    for n in range(10):
        f.BudgetFactory(organization=f.OrganizationFactory(name=f"Org {n}"))
        f.BudgetFactory(organization=None, user=f.AppUserFactory(organization=acme))
    with django_assert_num_queries(expected):
        page = as_manager.get(url).content.decode()
    assert len(_rows(page)) == 22
    # Filtered by state, the filter reads every budget and their spend (3).
    with django_assert_num_queries(expected + 3):
        page = as_manager.get(url, {"state": "on track"}).content.decode()
    assert len(_rows(page)) == 20
