"""manage.py import_prices against a small price map in LiteLLM's format
(fixtures/model_prices.json): the diff first, --dry-run writes nothing, a
price change re-prices only rows priced from the book; unpriced models;
what a period would have cost on another model."""

import datetime as dt
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Sum

from core.tests import factories as f
from usage import ledger, pricebook
from usage.models import DailyTotal, ModelPrice, ModelUsage

pytestmark = pytest.mark.django_db

FIXTURE = Path(__file__).parent / "fixtures" / "model_prices.json"


def row(model, provider, day, prompt, completion, cost=None, hour=12, **extra):
    return ModelUsage(
        model_name=model,
        provider=provider,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=None if cost is None else Decimal(cost),
        timestamp=dt.datetime(2024, 3, day, hour, tzinfo=dt.UTC),
        **extra,
    )


def import_prices(*args):
    out = StringIO()
    call_command("import_prices", str(FIXTURE), *args, stdout=out, no_color=True)
    return out.getvalue().splitlines()


@pytest.fixture
def book(time_zone):
    """gpt-4o/openai at the map's price; claude at $3/$15 (the map: $3.50);
    ledger rows priced from the book, one reported, one unpriced (azure)."""
    for model, provider, rates in (
        ("gpt-4o", "openai", ("2.50", "10.00")),
        ("claude-3-5-sonnet", "anthropic", ("3.00", "15.00")),
    ):
        f.ModelPriceFactory(
            model_name=model,
            provider=provider,
            input_per_million=Decimal(rates[0]),
            output_per_million=Decimal(rates[1]),
            effective_from=dt.date(2024, 1, 1),
        )
    rows = ledger.add_usage(
        [
            row("claude-3-5-sonnet", "anthropic", 1, 1000, 2000),  # before the new price
            row("claude-3-5-sonnet", "anthropic", 5, 1000, 2000),
            row("claude-3-5-sonnet", "anthropic", 5, 1000, 2000, cost="0.5"),  # reported
            row("gpt-4o", "azure", 6, 1000, 1000),  # no price: unpriced
            # 400 of its 1,000 prompt tokens cached: the map prices them apart
            row("gpt-4o", "openai", 6, 1000, 1000, cached_input_tokens=400, reasoning_tokens=0),
        ]
    )
    return rows


def costs():
    return list(ModelUsage.objects.order_by("pk").values_list("cost", "cost_source"))


def test_the_map_is_read_per_million_tokens_with_refusals_and_ignored_prices():
    """Input, output, cached-input and reasoning prices are read; cache
    writes are listed as not applied."""
    price_map = pricebook.load_price_map(FIXTURE)

    prices = {(p.model_name, p.provider): p for p in price_map.prices}
    assert sorted(prices) == [
        ("claude-3-5-sonnet", "anthropic"),
        ("gpt-4o", "azure"),  # "azure/gpt-4o" in the map
        ("gpt-4o", "openai"),
        ("o1", "openai"),
        ("text-embedding-3-small", "openai"),
    ]
    assert prices["gpt-4o", "azure"].input_per_million == Decimal("2.750000")
    assert prices["gpt-4o", "azure"].output_per_million == Decimal("11.000000")
    assert prices["text-embedding-3-small", "openai"].input_per_million == Decimal("0.020000")
    assert prices["claude-3-5-sonnet", "anthropic"].ignored == ("cache_creation_input_token_cost",)
    assert prices["claude-3-5-sonnet", "anthropic"].cached_input_per_million == Decimal("0.300000")
    assert prices["gpt-4o", "openai"].cached_input_per_million == Decimal("1.250000")
    assert prices["gpt-4o", "openai"].reasoning_per_million is None
    assert prices["gpt-4o", "azure"].cached_input_per_million is None
    assert prices["o1", "openai"].reasoning_per_million == Decimal("60.000000")
    assert prices["o1", "openai"].cached_input_per_million is None
    assert prices["o1", "openai"].ignored == ()
    assert price_map.refused == [
        ("dall-e-3", "no input_cost_per_token or output_cost_per_token"),
        ("broken-model", "input_cost_per_token is negative or not finite"),
        ("nameless-provider", "no litellm_provider"),
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "input_cost_per_token is not a number"),
        (True, "input_cost_per_token is not a number"),
        (None, "input_cost_per_token is not a number"),
        ("NaN", "input_cost_per_token is negative or not finite"),
        (1.0, "input_cost_per_token is over $999999.999999 per million tokens"),
    ],
)
def test_bad_prices_are_refused_with_their_reason(value, reason):
    data = {
        "m": {"litellm_provider": "p", "input_cost_per_token": value, "output_cost_per_token": 0}
    }

    assert pricebook.read_price_map(data).refused == [("m", reason)]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("cache_read_input_token_cost", -1e-06, "cache_read_input_token_cost is negative"),
        ("output_cost_per_reasoning_token", "x", "output_cost_per_reasoning_token is not a"),
    ],
)
def test_bad_part_prices_are_refused_with_their_reason(key, value, reason):
    data = {
        "m": {
            "litellm_provider": "p",
            "input_cost_per_token": 1e-06,
            "output_cost_per_token": 2e-06,
            key: value,
        }
    }

    ((name, why),) = pricebook.read_price_map(data).refused
    assert name == "m"
    assert why.startswith(reason)


