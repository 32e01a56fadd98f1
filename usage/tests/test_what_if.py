"""The models page's what-if (#20): what the period would have cost on a
model of the price book, per organisation and per app user, at the model's
price in force today.

Every figure is checked against plain SQL over the raw ledger rows (SUM of
the tokens per organisation or app user in the period's local days, times
the price) on the awkward ledger (anonymous rows, rows without an
organisation, zero tokens, 10^9 tokens in one call, calls at 23:59:59 and
00:00:00, days cut in UTC and in New York); the rows add up to the total;
the form refuses what is not priced; the page's query count is pinned.
"""

import csv
import datetime as dt
import html
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from core.pages import formats
from core.tests import factories as f
from usage import metrics, tables
from usage.forms import WhatIfForm
from usage.metrics import Period, Scope
from usage.models import ModelPrice
from usage.templatetags.figures import change, figure

from .conftest import TODAY
from .test_dashboards import (  # noqa: F401 (fixture)
    ADMIN_REQUEST,
    data,
    get_page,
    shown_cost,
    tables_of,
)
from .test_metrics import COST_SUM, Raw, _sql, cost_sum

pytestmark = pytest.mark.django_db

MODELS = reverse("dashboards:models")
THIRTY_DAYS = Period(dt.date(2024, 2, 14), TODAY)
PERIODS = [
    THIRTY_DAYS,
    Period(dt.date(2024, 3, 8), TODAY),  # 7 days
    Period(TODAY, TODAY),  # one day: the 23:59:59 / 00:00:00 edge
    Period(dt.date(2024, 3, 11), dt.date(2024, 3, 11)),  # the 10^9-token call
    Period(dt.date(2024, 2, 1), dt.date(2024, 3, 31)),  # whole months and their days
]
GROUPS = ("organization_id", "user_id")
O1 = "openai/o1"


@pytest.fixture(params=["UTC", "America/New_York"])
def time_zone(request, settings):
    settings.TIME_ZONE = request.param
    return request.param


@pytest.fixture
def prices(awkward):
    """o1 with an old and a current price (the current one is used, with
    cached input and reasoning priced apart), and gpt-5 priced only from a
    day after today (not offered)."""
    for effective, rates, parts in (
        (dt.date(2024, 1, 1), ("15", "60"), (None, None)),
        (TODAY, ("10.5", "42.25"), (Decimal("2.625"), Decimal("50"))),
    ):
        f.ModelPriceFactory(
            model_name="o1",
            provider="openai",
            input_per_million=Decimal(rates[0]),
            output_per_million=Decimal(rates[1]),
            cached_input_per_million=parts[0],
            reasoning_per_million=parts[1],
            effective_from=effective,
        )
    f.ModelPriceFactory(
        model_name="gpt-5",
        provider="openai",
        input_per_million=Decimal("1"),
        output_per_million=Decimal("2"),
        effective_from=TODAY + dt.timedelta(days=1),
    )
    return metrics.prices_in_force(TODAY)


def raw_what_if(zone, period, scope, by, price):
    """{<by> value: {requests, tokens, cost, …, what_if_cost}} from the raw
    ledger rows: SUM per group in the period's local days, × the price."""
    raw = Raw(zone)
    where, params = raw.where(period, scope)
    rows = _sql(
        f"""
        SELECT u.{by}, COUNT(*), COALESCE(SUM(u.prompt_tokens), 0),
               COALESCE(SUM(u.completion_tokens), 0), SUM(u.cached_input_tokens),
               SUM(u.reasoning_tokens), {COST_SUM}, COUNT(*) - COUNT(u.cost)
        FROM usage_modelusage u WHERE {where} GROUP BY u.{by}
        """,
        params,
    )
    found = {}
    for key, n, prompt, completion, cached, reasoning, total_cost, unpriced in rows:
        # Cached input and reasoning tokens at their own prices, the rest of
        # the input and output at the input and output prices.
        cached_price = price.cached_input_per_million
        reasoning_price = price.reasoning_per_million
        billed_cached = Decimal(cached or 0) if cached_price is not None else Decimal(0)
        billed_reasoning = Decimal(reasoning or 0) if reasoning_price is not None else Decimal(0)
        what_if = (
            (Decimal(prompt) - billed_cached) * price.input_per_million
            + billed_cached * (cached_price or 0)
            + (Decimal(completion) - billed_reasoning) * price.output_per_million
            + billed_reasoning * (reasoning_price or 0)
        ) / 1_000_000
        found[key] = {
            "requests": n,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cached_input_tokens": cached or 0,
            "reasoning_tokens": reasoning or 0,
            "cost": cost_sum(total_cost),
            "unpriced_requests": unpriced,
            "what_if_cost": what_if,
            "difference": what_if - cost_sum(total_cost),
        }
    return found


