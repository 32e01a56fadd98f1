"""The quality pages' charts read like their tables (#18): each point's
hover is its value as the tables format it, rates run 0–100 %, counts from
0, and a period without data says so instead of drawing empty axes."""

import datetime as dt
import re

import pytest
from django.urls import reverse

from analytics.tests.test_quality_metrics import world  # noqa: F401 (a fixture)
from core.pages.formats import a_date, display
from usage.tests.test_chart_texts import CHART, EMPTY, assert_readable, charts_of
from usage.tests.test_dashboards import get_page

pytestmark = pytest.mark.django_db

ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

PAGES = {
    reverse("quality:code"): [
        "chart-agents",
        "chart-error-types",
        "chart-models",
        "chart-per-chat",
        "chart-per-day",
    ],
    reverse("quality:feedback"): [
        "chart-distribution",
        "chart-mistakes",
        "chart-per-day",
        "chart-temperature",
    ],
    reverse("quality:activity"): ["chart-sessions", "chart-users", "chart-volume", "chart-weeks"],
    reverse("quality:text_to_sql"): ["chart-per-day", "chart-rows", "chart-time"],
}
# How each chart's values (trace by trace) read on hover.
KINDS = {
    ("code", "chart-per-day"): ("number", "share"),
    ("code", "chart-models"): ("share",),
    ("feedback", "chart-per-day"): ("number", "rating"),
    ("feedback", "chart-temperature"): ("rating",),
    ("feedback", "chart-mistakes"): ("number", "share"),
}


@pytest.fixture
def as_manager(client, manager, world, fixed_today):  # noqa: F811
    client.force_login(manager)
    return client


def _page_key(url):
    return url.rstrip("/").rsplit("/", 1)[-1].replace("text-to-sql", "sql")


@pytest.mark.parametrize("url", list(PAGES))
def test_every_chart_hovers_its_values_as_the_tables_show_them(as_manager, url):
    charts = charts_of(get_page(as_manager, url, period="30d"))
    assert sorted(charts) == PAGES[url]
    for name, figure in charts.items():
        assert_readable(figure)
        kinds = KINDS.get((_page_key(url), name))
        for n, trace in enumerate(figure["data"]):
            horizontal = trace.get("orientation") == "h"
            values = trace["x"] if horizontal else trace["y"]
            shown = [row[-1] for row in trace["customdata"]]
            if name == "chart-sessions" and n == 1:
                # minutes on the axis, the length as a duration on hover
                expected = [display(None if v is None else v * 60, "duration") for v in values]
            elif name == "chart-time":
                expected = [display(None if v is None else v * 1000, "ms") for v in values]
            else:
                kind = kinds[n] if kinds else "number"
                expected = [display(v, kind) for v in values]
            assert shown == expected, (url, name, n)
            if not horizontal and all(ISO_DAY.fullmatch(str(x)) for x in trace["x"]):
                # a day's point names its day as the tables do
                assert [row[0] for row in trace["customdata"]] == [
                    a_date(dt.date.fromisoformat(x)) for x in trace["x"]
                ]


def test_the_success_rate_by_model_runs_from_0_to_100_percent(as_manager):
    figure = charts_of(get_page(as_manager, reverse("quality:code"), period="30d"))["chart-models"]
    assert figure["layout"]["xaxis"]["range"] == [0, 1.02]
    assert figure["layout"]["xaxis"]["tickformat"] == ".0%"
    assert all(0 <= v <= 1 for v in figure["data"][0]["x"] if v is not None)


@pytest.mark.parametrize("url", list(PAGES))
def test_a_period_without_data_says_so(as_manager, url):
    page = get_page(as_manager, url, period="custom", start="2023-01-01", end="2023-01-31")
    assert CHART.findall(page) == []
    assert sorted(EMPTY.findall(page)) == PAGES[url]
