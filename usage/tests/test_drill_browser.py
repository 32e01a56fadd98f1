"""Drill-down in a real browser (Debian's Chromium through Playwright): a
click on a bar of a model's per-day chart lands on the ledger rows of that
local day and model; a screenshot of the model page at 1440 px is saved as
test-artifacts/dashboard-model.png.
"""

import datetime as dt
import re

import pytest

from usage import metrics
from usage.metrics import Period, Scope
from usage.models import ModelUsage

from .conftest import PASSWORD, TODAY
from .test_dashboard_browser import _role_groups, month_of_usage  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_a_click_on_a_day_s_bar_opens_its_ledger_rows(
    live_server,
    page,
    login,
    screenshot,
    manager,
    month_of_usage,  # noqa: F811
):
    login(page, "manager", PASSWORD)
    scope = Scope(model_name="gpt-4o", provider="openai")
    period = Period(TODAY - dt.timedelta(days=29), TODAY)
    days = metrics.per_day(period, scope)
    # the dearest day of the period, and its bar
    index = max(range(len(days)), key=lambda n: days[n][1])
    day = days[index][0]
    assert days[index][2] > 0

    page.goto(f"{live_server.url}/admin/dashboards/models/openai/gpt-4o/?period=30d")
    page.wait_for_function(
        "document.querySelector('[data-chart=chart-per-day] .main-svg') && "
        "document.querySelector('[data-chart=chart-per-day]').classList.contains('drillable')",
        timeout=20_000,
    )
    path = screenshot(page, "dashboard-model")
    assert path.stat().st_size > 50_000

    bar = page.locator("[data-chart=chart-per-day] .barlayer .trace .point").nth(index)
    box = bar.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.wait_for_timeout(200)
    page.mouse.click(x, y)
    page.wait_for_url(re.compile(r"/admin/usage/modelusage/\?"), timeout=10_000)

    assert f"timestamp_day={day.isoformat()}" in page.url
    assert "model_name=gpt-4o" in page.url and "provider=openai" in page.url
    start, end = Period(day, day).local_bounds()
    expected = ModelUsage.objects.filter(
        timestamp__gte=start, timestamp__lt=end, model_name="gpt-4o", provider="openai"
    ).count()
    assert expected == days[index][2]
    assert page.locator("#result_list tbody tr").count() == expected