def figures_of(rows, by):
    return {
        row[by]: {key: row[key] for key in (*metrics.WHAT_IF_SUMS, "what_if_cost", "difference")}
        for row in rows
    }


def scopes(awkward):
    return [
        Scope(),
        Scope(organization_id=awkward.globex.pk),
        Scope(user_id=awkward.ann.pk),
        Scope(model_name="gpt-4o"),
        Scope(provider="azure"),
        Scope(source_id=awkward.tts.pk),
    ]


# -- the figures -------------------------------------------------------------


def test_the_price_in_force_today_is_offered(awkward, prices):
    assert {key: (p.input_per_million, p.output_per_million) for key, p in prices.items()} == {
        "anthropic/claude-3-5-sonnet": (Decimal("3"), Decimal("15")),
        "openai/gpt-4o": (Decimal("2.5"), Decimal("10")),
        "openai/o1": (Decimal("10.5"), Decimal("42.25")),
    }
    assert prices[O1].effective_from == TODAY
    # A day earlier, o1's first price was in force.
    earlier = metrics.prices_in_force(TODAY - dt.timedelta(days=1))
    assert earlier[O1].input_per_million == Decimal("15")


def test_what_if_equals_plain_sql_on_the_raw_ledger(time_zone, awkward, prices):
    checked = 0
    for price in (prices[O1], prices["openai/gpt-4o"]):
        for period in PERIODS:
            for scope in scopes(awkward):
                for by in GROUPS:
                    expected = raw_what_if(time_zone, period, scope, by, price)
                    rows = metrics.what_if(period, scope, price, by)
                    assert figures_of(rows, by) == expected, (period, scope, by)
                    with metrics.reading_from(metrics.LedgerReader()):
                        from_ledger = metrics.what_if(period, scope, price, by)
                    assert figures_of(from_ledger, by) == expected
                    checked += len(rows)
    assert checked > 100


def test_the_awkward_rows_are_there_and_add_up(time_zone, awkward, prices):
    price = prices[O1]
    by_org = metrics.what_if(THIRTY_DAYS, Scope(), price, "organization_id")
    by_user = metrics.what_if(THIRTY_DAYS, Scope(), price, "user_id")

    org_labels = {row["organization_id"]: row["label"] for row in by_org}
    user_labels = {row["user_id"]: row["label"] for row in by_user}
    assert org_labels[None] == "No organisation"  # dan's, and the llama call
    assert org_labels[awkward.acme.pk] == "Acme"
    assert user_labels[None] == "Anonymous"
    assert user_labels[awkward.dan.pk] == "dan@solo.test"
    # cat's 10^9-token claude call: 6·10^8 in, all cached ($2.625 a million,
    # not $10.50), and 4·10^8 out, all reasoning ($50 a million, not $42.25)
    cat = next(row for row in by_user if row["user_id"] == awkward.cat.pk)
    assert cat["prompt_tokens"] >= 6 * 10**8
    assert cat["cached_input_tokens"] >= 6 * 10**8
    assert Decimal(1575 + 20000) <= cat["what_if_cost"] < Decimal(1575 + 20000 + 1)
    # The dearest on o1 first.
    assert [row["what_if_cost"] for row in by_user] == sorted(
        (row["what_if_cost"] for row in by_user), reverse=True
    )

    total = metrics.what_if_total(by_org, price)
    for rows in (by_org, by_user):
        for name in ("requests", "prompt_tokens", "completion_tokens", "cost", "what_if_cost"):
            assert sum(row[name] for row in rows) == total[name], name
    # The raw rows' total: the period's tokens summed in SQL, × the price.
    raw = Raw(time_zone)
    where, params = raw.where(THIRTY_DAYS, Scope())
    ((n, prompt, completion, cached, reasoning, total_cost),) = _sql(
        "SELECT COUNT(*), SUM(u.prompt_tokens), SUM(u.completion_tokens), "
        f"COALESCE(SUM(u.cached_input_tokens), 0), COALESCE(SUM(u.reasoning_tokens), 0), "
        f"{COST_SUM} FROM usage_modelusage u WHERE {where}",
        params,
    )
    assert total["requests"] == n
    assert (
        total["what_if_cost"]
        == (
            (Decimal(prompt) - Decimal(cached)) * Decimal("10.5")
            + Decimal(cached) * Decimal("2.625")
            + (Decimal(completion) - Decimal(reasoning)) * Decimal("42.25")
            + Decimal(reasoning) * Decimal("50")
        )
        / 1_000_000
    )
    assert total["cost"] == cost_sum(total_cost)
    assert total["difference"] == total["what_if_cost"] - total["cost"]


