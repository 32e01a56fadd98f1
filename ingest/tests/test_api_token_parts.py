"""Cached input and reasoning tokens through the ingest API and the OTLP
endpoint (#20 point 3, #22 point 2): the value, null (not reported) and 0
(reported zero) are kept apart; bounds, types and the part-of-its-whole rule
answer 422 (API) or reject the span (OTLP) with nothing written; the price
book charges them apart when it prices them; the roll-ups equal plain SQL."""

from decimal import Decimal

import pytest
from django.db import connection

from core.tests.factories import ModelPriceFactory
from ingest.tests.test_api_auth import make_key, post
from ingest.tests.test_api_batches import refused, usage
from ingest.tests.test_otel import answer, request_of, send, span
from usage.models import DailyTotal, DailyUsage, ModelUsage

pytestmark = pytest.mark.django_db


@pytest.fixture
def key():
    return make_key()


@pytest.fixture
def raw(key):
    return key[0]


@pytest.fixture
def source(key):
    return key[1].ingest_source


@pytest.fixture
def price(db):
    """gpt-4o-mini with cached input and reasoning priced apart."""
    return ModelPriceFactory(
        model_name="gpt-4o-mini",
        provider="openai",
        input_per_million=Decimal("0.15"),
        output_per_million=Decimal("0.60"),
        cached_input_per_million=Decimal("0.075"),
        reasoning_per_million=Decimal("1.20"),
        effective_from="2024-01-01",
    )


def parts():
    return {
        r.source_pk: (r.cached_input_tokens, r.reasoning_tokens)
        for r in ModelUsage.objects.order_by("source_pk")
    }


def rollup_equals_plain_sql():
    """Per source and model: the parts' sums and reporting counts of the
    ledger rows (plain SQL) and of DailyUsage and DailyTotal."""
    ledger_sql = (
        "SELECT model_name, COUNT(*), SUM(cached_input_tokens), COUNT(cached_input_tokens), "
        "SUM(reasoning_tokens), COUNT(reasoning_tokens) FROM usage_modelusage "
        "GROUP BY model_name ORDER BY model_name"
    )
    rollup_sql = (
        "SELECT model_name, SUM(requests), SUM(cached_input_tokens), "
        "SUM(cached_reported_requests), SUM(reasoning_tokens), SUM(reasoning_reported_requests) "
        "FROM {} GROUP BY model_name ORDER BY model_name"
    )
    with connection.cursor() as cursor:
        cursor.execute(ledger_sql)
        # a sum over rows that all reported nothing is NULL in SQL, 0 in a roll-up
        expected = [(*r[:2], r[2] or 0, r[3], r[4] or 0, r[5]) for r in cursor.fetchall()]
        for model in (DailyUsage, DailyTotal):
            cursor.execute(rollup_sql.format(model._meta.db_table))  # noqa: S608
            assert [tuple(int(v) if i else v for i, v in enumerate(r)) for r in cursor] == (
                expected
            ), model
    return expected


# ---- POST /usage -------------------------------------------------------------


