"""The dashboard pages: figures equal usage.metrics, filters in the URL, CSV
exports equal the metrics rows, constant query counts, and access.

"Today" is fixed to 14 March 2024 (conftest.fixed_today) so the presets and
the budgets' month are known; days are cut in UTC unless a test says not.
"""

import csv
import datetime as dt
import html
import io
import json
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from core.pages.formats import csv_value
from core.tests import factories as f
from usage import ledger, metrics
from usage.metrics import Period, Scope
from usage.models import ModelUsage
from usage.templatetags.figures import change, figure

from .conftest import TODAY, utc

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("dashboards:overview")
MODELS = reverse("dashboards:models")
THIRTY_DAYS = Period(dt.date(2024, 2, 14), TODAY)
SEVEN_DAYS = Period(dt.date(2024, 3, 8), TODAY)


@pytest.fixture
def as_manager(client, manager, awkward, fixed_today):
    client.force_login(manager)
    return client


def user_url(user):
    return reverse("dashboards:user", args=[user.pk])


def org_url(org):
    return reverse("dashboards:organization", args=[org.pk])


# -- reading the pages -------------------------------------------------------

FIGURE = re.compile(
    r'id="figure-(\w+)">\s*<div class="figure-label">[^<]*</div>\s*'
    r'<div class="figure-value">([^<]*)</div>\s*<div class="figure-change[^"]*">\s*(.*?)\s*</div>',
    re.S,
)


def _text(fragment):
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def figures_of(page):
    """{figure key: (value as shown, change line as shown)}."""
    return {key: (_text(value), _text(line)) for key, value, line in FIGURE.findall(page)}


