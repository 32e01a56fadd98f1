"""PriceBook: the price in force on a row's date, and pricing of ledger rows."""

import datetime as dt
from decimal import Decimal

import pytest

from core.tests.factories import ModelPriceFactory
from usage.models import ModelUsage
from usage.pricing import PriceBook

pytestmark = pytest.mark.django_db

UTC = dt.UTC
JAN_1, JUN_1 = dt.date(2024, 1, 1), dt.date(2024, 6, 1)


@pytest.fixture(autouse=True)
def _utc(settings):
    settings.TIME_ZONE = "UTC"


@pytest.fixture
def book():
    """gpt-4o at $2.50/$10 per million tokens from 1 Jan, halved from 1 Jun 2024."""
    ModelPriceFactory(
        model_name="gpt-4o",
        provider="openai",
        input_per_million=Decimal("2.50"),
        output_per_million=Decimal("10.00"),
        effective_from=JAN_1,
    )
    ModelPriceFactory(
        model_name="gpt-4o",
        provider="openai",
        input_per_million=Decimal("1.25"),
        output_per_million=Decimal("5.00"),
        effective_from=JUN_1,
    )
    return PriceBook()


def _row(when, cost=None, cost_source=ModelUsage.CostSource.REPORTED, model="gpt-4o"):
    return ModelUsage(
        model_name=model,
        provider="openai",
        prompt_tokens=1_000_000,
        completion_tokens=200_000,
        total_tokens=1_200_000,
        cost=cost,
        cost_source=cost_source,
        timestamp=when,
    )


def test_price_before_first_price_is_none(book):
    assert book.price_on("gpt-4o", "openai", dt.date(2023, 12, 31)) is None
    assert (
        book.price_on("gpt-4o", "openai", dt.datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)) is None
    )


def test_price_exactly_on_effective_from_is_the_new_price(book):
    on_the_day = book.price_on("gpt-4o", "openai", JUN_1)
    at_midnight = book.price_on("gpt-4o", "openai", dt.datetime(2024, 6, 1, tzinfo=UTC))
    second_before = book.price_on(
        "gpt-4o", "openai", dt.datetime(2024, 5, 31, 23, 59, 59, tzinfo=UTC)
    )

    assert on_the_day.effective_from == JUN_1
    assert at_midnight.effective_from == JUN_1
    assert second_before.effective_from == JAN_1


def test_price_of_other_provider_or_unknown_model_is_none(book):
    assert book.price_on("gpt-4o", "azure", JUN_1) is None
    assert book.price_on("gpt-5-unknown", "openai", JUN_1) is None


def test_price_change_mid_period_prices_each_row_at_its_own_date(book):
    may, june = (
        _row(dt.datetime(2024, 5, 20, 9, tzinfo=UTC)),
        _row(dt.datetime(2024, 6, 10, 9, tzinfo=UTC)),
    )

    book.price_row(may)
    book.price_row(june)

    # 1M input + 0.2M output: 2.50 + 2.00 before June, 1.25 + 1.00 from June.
    assert may.cost == Decimal("4.5")
    assert june.cost == Decimal("2.25")
    assert {may.cost_source, june.cost_source} == {ModelUsage.CostSource.COMPUTED}


def test_price_row_leaves_reported_cost_untouched(book):
    row = _row(dt.datetime(2024, 6, 10, tzinfo=UTC), cost=Decimal("0.12345678"))

    book.price_row(row)

    assert (row.cost, row.cost_source) == (Decimal("0.12345678"), "reported")


def test_price_row_reported_zero_cost_stays_zero(book):
    row = _row(dt.datetime(2024, 6, 10, tzinfo=UTC), cost=Decimal("0"))

    book.price_row(row)

    assert (row.cost, row.cost_source) == (Decimal("0"), "reported")


def test_price_row_computes_missing_cost_and_marks_it_computed(book):
    row = _row(dt.datetime(2024, 1, 1, tzinfo=UTC), cost=None)

    book.price_row(row)

    assert (row.cost, row.cost_source) == (Decimal("4.5"), "computed")