def test_usage_round_trip_keeps_value_null_and_zero_apart(client, raw, source, price):
    items = [
        usage(1, cached_input_tokens=400, reasoning_tokens=100),
        usage(2, cached_input_tokens=None, reasoning_tokens=None),
        usage(3),  # omitted: not reported
        usage(4, cached_input_tokens=0, reasoning_tokens=0),
        usage(5, cached_input_tokens=1000, reasoning_tokens=500),  # every token a part
    ]
    assert post(client, "usage", {"items": items}, raw).json() == {
        "created": 5,
        "updated": 0,
        "unchanged": 0,
    }
    assert parts() == {
        "u-1": (400, 100),
        "u-2": (None, None),
        "u-3": (None, None),
        "u-4": (0, 0),
        "u-5": (1000, 500),
    }
    costs = dict(ModelUsage.objects.values_list("source_pk", "cost"))
    # 600 x 0.15 + 400 x 0.075 + 400 x 0.60 + 100 x 1.20, per million
    assert costs["u-1"] == Decimal("0.00048")
    # unknown or 0 parts: 1,000 x 0.15 + 500 x 0.60
    assert costs["u-2"] == costs["u-3"] == costs["u-4"] == Decimal("0.00045")
    # 1,000 x 0.075 + 500 x 1.20
    assert costs["u-5"] == Decimal("0.000675")
    # total_tokens is prompt + completion: the parts are not added again
    assert set(ModelUsage.objects.values_list("total_tokens", flat=True)) == {1500}
    assert rollup_equals_plain_sql() == [("gpt-4o-mini", 5, 1400, 3, 600, 3)]

    # sent again: unchanged; then a part changed back to unknown, and re-priced
    assert post(client, "usage", {"items": items}, raw).json()["unchanged"] == 5
    response = post(client, "usage", {"items": [usage(1, reasoning_tokens=100)]}, raw)
    assert response.json() == {"created": 0, "updated": 1, "unchanged": 0}
    row = ModelUsage.objects.get(source_pk="u-1")
    assert (row.cached_input_tokens, row.reasoning_tokens) == (None, 100)
    # 1,000 x 0.15 + 400 x 0.60 + 100 x 1.20
    assert row.cost == Decimal("0.00051")
    assert rollup_equals_plain_sql() == [("gpt-4o-mini", 5, 1000, 2, 600, 3)]


def test_reported_cost_is_kept_whatever_the_parts(client, raw, price):
    post(client, "usage", {"items": [usage(1, cost=0.5, cached_input_tokens=1000)]}, raw)
    row = ModelUsage.objects.get()
    assert (row.cost, row.cost_source) == (Decimal("0.5"), "reported")


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"cached_input_tokens": "10"}, "cached_input_tokens"),
        ({"cached_input_tokens": 10.0}, "cached_input_tokens"),
        ({"cached_input_tokens": True}, "cached_input_tokens"),
        ({"reasoning_tokens": "1e2"}, "reasoning_tokens"),
        ({"reasoning_tokens": False}, "reasoning_tokens"),
        ({"cached_input_tokens": -1}, "cached_input_tokens"),
        ({"reasoning_tokens": 10**9 + 1}, "reasoning_tokens"),
        ({"cached_input_tokens": 10**15}, "cached_input_tokens"),
        # a part larger than its whole
        ({"cached_input_tokens": 1001}, "cached_input_tokens"),
        ({"reasoning_tokens": 501}, "reasoning_tokens"),
        ({"prompt_tokens": 0, "cached_input_tokens": 1}, "cached_input_tokens"),
    ],
)
def test_impossible_parts_are_422_and_nothing_is_written(client, raw, fields, path):
    response = post(client, "usage", {"items": [usage(0), usage(1, **fields)]}, raw)
    assert refused(response) == {(1, path)}
    assert not ModelUsage.objects.exists()
    assert not DailyUsage.objects.exists()


def test_a_part_over_its_whole_says_which(client, raw):
    response = post(client, "usage", {"items": [usage(1, reasoning_tokens=501)]}, raw)
    (error,) = response.json()["errors"]
    assert error["path"] == "items.0.reasoning_tokens"
    assert "501 is more than the 500 of completion_tokens" in error["message"]


def test_the_bounds_are_inclusive(client, raw):
    item = usage(
        1,
        prompt_tokens=10**9,
        completion_tokens=0,
        total_tokens=10**9,
        cached_input_tokens=10**9,
        reasoning_tokens=0,
    )
    assert post(client, "usage", {"items": [item]}, raw).status_code == 200
    assert parts() == {"u-1": (10**9, 0)}


def test_the_openapi_document_describes_the_parts(client):
    document = client.get("/api/v1/openapi.json").json()
    properties = document["components"]["schemas"]["UsageIn"]["properties"]
    for name in ("cached_input_tokens", "reasoning_tokens"):
        field = properties[name]
        integer, null = field["anyOf"]
        assert integer == {"type": "integer", "minimum": 0, "maximum": 10**9}
        assert null == {"type": "null"}
        assert name not in document["components"]["schemas"]["UsageIn"]["required"]
        assert "part of" in field["description"]
    assert "prompt_tokens" in properties["cached_input_tokens"]["description"]
    assert "completion_tokens" in properties["reasoning_tokens"]["description"]