def tables_of(page):
    """{table name: [[cell text, …] per body row]} of the dashboard tables."""
    tables = {}
    for section in page.split('<section class="dash-table" id="table-')[1:]:
        name, body = section.split('"', 1)
        body = body.split("</section>", 1)[0]
        tbody = re.search(r"<tbody>(.*?)</tbody>", body, re.S)
        rows = re.findall(r"<tr>(.*?)</tr>", tbody.group(1), re.S) if tbody else []
        tables[name] = [
            [_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows
        ]
    return tables


def chart_of(page, element_id):
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', page)
    return json.loads(found.group(1))


def expected_figures(period, scope):
    return {
        f.key: (
            figure(f.value, f.kind),
            f"{change(f.change)} vs {figure(f.previous, f.kind)}"
            if f.change is not None
            else "no earlier figure",
        )
        for f in metrics.headline(period, scope)
    }


def shown_cost(value, unpriced):
    """A cost cell as the tables show it: flagged with the calls without a
    price it leaves out."""
    return figure(value, "money") + (f" ⚠ {unpriced:,} unpriced" if unpriced else "")


def get_page(client, url, **params):
    response = client.get(url, params)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


# -- the overview ------------------------------------------------------------


def test_overview_shows_the_metrics_figures(as_manager):
    page = get_page(as_manager, OVERVIEW, period="7d")

    figures = figures_of(page)
    assert figures == expected_figures(SEVEN_DAYS, Scope())
    assert figures == {
        "cost": ("$7,800.08", "+26,218,651.7% vs $0.02975"),
        "prompt_tokens": ("600,017,410", "+11,111,333.5% vs 5,400"),
        "completion_tokens": ("400,005,270", "+21,052,808.9% vs 1,900"),
        "requests": ("24", "+700.0% vs 3"),
        "active_users": ("4", "+33.3% vs 3"),
        "cost_per_1k_tokens": ("$0.0078", "+91.4% vs $0.004075"),
        "avg_latency_ms": ("6.85 s", "+1,612.5% vs 400 ms"),
        # nearest rank 21 of 22 is 7,400 ms: the 5,000–7,500 ms bucket
        "p95_latency_ms": ("6.25 s", "+900.0% vs 625 ms"),
        # 1–7 March had no streaming call: no change is claimed against 0
        "streaming_share": ("37.5%", "no earlier figure"),
    }
    assert "8 Mar 2024 – 14 Mar 2024 (7 days)" in page
    assert "Days run from midnight to midnight in <strong>UTC</strong>" in page


def test_overview_charts_are_the_metrics_series(as_manager):
    page = get_page(as_manager, OVERVIEW, period="7d")

    days = [d.isoformat() for d in SEVEN_DAYS.each_day()]
    tokens = chart_of(page, "chart-tokens")["data"]
    assert [trace["name"] for trace in tokens] == ["Input", "Output"]
    assert tokens[0]["x"] == days
    assert tokens[0]["y"] == [600, 7800, 900, 6 * 10**8, 400, 4200, 3510]
    assert tokens[1]["y"] == [600, 1560, 250, 4 * 10**8, 100, 1000, 1760]
    assert [(d.isoformat(), i, o) for d, i, o in metrics.tokens_per_day(SEVEN_DAYS, Scope())] == [
        (d, i, o) for d, i, o in zip(days, tokens[0]["y"], tokens[1]["y"], strict=True)
    ]
    stacked = chart_of(page, "chart-cost-by-model")
    assert stacked["layout"]["barmode"] == "stack"
    by_model = {
        trace["name"]: dict(zip(trace["x"], trace["y"], strict=True)) for trace in stacked["data"]
    }
    assert sorted(by_model) == ["claude-3-5-sonnet", "gpt-4o", "llama-3-70b", "mistral-large"]
    for day, model, cost in metrics.cost_per_day_by_model(SEVEN_DAYS, Scope()):
        assert by_model[model][day.isoformat()] == pytest.approx(float(cost))
    assert by_model["gpt-4o"]["2024-03-09"] == pytest.approx(0.0351)
    assert by_model["claude-3-5-sonnet"]["2024-03-11"] == 7_800
    providers = chart_of(page, "chart-providers")["data"][0]
    assert providers["y"] == ["anthropic", "openai", "azure", "mistral", "groq"]
    assert providers["x"] == pytest.approx([7800.018, 0.053725, 0.0049, 0.002, 0])


def test_overview_tables_link_and_match_metrics(as_manager):
    page = get_page(as_manager, OVERVIEW, period="7d")

    tables = tables_of(page)
    assert list(tables) == [
        "top_users",
        "top_organizations",
        "cost_by_provider",
        "unpriced",
        "budgets",
    ]
    assert tables["top_users"] == [
        [row["label"], figure(row["cost"], "money"), figure(row["tokens"]), str(row["requests"])]
        for row in metrics.top_users(SEVEN_DAYS, Scope())
    ]
    assert tables["top_users"] == [
        ["cat@globex.test", "$7,800.00", "1,000,000,000", "1"],
        ["bob@acme.test", "$0.0371", "14,760", "15"],
        ["ann@acme.test", "$0.01863", "4,020", "3"],
        ["dan@solo.test", "$0.0049", "1,150", "2"],
        # the rows add up to the total (test_reconcile)
        ["Anonymous (no app user)", "$0.018", "2,750", "3"],
    ]
    assert tables["top_organizations"] == [
        ["Globex", "$7,800.02", "1,000,002,000", "3"],
        ["Acme", "$0.05573", "18,780", "18"],
        ["No organisation", "$0.0049", "1,900", "3"],
    ]
    assert tables["unpriced"] == [["llama-3-70b", "groq", "2", "4,450", "13 Mar 2024"]]
    assert tables["cost_by_provider"] == [
        ["anthropic", "$7,800.02"],
        ["openai", "$0.05373"],
        ["azure", "$0.0049"],
        ["mistral", "$0.002"],
        # its two calls have no price: flagged, not read as free
        ["groq", "$0.00 ⚠ 2 unpriced"],
    ]
    # Budgets are month to date (1–14 March), worst first, with the run-rate projection.
    assert tables["budgets"] == [
        ["Globex", "Over", "$7,800.05", "$5,000.00", "$17,271.53", "156.0%"],
        # spent $0.019875 of $0.02, but projected $0.044
        ["ann@acme.test", "At risk", "$0.01988", "$0.02", "$0.04401", "99.4%"],
        ["Acme", "On track", "$0.05798", "$1.00", "$0.1284", "5.8%"],
        ["dan@solo.test", "On track", "$0.0049", "$100.00", "$0.01085", "0.0%"],
    ]
    # Each top row links to its page, keeping the filters.
    section = page.split('id="table-top_users"')[1].split("</section>")[0]
    ids = re.findall(r'<a href="/admin/dashboards/users/(\d+)/\?period=7d">', section)
    top = metrics.top_users(SEVEN_DAYS, Scope())
    assert [int(pk) for pk in ids] == [row["user_id"] for row in top if row["user_id"]]
    assert re.search(r'<a href="/admin/dashboards/organizations/\d+/\?period=7d">Globex</a>', page)


# -- filters in the URL --------------------------------------------------------


def _filter_cases(data):
    """(query, expected period, expected scope, shown cost, shown requests)."""
    return [
        ({"period": "today"}, Period(TODAY, TODAY), Scope(), "$0.03063", "5"),
        ({"period": "7d"}, SEVEN_DAYS, Scope(), "$7,800.08", "24"),
        ({"period": "30d"}, THIRTY_DAYS, Scope(), "$7,800.12", "28"),
        ({"period": "90d"}, Period(dt.date(2023, 12, 16), TODAY), Scope(), "$7,800.14", "29"),
        ({"period": "mtd"}, Period(dt.date(2024, 3, 1), TODAY), Scope(), "$7,800.11", "27"),
        (
            {"period": "custom", "start": "2024-03-09", "end": "2024-03-10"},
            Period(dt.date(2024, 3, 9), dt.date(2024, 3, 10)),
            Scope(),
            "$0.04",
            "14",
        ),
        (
            {"period": "30d", "organization": data.acme.pk},
            THIRTY_DAYS,
            Scope(organization_id=data.acme.pk),
            "$0.06548",
            "21",
        ),
        (
            {"period": "30d", "model": "gpt-4o", "provider": "azure"},
            THIRTY_DAYS,
            Scope(model_name="gpt-4o", provider="azure"),
            "$0.0049",
            "2",
        ),
        (
            {"period": "7d", "source": data.tts.pk},
            SEVEN_DAYS,
            Scope(source_id=data.tts.pk),
            "$7,800.04",
            "10",
        ),
        (
            {"period": "30d", "user": data.ann.pk},
            THIRTY_DAYS,
            Scope(user_id=data.ann.pk),
            "$0.02738",
            "5",
        ),
    ]


def test_overview_filters_in_the_url(as_manager, awkward):
    for query, period, scope, cost, requests in _filter_cases(awkward):
        page = get_page(as_manager, OVERVIEW, **query)
        figures = figures_of(page)
        assert figures == expected_figures(period, scope), query
        assert (figures["cost"][0], figures["requests"][0]) == (cost, requests), query
        shown = f"{period.start:%-d %b %Y} – {period.end:%-d %b %Y} ({period.days} day"
        assert shown in page, query
        tables = tables_of(page)
        assert [row[0] for row in tables["top_users"]] == [
            row["label"] for row in metrics.top_users(period, scope)
        ], query
        # The filter bar keeps the chosen values.
        for name, value in query.items():
            assert re.search(
                rf'name="{name}"[^>]*value="{value}"|value="{value}" selected', page
            ), (query, name)


def test_models_page_every_sort(as_manager):
    for key in metrics.MODEL_COLUMNS:
        for sort in (key, f"-{key}"):
            page = get_page(as_manager, MODELS, period="30d", sort=sort)
            rows = tables_of(page)["models"]
            expected = metrics.models_table(THIRTY_DAYS, Scope(), sort)
            assert [row[:2] for row in rows] == [
                [r["model_name"], r["provider"]] for r in expected
            ], sort
            kinds = [
                ("requests", "number"),
                ("prompt_tokens", "number"),
                ("completion_tokens", "number"),
                ("cached_input_tokens", "number"),
                ("reasoning_tokens", "number"),
                ("cost", "money"),
                ("cost_per_1k_tokens", "money"),
                ("avg_latency_ms", "ms"),
                ("p95_latency_ms", "ms"),
                ("avg_rating", "rating"),
                ("code_success_rate", "share"),
                ("mistake_share", "share"),
            ]
            assert [row[2:] for row in rows] == [
                [
                    shown_cost(r[k], r["unpriced_requests"]) if k == "cost" else figure(r[k], kind)
                    for k, kind in kinds
                ]
                for r in expected
            ], sort
    page = get_page(as_manager, MODELS, period="30d", sort="-cost")
    assert tables_of(page)["models"] == [
        [
            "claude-3-5-sonnet",
            "anthropic",
            "2",
            "600,001,000",
            "400,001,000",
            "600,000,000",
            "400,000,000",
            "$7,800.02",
            "$0.0078",
            "63.75 s",
            "120.00 s",
            "4.00 ★",
            "50.0%",
            "33.3%",
        ],
        [
            "gpt-4o",
            "openai",
            "19",
            "17,110",
            "4,470",
            "1,150",
            "0",
            "$0.08998",
            "$0.004169",
            "1.08 s",
            "6.25 s",
            "2.67 ★",
            "66.7%",
            "50.0%",
        ],
        [
            "gpt-4o",
            "azure",
            "2",
            "900",
            "250",
            "–",  # reported by no call: unknown, not 0
            "–",
            "$0.0049",
            "$0.004261",
            "365 ms",
            "625 ms",
            "2.67 ★",
            "66.7%",
            "50.0%",
        ],
        [
            "mistral-large",
            "mistral",
            "3",
            "1,300",
            "1,000",
            "–",
            "–",
            "$0.003",
            "$0.001304",
            "403 ms",
            "467 ms",
            "–",
            "–",
            "–",
        ],
        [
            "llama-3-70b",
            "groq",
            "2",
            "3,500",
            "950",
            "–",
            "700",
            "$0.00 ⚠ 2 unpriced",  # not free: no price
            "–",
            "4.00 s",
            "4.00 s",
            "–",
            "–",
            "0.0%",
        ],
    ]
    # Column headers link to the toggled sort, keeping the filters.
    assert 'href="?period=30d&amp;sort=cost"' in page
    assert 'href="?period=30d&amp;sort=-requests"' in page


def test_models_page_filters(as_manager, awkward):
    page = get_page(as_manager, MODELS, period="7d", source=awkward.tts.pk, sort="model")

    assert [row[:3] for row in tables_of(page)["models"]] == [
        ["claude-3-5-sonnet", "anthropic", "2"],
        ["gpt-4o", "openai", "7"],  # bob's odd-hour calls and the anonymous free one
        ["llama-3-70b", "groq", "1"],
    ]


@pytest.mark.parametrize("kind", ["user", "organization"])
def test_subject_pages(as_manager, awkward, kind):
    subject = awkward.ann if kind == "user" else awkward.acme
    scope = Scope(user_id=subject.pk) if kind == "user" else Scope(organization_id=subject.pk)
    url = user_url(subject) if kind == "user" else org_url(subject)

    page = get_page(as_manager, url, period="30d")

    assert figures_of(page) == expected_figures(THIRTY_DAYS, scope)
    spend = chart_of(page, "chart-cost")["data"][0]
    assert spend["x"] == [d.isoformat() for d in THIRTY_DAYS.each_day()]
    series = metrics.cost_per_day(THIRTY_DAYS, scope)
    assert spend["y"] == pytest.approx([float(c) for _, c in series])
    tables = tables_of(page)
    assert tables["by_model"] == [
        [r["model_name"], r["provider"], shown_cost(r["cost"], r["unpriced_requests"])]
        + [figure(r["tokens"]), figure(r["requests"])]
        for r in metrics.model_rows(THIRTY_DAYS, scope)
    ]
    assert "Ann&#x27;s sales" in page  # their chats
    assert "Cat&#x27;s churn" not in page
    assert '<td class="rating">5 ★</td>' in page  # the feedback they gave
    assert '<td class="rating">4 ★</td>' not in page  # cat's
    if kind == "user":
        assert figures_of(page)["cost"][0] == "$0.02738"
        assert tables["by_model"] == [["gpt-4o", "openai", "$0.02738", "5,720", "5"]]
        assert tables["budgets"] == [
            ["ann@acme.test", "At risk", "$0.01988", "$0.02", "$0.04401", "99.4%"]
        ]
    else:
        assert figures_of(page)["cost"][0] == "$0.06548"
        assert figures_of(page)["active_users"][0] == "2"
        assert tables["by_model"][0] == ["gpt-4o", "openai", "$0.06248", "15,080", "17"]
        assert tables["budgets"] == [["Acme", "On track", "$0.05798", "$1.00", "$0.1284", "5.8%"]]


def test_subject_page_filters_narrow_the_subject(as_manager, awkward):
    page = get_page(as_manager, org_url(awkward.acme), period="30d", model="mistral-large")

    assert figures_of(page) == expected_figures(
        THIRTY_DAYS, Scope(organization_id=awkward.acme.pk, model_name="mistral-large")
    )
    assert figures_of(page)["requests"][0] == "3"
    assert tables_of(page)["by_model"] == [["mistral-large", "mistral", "$0.003", "2,300", "3"]]


def test_unknown_subject_is_404(as_manager):
    assert as_manager.get(reverse("dashboards:user", args=[999_999])).status_code == 404
    assert as_manager.get(reverse("dashboards:organization", args=[999_999])).status_code == 404


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            {"period": "custom", "start": "2024-03-10", "end": "2024-03-01"},
            "The end date is before the start date.",
        ),
        (
            {"period": "custom", "start": "2024-03-10"},
            "A custom range needs a start and an end date.",
        ),
        (
            {"period": "custom", "start": "2020-01-01", "end": "2024-03-01"},
            "A custom range may span at most three years.",
        ),
        ({"period": "custom", "start": "2024-13-45", "end": "2024-03-01"}, "Enter a valid date."),
        ({"period": "yesterday"}, "Select a valid choice."),
    ],
)
def test_bad_filter_shows_an_error_not_a_500(as_manager, awkward, query, message):
    for url in (OVERVIEW, MODELS, user_url(awkward.ann), org_url(awkward.acme)):
        page = get_page(as_manager, url, **query)
        assert '<ul class="errorlist">' in page, url
        assert message in html.unescape(page), url
        # The page falls back to the last 30 days.
        assert "14 Feb 2024 – 14 Mar 2024 (30 days)" in page, url