def test_dry_run_prints_both_diffs_and_writes_nothing(book):
    prices_before, costs_before = list(ModelPrice.objects.values()), costs()

    lines = import_prices("--effective", "2024-03-03", "--dry-run")

    assert lines[:3] == [
        "refused dall-e-3: no input_cost_per_token or output_cost_per_token",
        "refused broken-model: input_cost_per_token is negative or not finite",
        "refused nameless-provider: no litellm_provider",
    ]
    assert lines[3] == "5 priced models in the map; 3 new or changed from 2024-03-03:"
    assert lines[4] == (
        "  ~ anthropic/claude-3-5-sonnet: in 3.000000/out 15.000000 → in 3.500000/out "
        "15.000000/cached in 0.300000 per million tokens (not applied: "
        "cache_creation_input_token_cost)"
    )
    assert lines[5] == "  + azure/gpt-4o: in 2.750000/out 11.000000 per million tokens"
    # the same input and output prices, and now a price of cached input
    assert lines[6] == (
        "  ~ openai/gpt-4o: in 2.500000/out 10.000000 → in 2.500000/out 10.000000/cached in "
        "1.250000 per million tokens"
    )
    assert lines[7] == "Money that moves (ledger rows priced from the book):"
    moved = [line.split() for line in lines[9:12]]
    assert moved == [
        [
            "2024-03-05",
            "anthropic/claude-3-5-sonnet",
            "1",
            "0.03300000",
            "0.03350000",
            "+0.00050000",
        ],
        ["2024-03-06", "azure/gpt-4o", "1", "0.00000000", "0.01375000", "+0.01375000"],
        # 1,000 x 2.50 + 1,000 x 10 → 600 x 2.50 + 400 x 1.25 + 1,000 x 10, per million
        ["2024-03-06", "openai/gpt-4o", "1", "0.01250000", "0.01200000", "-0.00050000"],
    ]
    assert lines[12] == "  total moved: +0.01375000 USD"
    assert lines[-1] == "Dry run: nothing written."
    assert list(ModelPrice.objects.values()) == prices_before
    assert costs() == costs_before


def test_the_import_writes_prices_and_reprices_only_book_priced_rows(book):
    lines = import_prices("--effective", "2024-03-03")

    assert lines[-1] == "Wrote 3 price(s)."
    written = ModelPrice.objects.filter(effective_from=dt.date(2024, 3, 3))
    assert sorted(
        written.values_list(
            "model_name", "provider", "cached_input_per_million", "reasoning_per_million"
        )
    ) == [
        ("claude-3-5-sonnet", "anthropic", Decimal("0.300000"), None),
        ("gpt-4o", "azure", None, None),
        ("gpt-4o", "openai", Decimal("1.250000"), None),
    ]
    assert costs() == [
        (Decimal("0.03300000"), "computed"),  # 1 March: the old price still
        (Decimal("0.03350000"), "computed"),
        (Decimal("0.50000000"), "reported"),  # never re-priced
        (Decimal("0.01375000"), "computed"),  # was unpriced
        (Decimal("0.01200000"), "computed"),  # its cached tokens now cheaper
    ]
    # the roll-ups moved with the ledger
    ledger_sum = ModelUsage.objects.aggregate(c=Sum("cost"))["c"]
    assert DailyTotal.objects.aggregate(c=Sum("cost"))["c"] == ledger_sum
    unpriced = DailyTotal.objects.aggregate(n=Sum("unpriced_requests"))["n"]
    assert unpriced == 0

    again = import_prices("--effective", "2024-03-03")
    assert "0 new or changed from 2024-03-03:" in again[3]
    assert again[-2:] == ["No ledger row's cost moves.", "The price book is up to date."]


def test_all_takes_models_nobody_used_and_model_narrows(book):
    lines = import_prices("--effective", "2024-03-03", "--all", "--dry-run")
    assert "5 new or changed" in lines[3]  # + o1, text-embedding-3-small
    assert (
        "  + openai/o1: in 15.000000/out 60.000000/reasoning 60.000000 per million tokens"
    ) in lines

    lines = import_prices("--effective", "2024-03-03", "--model", "gpt-4o")
    assert lines[3].endswith("2 new or changed from 2024-03-03:")  # azure and openai
    assert ModelPrice.objects.filter(model_name="claude-3-5-sonnet").count() == 1


def test_an_import_on_a_date_with_a_price_replaces_it(book):
    import_prices("--effective", "2024-01-01")

    claude = ModelPrice.objects.get(model_name="claude-3-5-sonnet")
    assert claude.input_per_million == Decimal("3.500000")
    assert costs()[0] == (Decimal("0.03350000"), "computed")


def test_an_unreadable_file_is_an_error(tmp_path):
    bad = tmp_path / "prices.json"
    bad.write_text("[1, 2]")
    with pytest.raises(CommandError, match="a price map is a JSON object"):
        call_command("import_prices", str(bad), stdout=StringIO())
    bad.write_text("{not json")
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_prices", str(bad), stdout=StringIO())


def test_unpriced_models_since_first_seen(book):
    ledger.add_usage(
        [
            row("gpt-4o", "azure", 2, 300, 200, cost="0.01"),  # reported: priced
            row("llama-3", "groq", 9, 50, 50),
        ]
    )

    rows = pricebook.unpriced_models()

    assert [
        (r["model_name"], r["provider"], r["first_seen"], r["requests"], r["unpriced_requests"])
        for r in rows
    ] == [
        ("gpt-4o", "azure", dt.date(2024, 3, 2), 2, 1),
        ("llama-3", "groq", dt.date(2024, 3, 9), 1, 1),
    ]
    assert rows[0]["tokens"] == 2500
    assert [r["has_price"] for r in rows] == [False, False]
