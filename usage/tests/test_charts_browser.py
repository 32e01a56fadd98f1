"""The charts and tables in a real browser (Debian's Chromium through
Playwright), at 1440 and 390 px (#18): every model of the stacked chart in
its own colour, the same colour on the model's page, the legend showing all
of them; a click on a model's bar opens its ledger rows of that day; the key
columns visible or behind a visible cue; the reconciled rows add up to the
headline. Screenshots: test-artifacts/charts-*.png.
"""

import datetime as dt
import random
import re
from decimal import Decimal

import pytest

from conftest import ARTIFACTS
from core.pages.palette import PALETTE
from usage import ledger, metrics
from usage.metrics import Period, Scope
from usage.models import ModelUsage

from .conftest import PASSWORD, TODAY
from .test_dashboard_browser import _role_groups, month_of_usage  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

WIDTHS = [1440, 390]
# 12 more models (16 in all), some with long names: the legend must wrap.
EXTRA = [
    (f"{name}", provider)
    for name, provider in [
        ("o3-mini", "openai"),
        ("gemini-2.0-flash", "google"),
        ("gemini-1.5-pro", "google"),
        ("gemma2-9b-it", "groq"),
        ("mixtral-8x7b-32768", "groq"),
        ("deepseek-r1-distill-llama-70b", "groq"),
        ("claude-3-haiku", "anthropic"),
        ("command-r-plus", "cohere"),
        ("mistral-large", "mistral"),
        ("qwen-2.5-72b", "together"),
        ("llama-3.1-8b-instant", "groq"),
        ("gpt-4.1", "openai"),
    ]
]


@pytest.fixture
def many_models(month_of_usage):  # noqa: F811
    rng = random.Random(18)
    rows = []
    for back in range(30):
        day = TODAY - dt.timedelta(days=back)
        for model, provider in EXTRA:
            if rng.random() < 0.6:
                rows.append(
                    ModelUsage(
                        model_name=model,
                        provider=provider,
                        prompt_tokens=rng.randint(500, 5000),
                        completion_tokens=rng.randint(100, 500),
                        cost=Decimal(rng.randint(1, 90_000)) / 100_000,
                        timestamp=dt.datetime.combine(day, dt.time(rng.randint(0, 23)), dt.UTC),
                        request_time_ms=rng.randint(200, 4000),
                    )
                )
    ledger.add_usage(rows)
    return rows


@pytest.fixture(params=WIDTHS)
def width(request):
    return request.param


