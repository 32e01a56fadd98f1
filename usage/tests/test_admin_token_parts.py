"""The ledger admin shows and edits cached input and reasoning tokens, refuses
a part larger than its whole with the ledger's reason, and keeps the
roll-ups in step; the price admin lists the new prices."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from core.tests import factories as f
from usage.models import DailyTotal, ModelUsage

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client):
    client.force_login(f.UserFactory(is_superuser=True))
    return client


def form_data(usage, **changes):
    data = {
        "timestamp_0": "2024-03-01",
        "timestamp_1": "12:00:00",
        "model_name": usage.model_name,
        "provider": usage.provider,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cached_input_tokens": "",
        "reasoning_tokens": "",
        "cost": usage.cost,
        "cost_source": usage.cost_source,
        "query_size": 0,
        "response_size": 0,
        "request_time_ms": 850,
        "source_pk": usage.source_pk,
    }
    return {**data, **changes}


def test_the_change_form_edits_the_parts_and_the_rollups_follow(admin):
    usage = f.ModelUsageFactory(timestamp=dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC))
    url = reverse("admin:usage_modelusage_change", args=[usage.pk])
    page = admin.get(url).content.decode()
    assert 'name="cached_input_tokens"' in page
    assert 'name="reasoning_tokens"' in page

    response = admin.post(url, form_data(usage, cached_input_tokens=600, reasoning_tokens=0))

    assert response.status_code == 302, response.content.decode()[:2000]
    usage.refresh_from_db()
    assert (usage.cached_input_tokens, usage.reasoning_tokens) == (600, 0)
    total = DailyTotal.objects.get()
    assert (total.cached_input_tokens, total.cached_reported_requests) == (600, 1)
    assert (total.reasoning_tokens, total.reasoning_reported_requests) == (0, 1)

    # back to unknown: blank is NULL, not 0
    admin.post(url, form_data(usage))
    usage.refresh_from_db()
    assert (usage.cached_input_tokens, usage.reasoning_tokens) == (None, None)
    total = DailyTotal.objects.get()
    assert (total.cached_reported_requests, total.reasoning_reported_requests) == (0, 0)


def test_the_change_form_refuses_a_part_larger_than_its_whole(admin):
    usage = f.ModelUsageFactory(timestamp=dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC))
    url = reverse("admin:usage_modelusage_change", args=[usage.pk])

    response = admin.post(url, form_data(usage, reasoning_tokens=501))

    assert response.status_code == 200
    assert "reasoning_tokens: 501 is more than the 500 of completion_tokens" in (
        response.content.decode()
    )
    assert ModelUsage.objects.get().reasoning_tokens is None


def test_the_price_list_shows_the_part_prices(admin):
    f.ModelPriceFactory(
        cached_input_per_million=Decimal("0.075"), reasoning_per_million=Decimal("2.4")
    )
    page = admin.get(reverse("admin:usage_modelprice_changelist")).content.decode()
    assert "0.075000" in page
    assert "2.400000" in page