# ---- OTLP spans ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        # the current GenAI semantic conventions
        (
            {
                "gen_ai.usage.cache_read.input_tokens": 400,
                "gen_ai.usage.reasoning.output_tokens": 100,
            },
            (400, 100),
        ),
        # older spellings still emitted by instrumentations
        ({"gen_ai.usage.cache_read_input_tokens": 300}, (300, None)),
        ({"gen_ai.usage.input_tokens.cached": 200}, (200, None)),
        ({"gen_ai.usage.cached_tokens": 100}, (100, None)),
        ({"gen_ai.usage.reasoning_tokens": 50}, (None, 50)),
        ({"gen_ai.usage.output_tokens.reasoning": 40}, (None, 40)),
        # reported zero, and a cache write (not counted apart)
        (
            {
                "gen_ai.usage.cache_read.input_tokens": 0,
                "gen_ai.usage.reasoning.output_tokens": 0,
                "gen_ai.usage.cache_creation.input_tokens": 900,
            },
            (0, 0),
        ),
        ({}, (None, None)),
        # the documented name wins over an older one
        (
            {
                "gen_ai.usage.cache_read.input_tokens": 10,
                "gen_ai.usage.cached_tokens": 20,
            },
            (10, None),
        ),
    ],
)
def test_span_token_parts_become_ledger_columns(client, raw, attributes, expected):
    response = send(client, request_of(span(1, attributes)), raw)
    assert not answer(response).HasField("partial_success")
    row = ModelUsage.objects.get()
    assert (row.cached_input_tokens, row.reasoning_tokens) == expected
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (1000, 500, 1500)
    rollup_equals_plain_sql()


def test_span_parts_are_priced_apart(client, raw, price):
    attributes = {
        "gen_ai.usage.cache_read.input_tokens": 400,
        "gen_ai.usage.reasoning.output_tokens": 100,
    }
    send(client, request_of(span(1, attributes), span(2)), raw)
    costs = dict(ModelUsage.objects.values_list("source_pk", "cost"))
    # 600 x 0.15 + 400 x 0.075 + 400 x 0.60 + 100 x 1.20, per million; span 2 as a whole
    assert costs == {
        f"{1:032x}:{1:016x}": Decimal("0.00048"),
        f"{1:032x}:{2:016x}": Decimal("0.00045"),
    }


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"gen_ai.usage.cache_read.input_tokens": 1001}, "cached input tokens: 1001 is more"),
        ({"gen_ai.usage.cached_tokens": 5000}, "of input tokens"),
        ({"gen_ai.usage.reasoning.output_tokens": 501}, "reasoning tokens: 501 is more"),
        (
            {"gen_ai.usage.input_tokens": None, "gen_ai.usage.cache_read.input_tokens": 1},
            "cached input tokens: 1 is more than the 0 of input tokens",
        ),
        ({"gen_ai.usage.cache_read.input_tokens": 10**15}, "outside 0"),
        ({"gen_ai.usage.reasoning_tokens": -1}, "outside 0"),
        ({"gen_ai.usage.cache_read_input_tokens": "12"}, "must be an integer, not string"),
        ({"gen_ai.usage.reasoning.output_tokens": 1.0}, "must be an integer, not double"),
        ({"gen_ai.usage.cache_creation.input_tokens": True}, "must be an integer, not bool"),
    ],
)
def test_impossible_span_parts_reject_the_span_only(client, raw, attributes, reason):
    response = send(client, request_of(span(1), span(2, attributes)), raw)
    partial = answer(response).partial_success
    assert partial.rejected_spans == 1
    assert reason in partial.error_message
    assert list(ModelUsage.objects.values_list("source_pk", flat=True)) == [f"{1:032x}:{1:016x}"]
    rollup_equals_plain_sql()
