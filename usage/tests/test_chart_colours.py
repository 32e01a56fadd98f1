"""One colour per model on every page and chart (core.pages.palette): the
overview's stacked chart, one model's page and the code quality page's
per-model chart give a model the colour of its rank among the models the
roll-up holds, read with plain SQL."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from core.pages.palette import PALETTE
from usage import ledger
from usage.models import ModelUsage

from .conftest import TODAY
from .test_dashboards import chart_of, get_page

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_manager(client, manager, awkward, fixed_today):
    client.force_login(manager)
    return client


def expected_colours():
    """{model name: colour} from the raw roll-up, in SQL."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT model_name FROM usage_dailytotal ORDER BY model_name")
        names = [name for (name,) in cursor.fetchall()]
    return {name: PALETTE[n] for n, name in enumerate(names)}


def test_each_model_has_its_colour_on_every_page(as_manager):
    expected = expected_colours()
    assert sorted(expected) == ["claude-3-5-sonnet", "gpt-4o", "llama-3-70b", "mistral-large"]

    overview = chart_of(
        get_page(as_manager, reverse("dashboards:overview"), period="30d"), "chart-cost-by-model"
    )
    stacked = {trace["name"]: trace["marker"]["color"] for trace in overview["data"]}
    assert stacked == expected

    for model_name, provider in (
        ("gpt-4o", "openai"),
        ("gpt-4o", "azure"),
        ("claude-3-5-sonnet", "anthropic"),
    ):
        url = reverse("dashboards:model", args=[provider, model_name])
        bars = chart_of(get_page(as_manager, url, period="30d"), "chart-per-day")["data"][0]
        assert bars["marker"]["color"] == expected[model_name], (model_name, provider)

    code = chart_of(get_page(as_manager, reverse("quality:code"), period="30d"), "chart-models")
    by_model = dict(zip(code["data"][0]["y"], code["data"][0]["marker"]["color"], strict=True))
    # gpt-4o and claude ran code; one execution names no model (grey)
    assert by_model["gpt-4o"] == expected["gpt-4o"]
    assert by_model["claude-3-5-sonnet"] == expected["claude-3-5-sonnet"]
    assert by_model["not recorded"] not in PALETTE


def test_twenty_models_on_one_chart_have_twenty_colours(as_manager, awkward):
    when = dt.datetime.combine(TODAY, dt.time(9), dt.UTC)
    ledger.add_usage(
        [
            ModelUsage(
                model_name=f"extra-{n:02d}",
                provider="test",
                prompt_tokens=10,
                completion_tokens=10,
                cost=Decimal("0.01"),
                timestamp=when,
            )
            for n in range(20)
        ]
    )
    chart = chart_of(
        get_page(as_manager, reverse("dashboards:overview"), period="7d"), "chart-cost-by-model"
    )
    colours = [trace["marker"]["color"] for trace in chart["data"]]
    assert len(chart["data"]) == 24
    assert len(set(colours)) == 24
    assert {
        trace["name"]: trace["marker"]["color"] for trace in chart["data"]
    } == expected_colours()