@pytest.fixture
def sized(browser, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def _drawn(page, chart):
    page.wait_for_function(
        f"document.querySelector('[data-chart={chart}]') && "
        f"document.querySelector('[data-chart={chart}]').dataset.drawn === 'true'",
        timeout=20_000,
    )


def _bar_colours(page, chart):
    """{trace name: the fill of its bars} as drawn."""
    return page.evaluate(
        """chart => {
          const el = document.querySelector(`[data-chart=${chart}]`);
          const out = {};
          el.querySelectorAll('.barlayer .trace').forEach((trace, n) => {
            const path = trace.querySelector('.point path');
            if (path) out[el.data[n].name] = getComputedStyle(path).fill;
          });
          return out;
        }""",
        chart,
    )


def _rgb(hex_colour):
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_each_model_has_one_colour_on_both_pages_and_a_visible_legend(
    live_server, sized, login, screenshot, manager, many_models, width
):
    page = sized
    login(page, "manager", PASSWORD)
    page.goto(f"{live_server.url}/admin/dashboards/?period=30d")
    _drawn(page, "chart-cost-by-model")
    names = sorted(metrics.model_names())
    assert len(names) == 16
    expected = {name: _rgb(PALETTE[n]) for n, name in enumerate(names)}
    drawn = _bar_colours(page, "chart-cost-by-model")
    assert drawn == expected
    assert len(set(drawn.values())) == 16
    # Every legend entry is drawn inside the chart, none scrolled away.
    legend = page.evaluate(
        """() => {
          const el = document.querySelector('[data-chart=chart-cost-by-model]');
          const box = el.getBoundingClientRect();
          const items = [...el.querySelectorAll('.legend .traces')]
            .map(t => t.getBoundingClientRect());
          const bar = el.querySelector('.legend .scrollbar');
          return {
            count: items.length,
            scrollbar: !!bar && Number(bar.getAttribute('height') || 0) > 0,
            inside: items.every(
              r => r.top >= box.top && r.bottom <= box.bottom + 1 && r.right <= box.right + 1
            ),
          };
        }"""
    )
    assert legend == {"count": 16, "scrollbar": False, "inside": True}
    screenshot(page, f"charts-overview-{width}")
    # the chart alone, at its own size, to read its legend
    page.locator("#section-chart-cost-by-model").screenshot(
        path=str(ARTIFACTS / f"charts-stacked-{width}.png")
    )

    for model_name, provider in (("gpt-4o", "openai"), ("gemma2-9b-it", "groq")):
        page.goto(f"{live_server.url}/admin/dashboards/models/{provider}/{model_name}/?period=30d")
        _drawn(page, "chart-per-day")
        assert _bar_colours(page, "chart-per-day")["Cost"] == expected[model_name], model_name
    screenshot(page, f"charts-model-{width}")


def test_a_click_on_a_model_s_bar_opens_its_rows_of_that_day(
    live_server, sized, login, manager, many_models, width
):
    page = sized
    login(page, "manager", PASSWORD)
    page.goto(f"{live_server.url}/admin/dashboards/?period=7d")
    _drawn(page, "chart-cost-by-model")
    page.wait_for_function(
        "document.querySelector('[data-chart=chart-cost-by-model]').classList.contains('drillable')"
    )
    # the tallest segment of the stacked bars: a model's dearest day
    target = page.evaluate(
        """() => {
          const el = document.querySelector('[data-chart=chart-cost-by-model]');
          let best = {y: -1};
          el.data.forEach((trace, n) => trace.y.forEach((y, index) => {
            if (y > best.y) best = {y, n, index, name: trace.name, day: trace.x[index]};
          }));
          return best;
        }"""
    )
    bar = (
        page.locator("[data-chart=chart-cost-by-model] .barlayer .trace")
        .nth(target["n"])
        .locator(".point")
        .nth(target["index"])
    )
    bar.scroll_into_view_if_needed()
    box = bar.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.wait_for_timeout(200)
    page.mouse.click(x, y)
    page.wait_for_url(re.compile(r"/admin/usage/modelusage/\?"), timeout=10_000)
    assert f"timestamp_day={target['day']}" in page.url
    assert f"model_name={target['name']}" in page.url
    day = dt.date.fromisoformat(target["day"])
    start, end = Period(day, day).local_bounds()
    expected = ModelUsage.objects.filter(
        timestamp__gte=start, timestamp__lt=end, model_name=target["name"]
    ).count()
    assert expected > 0
    assert page.locator("#result_list tbody tr").count() == expected


def _column_state(page, table, header):
    """Whether a table's column is in sight, or behind a visible cue: its
    box scrolls, says so (a scrollbar that takes room, or a line), and the
    first column stays."""
    return page.evaluate(
        """([table, header]) => {
          const section = document.getElementById(`table-${table}`);
          const th = [...section.querySelectorAll('th')].find(t => t.textContent.trim() === header);
          const r = th.getBoundingClientRect();
          const first = section.querySelector('tbody td');
          const cue = section.querySelector('.scroll-cue');
          return {
            visible: r.left >= 0 && r.right <= window.innerWidth,
            scrolls: section.scrollWidth > section.clientWidth,
            // a scrollbar that takes room, or the line saying the table scrolls
            cue: section.offsetHeight - section.clientHeight > 0
              || (!!cue && cue.offsetParent !== null && cue.getBoundingClientRect().height > 0),
            sticky: getComputedStyle(first).position === 'sticky',
          };
        }""",
        [table, header],
    )


def test_key_columns_are_visible_or_cued_and_the_rows_add_up(
    live_server, sized, login, screenshot, manager, many_models, width
):
    page = sized
    login(page, "manager", PASSWORD)
    page.goto(f"{live_server.url}/admin/dashboards/models/?period=30d")
    screenshot(page, f"charts-models-{width}")
    headers = ("Model", "Cost", "Code success", "Flagged mistakes")
    if width == 1440:
        # at full width the money is in sight without scrolling
        assert _column_state(page, "models", "Cost")["visible"]
    for header in headers:
        state = _column_state(page, "models", header)
        assert state["visible"] or (state["scrolls"] and state["cue"] and state["sticky"]), (
            header,
            state,
        )
    screenshot(page, f"charts-models-{width}")

    page.goto(f"{live_server.url}/admin/dashboards/?period=30d")
    _drawn(page, "chart-cost-by-model")
    state = _column_state(page, "top_users", "Cost")
    assert state["visible"] or (state["scrolls"] and state["cue"] and state["sticky"])
    period = Period(TODAY - dt.timedelta(days=29), TODAY)
    total = metrics.totals(period, Scope())
    for table in ("top_users", "top_organizations"):
        requests = page.locator(f"#table-{table} tbody tr td:nth-child(4)").all_inner_texts()
        assert sum(int(n.replace(",", "")) for n in requests) == total["requests"], table
        tokens = page.locator(f"#table-{table} tbody tr td:nth-child(3)").all_inner_texts()
        assert sum(int(n.replace(",", "")) for n in tokens) == total["total_tokens"], table
    shown = page.locator("#figure-requests .figure-value").inner_text()
    assert shown == f"{total['requests']:,}"
    screenshot(page, f"charts-overview-tables-{width}")
