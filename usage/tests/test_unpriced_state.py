"""Unpriced usage as its own state wherever a cost is shown (#18): a cost
that leaves out calls without a price says how many, and the page above it
warns with their requests and tokens; checked against plain SQL."""

import re

import pytest
from django.urls import reverse

from .test_dashboards import get_page, tables_of
from .test_metrics import _sql

pytestmark = pytest.mark.django_db

WARNING = re.compile(
    r'id="unpriced-warning"><strong>([\d,]+) requests? \(([\d,]+) tokens\) of ([\d,]+) models?'
)
START, END = "2024-02-14", "2024-03-15"  # the 30 days to 14 March, in UTC


@pytest.fixture
def as_manager(client, manager, awkward, fixed_today):
    client.force_login(manager)
    return client


def raw_unpriced(where="", params=()):
    """(requests, tokens, models) of the 30 days' calls without a cost."""
    ((requests, tokens, models),) = _sql(
        "SELECT COUNT(*), COALESCE(SUM(total_tokens), 0), "
        "COUNT(DISTINCT model_name || '/' || provider) FROM usage_modelusage "
        f"WHERE cost IS NULL AND timestamp >= %s AND timestamp < %s {where}",
        [START, END, *params],
    )
    return requests, tokens, models


def test_the_models_page_flags_each_partly_or_wholly_unpriced_cost(as_manager):
    page = get_page(as_manager, reverse("dashboards:models"), period="30d")
    per_model = {
        (m, p): n
        for m, p, n in _sql(
            "SELECT model_name, provider, COUNT(*) FROM usage_modelusage WHERE cost IS NULL "
            "AND timestamp >= %s AND timestamp < %s GROUP BY model_name, provider",
            [START, END],
        )
    }
    assert per_model == {("llama-3-70b", "groq"): 2}
    for row in tables_of(page)["models"]:
        unpriced = per_model.get((row[0], row[1]))
        cost = row[7]
        if unpriced:
            assert cost.endswith(f"⚠ {unpriced:,} unpriced"), row
        else:
            assert "unpriced" not in cost, row
    requests, tokens, models = raw_unpriced()
    assert WARNING.search(page).groups() == (f"{requests:,}", f"{tokens:,}", f"{models:,}")


def test_model_and_subject_pages_warn_with_their_own_unpriced_calls(as_manager, awkward):
    page = get_page(
        as_manager, reverse("dashboards:model", args=["groq", "llama-3-70b"]), period="30d"
    )
    requests, tokens, _ = raw_unpriced(
        "AND model_name = %s AND provider = %s", ["llama-3-70b", "groq"]
    )
    assert WARNING.search(page).groups() == (f"{requests:,}", f"{tokens:,}", "1")
    assert requests == 2 and tokens == 3700 + 750

    # bob's llama call is unpriced: his page says so, and its by-model row
    page = get_page(as_manager, reverse("dashboards:user", args=[awkward.bob.pk]), period="30d")
    requests, tokens, models = raw_unpriced("AND user_id = %s", [awkward.bob.pk])
    assert (requests, tokens, models) == (1, 3700, 1)
    assert WARNING.search(page).groups() == ("1", "3,700", "1")
    (llama,) = [r for r in tables_of(page)["by_model"] if r[0] == "llama-3-70b"]
    assert llama[2] == "$0.00 ⚠ 1 unpriced"

    # a priced-only page warns of nothing
    page = get_page(
        as_manager, reverse("dashboards:model", args=["openai", "gpt-4o"]), period="30d"
    )
    assert raw_unpriced("AND model_name = %s AND provider = %s", ["gpt-4o", "openai"])[0] == 0
    assert 'id="unpriced-warning"' not in page and "unpriced</span>" not in page