# Custom ranges the date arithmetic cannot take (year 1: the period before
# it; year 9999: the day after it) or no data can lie in: refused with a
# form error, never a 500, on pages and their exports alike.
OUT_OF_RANGE = [
    ("0001-01-01", "0001-01-31"),
    ("9999-12-01", "9999-12-31"),
    ("0001-01-01", "9999-12-31"),
    ("1999-12-31", "2000-01-05"),
    ("2025-03-10", "2025-03-15"),  # past a year after today (14 Mar 2024)
]
OUT_OF_RANGE_MESSAGE = "Dates must lie between 2000-01-01 and 2025-03-14."


@pytest.mark.parametrize(("start", "end"), OUT_OF_RANGE)
def test_custom_periods_out_of_range_are_a_form_error(as_manager, awkward, start, end):
    query = {"period": "custom", "start": start, "end": end}
    for url in (OVERVIEW, MODELS, user_url(awkward.ann), org_url(awkward.acme)):
        page = get_page(as_manager, url, **query)
        assert OUT_OF_RANGE_MESSAGE in html.unescape(page), url
        assert "14 Feb 2024 – 14 Mar 2024 (30 days)" in page, url
    response = as_manager.get(OVERVIEW, {**query, "export": "top_users"})
    assert response.status_code == 200