def test_zero_tokens_cost_nothing_and_an_empty_period_has_no_rows(time_zone, awkward, prices):
    price = prices[O1]
    # 20:00 UTC on 14 March: the anonymous call of 0 tokens at $0.
    only_zero = Scope(user_id=None, model_name="gpt-4o", provider="openai")
    rows = metrics.what_if(Period(TODAY, TODAY), only_zero, price, "user_id")
    anonymous = next(row for row in rows if row["user_id"] is None)
    assert (anonymous["prompt_tokens"], anonymous["completion_tokens"]) == (0, 0)
    assert anonymous["what_if_cost"] == 0
    assert anonymous["change"] is None  # no actual cost to compare with

    empty = Period(dt.date(2023, 1, 1), dt.date(2023, 1, 31))
    for by in GROUPS:
        assert metrics.what_if(empty, Scope(), price, by) == []
    assert metrics.what_if_total([], price)["what_if_cost"] == 0


# -- the form ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["openai/gpt-5", "openai/nope", "nonsense", "azure/gpt-4o", "/", "openai/"]
)
def test_the_form_refuses_what_is_not_priced_today(awkward, prices, fixed_today, value):
    form = WhatIfForm({"what_if": value})

    assert form.price is None
    assert form.errors["what_if"] == [
        f"“{value}” has no price in force in the price book: choose one of its models."
    ]


def test_the_form_without_a_choice_asks_nothing(awkward, prices, fixed_today):
    assert WhatIfForm({}).price is None
    assert WhatIfForm({}).errors == {}
    assert WhatIfForm({"what_if": ""}).price is None
    assert WhatIfForm({"what_if": O1}).price == prices[O1]


# -- the page ----------------------------------------------------------------


@pytest.fixture
def as_manager(client, manager, awkward, prices, fixed_today):
    client.force_login(manager)
    return client


def _cells(rows, by, price):
    return [
        [
            row["label"],
            figure(row["requests"], "number"),
            figure(row["prompt_tokens"], "number"),
            figure(row["completion_tokens"], "number"),
            # the actual cost flags the calls without a price it leaves out
            shown_cost(row["cost"], row["unpriced_requests"]),
            figure(row["what_if_cost"], "money"),
            figure(row["difference"], "money_change"),
            figure(row["change"], "change"),
        ]
        for row in rows
    ]


def test_the_page_shows_the_what_if_per_organisation_and_app_user(as_manager, awkward, prices):
    query = {"period": "custom", "start": "2024-03-01", "end": "2024-03-14", "provider": "openai"}
    period = Period(dt.date(2024, 3, 1), TODAY)
    scope = Scope(provider="openai")
    price = prices[O1]

    page = get_page(as_manager, MODELS, **query, what_if=O1, sort="model")

    tables = tables_of(page)
    assert tables["what_if_organizations"] == _cells(
        metrics.what_if(period, scope, price, "organization_id"), "organization_id", price
    )
    assert tables["what_if_users"] == _cells(
        metrics.what_if(period, scope, price, "user_id"), "user_id", price
    )
    assert len(tables["what_if_users"]) >= 3  # ann, bob, cat … and the anonymous
    assert [row[0] for row in tables["what_if_users"] if row[0] == "Anonymous"] == ["Anonymous"]
    text = html.unescape(page)
    assert "By organisation on o1 (openai)" in text
    assert "What-if cost" in text
    total = metrics.what_if_total(metrics.what_if(period, scope, price, "organization_id"), price)
    assert f"would have cost {figure(total['what_if_cost'], 'money')} instead of" in " ".join(
        html.unescape(page).split()
    ).replace("<strong>", "").replace("</strong>", "")
    assert f'<td class="money">{figure(total["what_if_cost"], "money")}</td>' in page
    assert f">{change(total['change'])}</td>" in page
    assert "in force today" in text
    # The page's filters and sort stay in both forms; the choice stays in the filter bar.
    assert '<input type="hidden" name="provider" value="openai">' in page
    assert '<input type="hidden" name="sort" value="model">' in page
    assert f'<input type="hidden" name="what_if" value="{O1}">' in page
    # Linked rows keep the page's filters; the anonymous row is no link.
    assert f'href="{reverse("dashboards:user", args=[awkward.ann.pk])}?' in page
    # The select offers the prices in force, not gpt-5 (from tomorrow).
    assert '<option value="openai/o1" selected>' in page
    assert 'value="openai/gpt-5"' not in page


