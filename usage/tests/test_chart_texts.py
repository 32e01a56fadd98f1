"""The usage pages' charts read like their tables (#18): every point's hover
text is the figure the tables show (core.pages.formats), checked against
plain SQL over the raw ledger; money and counts are drawn from 0; a period
without data shows "No data for this period." instead of empty axes."""

import datetime as dt
import re

import pytest
from django.urls import reverse

from core.pages.formats import a_date, display
from usage.metrics import Period, Scope

from .conftest import TODAY
from .test_dashboards import chart_of, get_page
from .test_metrics import Raw

pytestmark = pytest.mark.django_db

SEVEN_DAYS_PERIOD = (dt.date(2024, 3, 8), TODAY)
OVERVIEW = reverse("dashboards:overview")
CHART = re.compile(r'<script id="(chart-[\w-]+)" type="application/json">')
EMPTY = re.compile(
    r'<p class="no-data" data-empty-chart="(chart-[\w-]+)">No data for this period.</p>'
)


@pytest.fixture
def as_manager(client, manager, awkward, fixed_today):
    client.force_login(manager)
    return client


def charts_of(page):
    return {name: chart_of(page, name) for name in CHART.findall(page)}


def value_axes(figure):
    """The layout's axes that carry values (not days, not categories)."""
    for name, axis in figure["layout"].items():
        if (
            re.fullmatch(r"[xy]axis\d*", name)
            and axis.get("type") != "category"
            and axis.get("autorange") != "reversed"
        ):
            yield name, axis


def assert_readable(figure):
    """Every trace hovers preformatted texts, one per point; value axes start
    at 0; a share axis runs 0–100 %."""
    assert figure["data"] and not figure["empty"]
    for trace in figure["data"]:
        points = trace["x"] if trace.get("orientation") != "h" else trace["y"]
        assert len(trace["customdata"]) == len(points)
        assert all(isinstance(t, str) for row in trace["customdata"] for t in row)
        assert "%{customdata" in trace["hovertemplate"]
        # raw floats such as 0.9458108 never reach the hover
        assert "%{y" not in trace["hovertemplate"] and "%{x" not in trace["hovertemplate"]
    axes = dict(value_axes(figure))
    assert axes
    for axis in axes.values():
        if axis.get("tickformat", "").endswith("%"):
            assert axis.get("range", [0])[0] == 0 and axis.get("range", [0, 1])[1] <= 1.05
        else:
            assert axis.get("rangemode") == "tozero" or axis.get("range", [None])[0] == 0


def test_overview_hovers_read_like_the_tables_against_sql(as_manager, time_zone):
    page = get_page(as_manager, OVERVIEW, period="7d")
    charts = charts_of(page)
    assert sorted(charts) == ["chart-cost-by-model", "chart-providers", "chart-tokens"]
    for figure in charts.values():
        assert_readable(figure)

    period, raw = Period(*SEVEN_DAYS_PERIOD), Raw(time_zone)
    stacked = {
        trace["name"]: dict(zip(trace["x"], trace["customdata"], strict=True))
        for trace in charts["chart-cost-by-model"]["data"]
    }
    expected = raw.cost_per_day_by_model(period, Scope())
    assert expected
    for day, model, total in expected:
        assert stacked[model][day.isoformat()] == [a_date(day), display(total, "money")]
    # cents above $1, 4 significant digits below, never the raw float
    assert stacked["claude-3-5-sonnet"]["2024-03-11"] == ["11 Mar 2024", "$7,800.00"]
    assert stacked["gpt-4o"]["2024-03-09"][1] == "$0.0351"

    tokens = charts["chart-tokens"]["data"]
    for day, prompt, completion in raw.tokens_per_day(period, Scope()):
        n = period.each_day().index(day)
        assert tokens[0]["customdata"][n] == [a_date(day), f"{prompt:,}"]
        assert tokens[1]["customdata"][n] == [a_date(day), f"{completion:,}"]
    assert tokens[0]["customdata"][3][1] == "600,000,000"

    providers = charts["chart-providers"]["data"][0]
    assert providers["customdata"] == [
        [provider, display(total, "money")]
        for provider, total in raw.cost_by_provider(period, Scope())
    ]
    assert providers["customdata"][0] == ["anthropic", "$7,800.02"]


def test_model_and_subject_pages_hover_their_days_against_sql(as_manager, awkward, time_zone):
    period, raw = Period(*SEVEN_DAYS_PERIOD), Raw(time_zone)
    url = reverse("dashboards:model", args=["openai", "gpt-4o"])
    figure = chart_of(get_page(as_manager, url, period="7d"), "chart-per-day")
    assert_readable(figure)
    scope = Scope(model_name="gpt-4o", provider="openai")
    rows = raw.raw_rows(period, scope, "cost", "total_tokens")
    for n, day in enumerate(period.each_day()):
        of_day = [r for r in rows if raw.local_day(r[0]) == day]
        cost = sum((r[1] or 0 for r in of_day), 0)
        unpriced = sum(1 for r in of_day if r[1] is None)
        bar = figure["data"][0]["customdata"][n]
        assert bar[:4] == [
            a_date(day),
            display(cost, "money"),
            display(sum(r[2] for r in of_day), "number"),
            display(len(of_day), "number"),
        ]
        assert bar[4] == (f" ({unpriced:,} without a price)" if unpriced else "")
        assert figure["data"][1]["customdata"][n] == [a_date(day), f"{len(of_day):,}"]

    url = reverse("dashboards:user", args=[awkward.bob.pk])
    figure = chart_of(get_page(as_manager, url, period="7d"), "chart-cost")
    assert_readable(figure)
    expected = raw.cost_per_day(period, Scope(user_id=awkward.bob.pk))
    assert figure["data"][0]["customdata"] == [
        [a_date(day), display(total, "money")] for day, total in expected
    ]


@pytest.mark.parametrize(
    "url",
    [
        OVERVIEW,
        reverse("dashboards:model", args=["openai", "gpt-4o"]),
        "user",
        "organization",
    ],
)
def test_a_period_without_data_says_so_instead_of_drawing_empty_axes(as_manager, awkward, url):
    if url == "user":
        url = reverse("dashboards:user", args=[awkward.ann.pk])
    elif url == "organization":
        url = reverse("dashboards:organization", args=[awkward.globex.pk])
    # January 2023: no call of anyone
    page = get_page(as_manager, url, period="custom", start="2023-01-01", end="2023-01-31")
    assert CHART.findall(page) == []
    assert EMPTY.findall(page)
    assert 'class="plot"' not in page
    # with data, the same pages draw their charts
    page = get_page(as_manager, url, period="30d")
    assert EMPTY.findall(page) == [] and CHART.findall(page)


def test_a_day_of_zero_cost_calls_still_draws_its_requests(as_manager):
    # mistral-large's calls reported $0 on 12 March: the bars are flat, the
    # requests line is not, so the chart is drawn.
    url = reverse("dashboards:model", args=["mistral", "mistral-large"])
    page = get_page(as_manager, url, period="custom", start="2024-03-12", end="2024-03-12")
    figure = chart_of(page, "chart-per-day")
    assert figure["data"][0]["y"] == [0] and figure["data"][1]["y"] == [1]
    assert figure["data"][0]["customdata"][0][1] == "$0.00"
    assert not figure["empty"]