def test_the_custom_range_bounds_are_inclusive(as_manager, awkward):
    page = get_page(as_manager, OVERVIEW, period="custom", start="2000-01-01", end="2000-01-31")
    assert "errorlist" not in page
    page = get_page(as_manager, OVERVIEW, period="custom", start="2025-03-01", end="2025-03-14")
    assert "errorlist" not in page


def test_days_are_cut_in_the_zone_shown(client, manager, fixed_today, settings):
    settings.TIME_ZONE = "America/New_York"
    # 02:00 UTC on 15 March is 22:00 on 14 March in New York (EDT).
    ledger.add_usage(
        [
            ModelUsage(
                model_name="gpt-4o",
                provider="openai",
                cost=Decimal("1.5"),
                timestamp=utc(2024, 3, 15, 2),
            )
        ]
    )
    client.force_login(manager)

    page = get_page(client, OVERVIEW, period="today")

    assert "Days run from midnight to midnight in <strong>America/New_York</strong>" in page
    assert figures_of(page)["cost"][0] == "$1.50"
    assert figures_of(page)["requests"][0] == "1"


def test_tiny_costs_read_in_full(client, manager, fixed_today, time_zone):
    # One cheap call: $0.00000015 (8 places, as stored).
    ledger.add_usage(
        [
            ModelUsage(
                model_name="gpt-4o-mini",
                provider="openai",
                cost=Decimal("0.00000015"),
                prompt_tokens=1,
                timestamp=utc(2024, 3, 14, 12),
            )
        ]
    )
    client.force_login(manager)

    page = get_page(client, OVERVIEW, period="today")

    assert figures_of(page)["cost"][0] == "$0.00000015"
    assert figures_of(page)["cost_per_1k_tokens"][0] == "$0.00015"