def test_a_long_table_shows_the_dearest_and_sums_the_others(as_manager, monkeypatch, prices):
    monkeypatch.setattr(tables, "WHAT_IF_SHOWN", 2)
    rows = metrics.what_if(THIRTY_DAYS, Scope(), prices[O1], "user_id")
    assert len(rows) > 3

    page = get_page(as_manager, MODELS, period="30d", what_if=O1)

    shown = tables_of(page)["what_if_users"]
    rest = metrics.what_if_total(rows[2:], prices[O1])
    assert shown == [
        *_cells(rows[:2], "user_id", prices[O1]),
        *_cells([{**rest, "label": f"{len(rows) - 2} other app users"}], "user_id", prices[O1]),
    ]
    assert "The 2 dearest on o1, then the others together" in page
    total = metrics.what_if_total(rows, prices[O1])
    assert f'<td class="money">{figure(total["what_if_cost"], "money")}</td>' in page
    # The CSV has every row.
    response = as_manager.get(MODELS, {"period": "30d", "what_if": O1, "export": "what_if_users"})
    assert len(_csv(response)) == 1 + len(rows)


def test_without_a_choice_the_page_shows_only_the_form(as_manager):
    page = get_page(as_manager, MODELS, period="30d")

    assert "What would this period have cost on another model?" in page
    assert set(tables_of(page)) == {"models"}
    assert '<ul class="errorlist">' not in page


def test_an_unknown_model_is_a_form_error_not_a_500(as_manager):
    page = get_page(as_manager, MODELS, period="30d", what_if="openai/gpt-9")

    assert "“openai/gpt-9” has no price in force in the price book" in html.unescape(page)
    assert set(tables_of(page)) == {"models"}
    assert as_manager.get(MODELS, {"what_if": "x/y", "export": "what_if_users"}).status_code == 404


def _csv(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_exports_equal_the_metrics_rows(as_manager, awkward, prices):
    price = prices["anthropic/claude-3-5-sonnet"]
    for name, by, label in (
        ("what_if_organizations", "organization_id", "Organisation"),
        ("what_if_users", "user_id", "App user"),
    ):
        response = as_manager.get(
            MODELS, {"period": "30d", "what_if": metrics.price_key(price), "export": name}
        )
        period = f"{THIRTY_DAYS.start}-to-{THIRTY_DAYS.end}"
        assert response["Content-Disposition"] == (
            f'attachment; filename="usage-models-{name}-{period}.csv"'
        )
        rows = _csv(response)
        assert rows[0] == [
            label,
            "Requests",
            "Input tokens",
            "Output tokens",
            "Actual cost (USD)",
            "What-if cost (USD)",
            "Difference (USD)",
            "Change (%)",
        ]
        expected = metrics.what_if(THIRTY_DAYS, Scope(), price, by)
        assert [
            [r[0], int(r[1]), int(r[2]), int(r[3]), Decimal(r[4]), Decimal(r[5]), Decimal(r[6])]
            for r in rows[1:]
        ] == [
            [
                row["label"],
                row["requests"],
                row["prompt_tokens"],
                row["completion_tokens"],
                # Money in a CSV is rounded to the ledger's 8 places.
                *(
                    Decimal(formats.csv_value(row[key], "money"))
                    for key in ("cost", "what_if_cost", "difference")
                ),
            ]
            for row in expected
        ]
        # The CSV holds the rows, not the total under them.
        assert "Total" not in [r[0] for r in rows]


def test_query_counts_do_not_grow_with_rows(
    client,
    manager,
    data,  # noqa: F811 (the fixture imported above)
    prices,
    fixed_today,
    django_assert_num_queries,
):
    client.force_login(manager)
    # The models page without a choice (16, test_dashboards: the prices in
    # force for the select among them); with one, the sums per organisation
    # and their names (2), the sums per app user and their labels (2); the
    # total is the organisations' sum, the table and the form share the
    # prices.
    with django_assert_num_queries(ADMIN_REQUEST + 16 + 4):
        page = client.get(MODELS, {"period": "30d", "what_if": O1})
        assert page.status_code == 200
        assert len(page.context["tables"]) == 3
    # An export: filter-bar choices (2), the prices (1), the sums (1), labels (1).
    with django_assert_num_queries(ADMIN_REQUEST + 5):
        response = client.get(MODELS, {"period": "30d", "what_if": O1, "export": "what_if_users"})
        b"".join(response.streaming_content)


# -- access --------------------------------------------------------------------


def test_staff_without_the_dashboards_right_get_403(client, staff, awkward, prices):
    client.force_login(staff)
    assert not staff.has_perm("usage.view_dashboards")
    for params in (
        {"what_if": O1},
        {"what_if": O1, "export": "what_if_organizations"},
        {"what_if": O1, "export": "what_if_users"},
    ):
        assert client.get(MODELS, params).status_code == 403


def test_managers_see_it_and_export_it(client, manager, awkward, prices, fixed_today):
    client.force_login(manager)
    assert client.get(MODELS, {"what_if": O1}).status_code == 200
    response = client.get(MODELS, {"what_if": O1, "export": "what_if_organizations"})
    assert response.status_code == 200
    assert ModelPrice.objects.filter(model_name="o1").count() == 2
