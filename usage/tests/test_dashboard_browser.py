"""The overview in a real browser (Debian's Chromium through Playwright):
a Manager logs in through the admin form, the three plotly charts draw, the
figures show; a screenshot is saved as test-artifacts/dashboard-overview.png.
"""

import datetime as dt
import random
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission

from core import roles
from core.tests import factories as f
from usage import ledger, metrics
from usage.metrics import Period, Scope
from usage.models import ModelUsage
from usage.templatetags.figures import figure

from .conftest import PASSWORD, TODAY

# The live server runs in another thread: the data must be committed.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def _role_groups(transactional_db):
    """The Staff, Managers and Admins groups, made again if a flush took them.

    A transactional test's flush deletes the groups the data migration made;
    the serialized rollback should give them back, but the test database is
    serialized on the DatabaseWrapper of the context that created it, and test
    code running under Playwright's greenlet gets a wrapper of its own (asgiref
    Local), so after another test set the database up it restores nothing.
    """
    for name, dotted in roles.GROUPS.items():
        group, created = Group.objects.get_or_create(name=name)
        if created:
            for item in dotted:
                app_label, codename = item.split(".")
                group.permissions.add(
                    Permission.objects.get(content_type__app_label=app_label, codename=codename)
                )
    admins, created = Group.objects.get_or_create(name="Admins")
    if created:
        admins.permissions.set(
            Permission.objects.filter(content_type__app_label__in=roles.ADMIN_APPS)
        )


MODELS = [
    ("gpt-4o", "openai", None),
    ("gpt-4o-mini", "openai", None),
    ("claude-3-5-sonnet", "anthropic", None),
    ("llama-3-70b", "groq", "0.0004"),
]


@pytest.fixture
def month_of_usage(time_zone, fixed_today):
    """60 days of plausible usage (3 organisations, 9 app users, 4 models);
    returns the number of calls in the last 30 days."""
    for model, provider, rates in (
        ("gpt-4o", "openai", ("2.50", "10.00")),
        ("gpt-4o-mini", "openai", ("0.15", "0.60")),
        ("claude-3-5-sonnet", "anthropic", ("3.00", "15.00")),
    ):
        f.ModelPriceFactory(
            model_name=model,
            provider=provider,
            input_per_million=Decimal(rates[0]),
            output_per_million=Decimal(rates[1]),
            effective_from=dt.date(2024, 1, 1),
        )
    orgs = [f.OrganizationFactory(name=name) for name in ("Acme", "Globex", "Initech")]
    users = [
        f.AppUserFactory(organization=orgs[n % 3], email=f"{name}@example.com")
        for n, name in enumerate(["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy"])
    ]
    rng = random.Random(7)
    rows = []
    for back in range(60):
        day = TODAY - dt.timedelta(days=back)
        for n, user in enumerate(users):
            for _ in range(rng.randint(0, 3 + n % 4)):
                model, provider, cost = rng.choice(MODELS)
                prompt = rng.randint(500, 12_000)
                when = dt.datetime.combine(
                    day, dt.time(rng.randint(0, 23), rng.randint(0, 59)), dt.UTC
                )
                rows.append(
                    ModelUsage(
                        user=user if rng.random() > 0.1 else None,
                        organization=orgs[n % 3],
                        model_name=model,
                        provider=provider,
                        prompt_tokens=prompt,
                        completion_tokens=rng.randint(100, prompt),
                        cost=None if cost is None else Decimal(cost),
                        timestamp=when,
                        is_streaming=rng.random() < 0.4,
                        request_time_ms=rng.randint(300, 9000) if rng.random() > 0.05 else None,
                    )
                )
    ledger.add_usage(rows)
    f.BudgetFactory(organization=orgs[0], monthly_limit=Decimal("5.00"))
    f.BudgetFactory(organization=orgs[1], monthly_limit=Decimal("50.00"))
    return sum(1 for row in rows if row.timestamp.date() > TODAY - dt.timedelta(days=30))


def test_manager_sees_the_overview_with_charts(
    live_server, page, login, screenshot, manager, month_of_usage
):
    login(page, "manager", PASSWORD)
    assert page.url == f"{live_server.url}/admin/"

    response = page.goto(f"{live_server.url}/admin/dashboards/?period=30d")

    assert response.status == 200
    # Each of the three charts draws its SVG.
    page.wait_for_function(
        "document.querySelectorAll('.plot').length === 3 && "
        "[...document.querySelectorAll('.plot')].every(p => p.querySelector('.main-svg'))",
        timeout=20_000,
    )
    assert page.locator(".plot .main-svg").count() >= 3
    # Stacked bars: one trace per model; two token lines; a bar per provider.
    assert page.locator("[data-chart=chart-cost-by-model] .barlayer .trace").count() == 4
    assert page.locator("[data-chart=chart-tokens] .scatterlayer .trace").count() == 2
    assert page.locator("[data-chart=chart-providers] .barlayer .point").count() == 3
    period = Period(TODAY - dt.timedelta(days=29), TODAY)
    for item in metrics.headline(period, Scope()):
        shown = page.locator(f"#figure-{item.key} .figure-value").inner_text()
        assert shown == figure(item.value, item.kind), item.key
        assert shown not in ("", "–"), item.key
    assert page.locator("#figure-requests .figure-value").inner_text() == f"{month_of_usage:,}"
    assert month_of_usage == 562
    # The nine app users and the anonymous calls (a tenth of them).
    assert page.locator("#table-top_users tbody tr").count() == 10
    assert page.locator("#table-top_users tbody tr").last.inner_text().startswith("Anonymous")
    assert page.locator("#table-budgets tbody tr").count() == 2
    assert "Days run from midnight to midnight in UTC" in page.locator(".period-note").inner_text()
    # Changes against the 30 days before are shown, and the axes are titled.
    assert " vs " in page.locator("#figure-cost .figure-change").inner_text()
    assert page.locator("[data-chart=chart-cost-by-model] .ytitle").text_content() == "USD"
    assert page.locator("[data-chart=chart-tokens] .ytitle").text_content() == "tokens"
    assert page.locator("[data-chart=chart-providers] .xtitle").text_content() == "USD"

    path = screenshot(page, "dashboard-overview")

    assert path.name == "dashboard-overview.png"
    assert path.stat().st_size > 50_000


def test_staff_opening_the_dashboards_sees_403(live_server, page, login, staff):
    login(page, "staffer", PASSWORD)
    assert page.url == f"{live_server.url}/admin/"

    response = page.goto(f"{live_server.url}/admin/dashboards/")

    assert response.status == 403
    assert page.locator(".plot").count() == 0