# -- CSV exports ---------------------------------------------------------------


def _csv(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def _read(text, like):
    """A CSV cell parsed as the type of the metrics value it came from."""
    if like is None:
        return None if text == "" else text
    if isinstance(like, Decimal):
        return Decimal(text)
    if isinstance(like, bool | int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


def assert_csv_rows(rows, expected_rows, header, kinds):
    """CSV rows equal the metrics' rows rounded as core.pages.formats says
    for each column's kind."""
    assert rows[0] == header
    body = rows[1:]
    assert len(body) == len(expected_rows)
    for got, want in zip(body, expected_rows, strict=True):
        want = [csv_value(value, kind) for value, kind in zip(want, kinds, strict=True)]
        assert [_read(text, like) for text, like in zip(got, want, strict=True)] == want


def _budget_rows(statuses):
    return [
        [
            str(s.budget.organization or s.budget.user),
            {"over": "Over", "at risk": "At risk", "on track": "On track"}[s.state],
            s.spent,
            s.budget.monthly_limit,
            s.projected,
            s.share,
        ]
        for s in statuses
    ]


SPEND = ["Cost (USD)", "Tokens", "Requests"]
SPEND_KINDS = ["money", "number", "number"]
BUDGET_HEADER = [
    "Budget for",
    "Status",
    "Spent this month (USD)",
    "Monthly limit (USD)",
    "Projected month end (USD)",
    "Share used (%)",
]
BUDGET_KINDS = ["text", "state", "money", "money", "money", "share"]
MODEL_HEADER = [
    "Model",
    "Provider",
    "Requests",
    "Input tokens",
    "Output tokens",
    "Cached input tokens",
    "Reasoning tokens",
    "Cost (USD)",
    "Unpriced requests",
    "Cost / 1k tokens (USD)",
    "Avg latency (ms)",
    "p95 latency (ms)",
    "Avg rating",
    "Code success (%)",
    "Flagged mistakes (%)",
]
MODEL_KINDS = [
    "text",
    "text",
    "number",
    "number",
    "number",
    "number",
    "number",
    "money",
    "number",
    "money",
    "ms",
    "ms",
    "rating",
    "share",
    "share",
]
MODEL_FIELDS = [
    "model_name",
    "provider",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost",
    "unpriced_requests",
    "cost_per_1k_tokens",
    "avg_latency_ms",
    "p95_latency_ms",
    "avg_rating",
    "code_success_rate",
    "mistake_share",
]


def test_overview_exports_equal_metrics_with_the_filters(as_manager, awkward):
    for query, period, scope, _, _ in _filter_cases(awkward):

        def export(name, query=query, period=period):
            response = as_manager.get(OVERVIEW, {**query, "export": name})
            assert response["Content-Disposition"] == (
                f'attachment; filename="usage-overview-{name}-{period.start}-to-{period.end}.csv"'
            )
            return _csv(response)

        assert_csv_rows(
            export("top_users"),
            [
                [r["label"], r["cost"], r["tokens"], r["requests"]]
                for r in metrics.top_users(period, scope)
            ],
            ["App user", *SPEND],
            ["text", *SPEND_KINDS],
        )
        assert_csv_rows(
            export("top_organizations"),
            [
                [r["label"], r["cost"], r["tokens"], r["requests"]]
                for r in metrics.top_organizations(period, scope)
            ],
            ["Organisation", *SPEND],
            ["text", *SPEND_KINDS],
        )
        assert_csv_rows(
            export("cost_by_provider"),
            [
                [r["provider"], r["cost"], r["unpriced_requests"]]
                for r in metrics.provider_rows(period, scope)
            ],
            ["Provider", "Cost (USD)", "Unpriced requests"],
            ["text", "money", "number"],
        )
        assert_csv_rows(
            export("budgets"),
            _budget_rows(metrics.budget_statuses(scope=scope)),
            BUDGET_HEADER,
            BUDGET_KINDS,
        )
    rows = _csv(as_manager.get(OVERVIEW, {"period": "7d", "export": "cost_by_provider"}))
    assert [(p, Decimal(c), int(n)) for p, c, n in rows[1:]] == [
        ("anthropic", Decimal("7800.018"), 0),
        ("openai", Decimal("0.053725"), 0),
        ("azure", Decimal("0.0049"), 0),
        ("mistral", Decimal("0.002"), 0),
        # groq's $0 is two calls without a price, not free calls
        ("groq", Decimal("0"), 2),
    ]


def test_models_export_equals_metrics_for_each_sort(as_manager, awkward):
    for sort in ("-cost", "model", "-p95", "rating"):
        for query, period, scope, _, _ in _filter_cases(awkward):
            response = as_manager.get(MODELS, {**query, "sort": sort, "export": "models"})
            assert response["Content-Disposition"] == (
                f'attachment; filename="usage-models-models-{period.start}-to-{period.end}.csv"'
            )
            assert_csv_rows(
                _csv(response),
                [[r[k] for k in MODEL_FIELDS] for r in metrics.models_table(period, scope, sort)],
                MODEL_HEADER,
                MODEL_KINDS,
            )
    rows = _csv(as_manager.get(MODELS, {"period": "30d", "export": "models"}))
    # Rounded: money to 8 places; cached input reported by no call (empty),
    # reasoning 700; no latency reported.
    assert rows[-1][:9] == [
        "llama-3-70b",
        "groq",
        "2",
        "3500",
        "950",
        "",
        "700",
        "0.00000000",
        "2",
    ]


@pytest.mark.parametrize("kind", ["user", "organization"])
def test_subject_exports_equal_metrics(as_manager, awkward, kind):
    subject = awkward.ann if kind == "user" else awkward.globex
    field = "user_id" if kind == "user" else "organization_id"
    url = user_url(subject) if kind == "user" else org_url(subject)
    for query, period, scope, _, _ in _filter_cases(awkward):
        scope = Scope(**{**scope.lookups(), field: subject.pk})
        response = as_manager.get(url, {**query, "export": "by_model"})
        assert response["Content-Disposition"] == (
            f'attachment; filename="usage-{field}-{subject.pk}-by_model-'
            f'{period.start}-to-{period.end}.csv"'
        )
        assert_csv_rows(
            _csv(response),
            [[r[k] for k in metrics.MODEL_SPEND] for r in metrics.model_rows(period, scope)],
            ["Model", "Provider", *SPEND, "Unpriced requests"],
            ["text", "text", *SPEND_KINDS, "number"],
        )
        assert_csv_rows(
            _csv(as_manager.get(url, {**query, "export": "budgets"})),
            _budget_rows(metrics.budget_statuses(scope=scope)),
            BUDGET_HEADER,
            BUDGET_KINDS,
        )
    rows = _csv(as_manager.get(url, {"period": "30d", "export": "budgets"}))
    assert len(rows) == 2
    assert rows[1][0] == ("ann@acme.test" if kind == "user" else "Globex")
    assert rows[1][1] == ("At risk" if kind == "user" else "Over")


# -- query counts ------------------------------------------------------------


@pytest.fixture(params=["awkward", "awkward and many more rows"])
def data(request, awkward):
    """The awkward ledger, and the same plus ten times the rows, users,
    organisations, models, chats, feedback, executions and budgets."""
    if request.param == "awkward":
        return awkward
    orgs = f.OrganizationFactory.create_batch(5)
    users = [f.AppUserFactory(organization=orgs[n % 5]) for n in range(40)]
    rows = []
    for n in range(400):
        user = users[n % 40] if n % 7 else None
        rows.append(
            ModelUsage(
                user=user,
                chat=None,
                organization=orgs[n % 5] if user is None else None,
                model_name=f"model-{n % 9}",
                provider=f"provider-{n % 4}",
                prompt_tokens=100 + n,
                completion_tokens=n,
                cost=Decimal(n) / 1000,
                timestamp=utc(2024, 3, 14, 12) - dt.timedelta(hours=5 * n),
                request_time_ms=n * 37 if n % 5 else None,
                is_streaming=bool(n % 2),
            )
        )
    ledger.add_usage(rows)
    for n, user in enumerate(users[:25]):
        chat = f.ChatFactory(user=awkward.ann if n < 5 else user, organization=awkward.acme)
        answer = f.MessageFactory(
            chat=chat,
            role="assistant",
            model_name=f"model-{n % 9}",
            created_at=utc(2024, 3, 10, n % 24),
        )
        f.MessageFeedbackFactory(
            message=answer,
            rating=1 + n % 5,
            model_name=f"model-{n % 9}",
            created_at=utc(2024, 3, 10, n % 24),
        )
        f.CodeExecutionFactory(
            message=answer, model_name=f"model-{n % 9}", created_at=utc(2024, 3, 10, n % 24)
        )
        f.BudgetFactory(organization=None, user=user, monthly_limit=Decimal(n + 1))
    for org in orgs:
        f.BudgetFactory(organization=org, monthly_limit=Decimal("10.00"))
    return awkward


# Every page starts with the same four queries of an admin request: the
# session, the staff account, its own permissions, its groups' permissions.
# The filter bar reads two "choices" (the distinct models and providers of the
# roll-up) and renders two "selects" (organisations, sources).
ADMIN_REQUEST = 4


def test_query_counts_do_not_grow_with_rows(
    client, manager, data, fixed_today, django_assert_num_queries
):
    client.force_login(manager)
    # Overview: filter-bar choices (2); the providers chart (1); headline
    # totals now and before, each 3: sums, active and top users (one query),
    # latency histogram (6); cost per day by model (1); tokens per day (1);
    # the top users' labels (1: the users came with the active users); top
    # organisations and their names (2); the providers table (0: the chart's
    # figures); budgets, their organisations' and users' spend (3), the
    # organisations without a budget (1); the unpriced calls per model (1);
    # the two selects (2).
    with django_assert_num_queries(ADMIN_REQUEST + 21):
        assert client.get(OVERVIEW, {"period": "30d"}).status_code == 200
    # Models: filter-bar choices (2); roll-up sums per model (1); latency
    # histograms per model (1); ratings, code executions, mistakes (3); selects (2);
    # quality from reviews (usage.review_metrics, 5, whatever the rows): error
    # rates by model and by source, judged answers, their categories, and the
    # reviewed chats per model and month for the cost per good answer; the
    # what-if form's models (1: the prices in force today); the unpriced calls
    # of the period, for the warning above the table (1, through the partial
    # index of unpriced rows: the roll-ups count them but not their tokens).
    with django_assert_num_queries(ADMIN_REQUEST + 16):
        assert client.get(MODELS, {"period": "30d", "sort": "-p95"}).status_code == 200
    # App user: the app user (1); choices (2); headline (6); cost per day (1);
    # cost by model (1); budget and the user's spend (2); selects (2); latest
    # chats (1) and feedback (1), each joined to what the table shows; the
    # per-day table (1); the unpriced calls for the warning (1, as on the
    # models page).
    with django_assert_num_queries(ADMIN_REQUEST + 19):
        assert client.get(user_url(data.ann), {"period": "30d"}).status_code == 200
    # Organisation: as the app user's page, the budget spend by organisation,
    # and its app users (their sums and their names: 2).
    with django_assert_num_queries(ADMIN_REQUEST + 21):
        assert client.get(org_url(data.acme), {"period": "30d"}).status_code == 200
    # An export computes only its own table: here the filter-bar choices (2),
    # which validate the request, the top users (1), their labels (1) and the
    # total their rows add up to (1); no headline, chart or other table.
    with django_assert_num_queries(ADMIN_REQUEST + 5):
        response = client.get(OVERVIEW, {"period": "30d", "export": "top_users"})
        b"".join(response.streaming_content)
    # Models export: choices (2) and the models table (5).
    with django_assert_num_queries(ADMIN_REQUEST + 7):
        response = client.get(MODELS, {"period": "30d", "export": "models"})
        b"".join(response.streaming_content)


# -- access ------------------------------------------------------------------


def _pages(data):
    return [OVERVIEW, MODELS, user_url(data.ann), org_url(data.acme)]


def _exports(data):
    return [
        *(
            f"{OVERVIEW}?export={name}"
            for name in ("top_users", "top_organizations", "cost_by_provider", "budgets")
        ),
        f"{MODELS}?export=models",
        *(f"{user_url(data.ann)}?export={name}" for name in ("by_model", "budgets")),
        *(f"{org_url(data.acme)}?export={name}" for name in ("by_model", "budgets")),
    ]


def test_staff_get_403_from_every_page_and_export(client, staff, awkward):
    client.force_login(staff)
    for url in _pages(awkward) + _exports(awkward):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"7800.0" not in response.content


def test_anonymous_is_sent_to_the_login_page(client, awkward):
    for url in _pages(awkward) + _exports(awkward):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next=/admin/dashboards/"), url


def test_manager_without_export_right_sees_pages_but_no_exports(
    client, manager_without_export, awkward, fixed_today
):
    client.force_login(manager_without_export)
    for url in _pages(awkward):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b'class="export"' not in response.content, url
    for url in _exports(awkward):
        assert client.get(url).status_code == 403, url


def test_managers_and_admins_get_the_pages_and_exports(client, manager, awkward, fixed_today):
    for account in (manager, f.UserFactory(groups=["Admins"])):
        client.force_login(account)
        for url in _pages(awkward):
            response = client.get(url)
            assert response.status_code == 200, url
            assert b'class="export"' in response.content, url
        for url in _exports(awkward):
            assert client.get(url).status_code == 200, url