def test_price_row_marks_unpriced_when_no_price(book):
    unknown = _row(dt.datetime(2024, 6, 10, tzinfo=UTC), model="mystery-model")
    too_early = _row(dt.datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC))

    book.price_row(unknown)
    book.price_row(too_early)

    assert (unknown.cost, unknown.cost_source) == (None, "unpriced")
    assert (too_early.cost, too_early.cost_source) == (None, "unpriced")


def test_price_day_is_cut_in_time_zone_new_york(book, settings):
    settings.TIME_ZONE = "America/New_York"
    # 03:00 UTC on 1 June is 23:00 on 31 May in New York (EDT, UTC-4).
    row = _row(dt.datetime(2024, 6, 1, 3, tzinfo=UTC))

    book.price_row(row)

    assert row.cost == Decimal("4.5")


def test_price_book_accepts_prices_given_in_memory():
    from usage.models import ModelPrice

    book = PriceBook(
        [
            ModelPrice(
                model_name="m",
                provider="p",
                input_per_million=Decimal("1"),
                output_per_million=Decimal("2"),
                effective_from=JAN_1,
            )
        ]
    )

    assert book.price_on("m", "p", JUN_1).cost_of(500_000, 500_000) == Decimal("1.5")


# -- cached input and reasoning tokens -------------------------------------------


def _price(cached=None, reasoning=None):
    from usage.models import ModelPrice

    return ModelPrice(
        model_name="o1",
        provider="openai",
        input_per_million=Decimal("15"),
        output_per_million=Decimal("60"),
        cached_input_per_million=None if cached is None else Decimal(cached),
        reasoning_per_million=None if reasoning is None else Decimal(reasoning),
        effective_from=JAN_1,
    )


def test_parts_not_priced_apart_cost_the_input_and_output_price():
    price = _price()
    # 1,000 x 15 + 300 x 60 per million, whatever the parts
    expected = Decimal("0.033")
    assert price.cost_of(1000, 300) == expected
    assert price.cost_of(1000, 300, 800, 200) == expected
    assert price.cost_of(1000, 300, None, None) == expected


def test_parts_priced_apart_replace_their_share_of_the_whole():
    price = _price(cached="1.5", reasoning="120")
    # (1000 - 800) x 15 + 800 x 1.5 + (300 - 200) x 60 + 200 x 120, per million:
    # 0.003 + 0.0012 + 0.006 + 0.024
    assert price.cost_of(1000, 300, 800, 200) == Decimal("0.0342")
    # not reported (None) or 0: the whole at the input and output price
    assert price.cost_of(1000, 300, None, None) == Decimal("0.033")
    assert price.cost_of(1000, 300, 0, 0) == Decimal("0.033")
    # the two-argument call of the what-if figure is unchanged
    assert price.cost_of(1000, 300) == Decimal("0.033")
    # only one part priced apart
    assert _price(cached="1.5").cost_of(1000, 300, 1000, 300) == Decimal("0.0195")
    assert _price(reasoning="0").cost_of(1000, 300, 1000, 300) == Decimal("0.015")


def test_price_row_prices_cached_and_reasoning_tokens(settings):
    ModelPriceFactory(
        model_name="gpt-4o",
        provider="openai",
        input_per_million=Decimal("2.50"),
        output_per_million=Decimal("10.00"),
        cached_input_per_million=Decimal("1.25"),
        effective_from=JAN_1,
    )
    book = PriceBook()
    cached = _row(dt.datetime(2024, 3, 1, tzinfo=UTC), cost_source=ModelUsage.CostSource.COMPUTED)
    cached.cached_input_tokens, cached.reasoning_tokens = 400_000, 100_000
    plain = _row(dt.datetime(2024, 3, 1, tzinfo=UTC), cost_source=ModelUsage.CostSource.COMPUTED)

    book.price_row(cached)
    book.price_row(plain)

    # 600,000 x 2.50 + 400,000 x 1.25 + 200,000 x 10 (reasoning at the output price)
    assert (cached.cost, cached.cost_source) == (Decimal("4.00000000"), "computed")
    assert plain.cost == Decimal("4.50000000")
