"""watch_spend's report of the models without a price (#20, point 5): each
with its requests, unpriced requests and tokens since it was first seen and
the first-seen day, equal to plain SQL over the raw ledger rows, with days
cut in UTC and in New York."""

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from core.tests import factories as f
from usage import ledger
from usage.models import ModelUsage

from .test_metrics import Raw, _sql

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["UTC", "America/New_York"])
def time_zone(request, settings):
    settings.TIME_ZONE = request.param
    return request.param


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


def usage(model, provider, when, prompt, completion, cost=None, **extra):
    return ModelUsage(
        model_name=model,
        provider=provider,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=None if cost is None else Decimal(cost),
        timestamp=when,
        **extra,
    )


@pytest.fixture
def unpriced_ledger(time_zone):
    """llama: never priced (its first call at 03:00 UTC, the day before in
    New York; 10^9 tokens in one call; an anonymous call of 0 tokens);
    o1: priced from 10 March only, so its earlier calls have no cost;
    mistral: no price but reported costs, 0 included (not unpriced);
    gpt-4o: priced."""
    f.ModelPriceFactory(
        model_name="o1",
        provider="openai",
        input_per_million=Decimal("15"),
        output_per_million=Decimal("60"),
        effective_from=dt.date(2024, 3, 10),
    )
    f.ModelPriceFactory(model_name="gpt-4o", provider="openai", effective_from=dt.date(2024, 1, 1))
    user = f.AppUserFactory()
    ledger.add_usage(
        [
            usage("llama-3", "groq", utc(2024, 3, 1, 3), 500, 250, user=user),
            usage("llama-3", "groq", utc(2024, 3, 5, 12), 6 * 10**8, 4 * 10**8),
            usage("llama-3", "groq", utc(2024, 3, 6, 23, 59, 59), 0, 0),
            usage("llama-3", "groq", utc(2024, 3, 7, 0, 0, 0), 10, 10, cost="0.01"),
            usage("o1", "openai", utc(2024, 3, 9, 23, 59, 59), 1000, 100),
            usage("o1", "openai", utc(2024, 3, 10, 12), 1000, 100),
            usage("mistral-large", "mistral", utc(2024, 3, 2, 12), 300, 300, cost="0"),
            usage("gpt-4o", "openai", utc(2024, 3, 3, 12), 300, 300),
        ]
    )


def raw_unpriced(zone):
    """[(model, provider, first local day, requests, unpriced, tokens)] from
    the raw ledger, the most unpriced calls first."""
    raw = Raw(zone)
    rows = _sql(
        """
        SELECT u.model_name, u.provider, COUNT(*), COUNT(*) - COUNT(u.cost),
               SUM(u.total_tokens)
        FROM usage_modelusage u GROUP BY u.model_name, u.provider
        HAVING COUNT(*) - COUNT(u.cost) > 0
        ORDER BY COUNT(*) - COUNT(u.cost) DESC, u.model_name, u.provider
        """
    )
    firsts = {}
    for model, provider, timestamp in _sql(
        "SELECT u.model_name, u.provider, u.timestamp FROM usage_modelusage u"
    ):
        day = raw.local_day(timestamp)
        key = (model, provider)
        firsts[key] = min(firsts.get(key, day), day)
    return [
        [model, provider, firsts[(model, provider)].isoformat(), str(n), str(unpriced), str(tokens)]
        for model, provider, n, unpriced, tokens in rows
    ]


def test_the_report_lists_unpriced_models_as_the_raw_ledger_has_them(time_zone, unpriced_ledger):
    out = StringIO()

    call_command("watch_spend", "--today", "2024-03-14", stdout=out, no_color=True)

    lines = out.getvalue().splitlines()
    start = lines.index("Models without a price (since first seen):")
    assert lines[start + 1].split() == [
        "model",
        "provider",
        "first",
        "seen",
        "requests",
        "unpriced",
        "tokens",
    ]
    expected = raw_unpriced(time_zone)
    assert [line.split() for line in lines[start + 2 : start + 2 + len(expected)]] == expected
    # llama (3 of 4 calls unpriced, first seen on 29 Feb in New York), then o1.
    assert [row[:2] for row in expected] == [["llama-3", "groq"], ["o1", "openai"]]
    assert expected[0][2] == ("2024-03-01" if time_zone == "UTC" else "2024-02-29")
    assert expected[0][5] == str(10**9 + 750 + 20)
    assert (
        "  o1 (openai) has a price, in force only after its unpriced calls: "
        "give it an earlier effective date."
    ) in lines
    assert not any("llama-3 (groq) has a price" in line for line in lines)
    assert lines[-1].startswith("  Price them in the price book")


def test_every_model_priced_says_so(time_zone):
    ledger.add_usage([usage("mistral-large", "mistral", utc(2024, 3, 2, 12), 3, 3, cost="0")])
    out = StringIO()

    call_command("watch_spend", "--today", "2024-03-14", stdout=out, no_color=True)

    assert out.getvalue().splitlines()[-1] == "Every model is priced."
