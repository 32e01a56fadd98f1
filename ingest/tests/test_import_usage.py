"""Usage rows on their way into the ledger: priced, attributed, rolled up."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from chats.models import Chat
from ingest.importers.writers import LedgerWriter
from ingest.tests.source_dbs import ROWS, build_sqlite, run_import
from ingest.tests.test_import_incremental import assert_roll_ups_match_the_ledger
from usage.models import DailyUsage, ModelPrice, ModelUsage, QueryAnalytics

pytestmark = pytest.mark.django_db

REPORTED, COMPUTED, UNPRICED = ModelUsage.CostSource


@pytest.fixture
def prices(db):
    ModelPrice.objects.create(
        model_name="gpt-4o",
        provider="openai",
        input_per_million=Decimal("2.50"),
        output_per_million=Decimal("10.00"),
        effective_from=dt.date(2024, 1, 1),
    )
    ModelPrice.objects.create(
        model_name="gpt-4o-mini",
        provider="openai",
        input_per_million=Decimal("0.15"),
        output_per_million=Decimal("0.60"),
        effective_from=dt.date(2024, 1, 1),
    )
    ModelPrice.objects.create(
        model_name="claude-3-5-haiku-latest",
        provider="anthropic",
        input_per_million=Decimal("0.80"),
        output_per_million=Decimal("4.00"),
        effective_from=dt.date(2024, 1, 1),
    )


@pytest.fixture(
    params=["copy", "upsert_usage"] if connection.vendor == "postgresql" else ["upsert_usage"]
)
def ledger_path(request, monkeypatch):
    """Both write paths on PostgreSQL (COPY for new rows, or upsert_usage); SQLite has one."""
    if request.param == "upsert_usage":
        monkeypatch.setattr(LedgerWriter, "__init__", _no_copy_init)
    return request.param


def _no_copy_init(self, source, price_book, use_copy=None):
    self.source, self.price_book, self.use_copy = source, price_book, False


def usage(pk):
    return ModelUsage.objects.get(source_pk=pk)


def test_auto_analyst_costs_reported_priced_unpriced_and_zero(tmp_path, prices, ledger_path):
    run_import("auto_analyst", build_sqlite("auto_analyst", tmp_path / "a.db"), tmp_path / "r")

    assert (usage("1000").cost, usage("1000").cost_source) == (Decimal("0.00036"), REPORTED)
    # zero is a reported cost, not a missing one
    assert (usage("1001").cost, usage("1001").cost_source) == (Decimal("0"), REPORTED)
    # NULL cost, price in force: 1000 × 2.50/M + 2000 × 10/M
    assert (usage("1002").cost, usage("1002").cost_source) == (Decimal("0.0225"), COMPUTED)
    # NULL cost and no price: stays NULL, never 0
    assert (usage("1003").cost, usage("1003").cost_source) == (None, UNPRICED)
    huge = usage("1004")
    assert (huge.prompt_tokens, huge.completion_tokens, huge.total_tokens) == (
        600_000_000,
        300_000_000,
        900_000_000,
    )
    assert huge.cost == Decimal("1234.56789")
    nulls = usage("1007")
    assert (nulls.prompt_tokens, nulls.total_tokens, nulls.is_streaming) == (0, 0, False)
    assert nulls.request_time_ms is None
    assert usage("1001").user is None and usage("1001").chat.source_pk == "11"
    assert_roll_ups_match_the_ledger()


def test_roll_ups_cut_days_in_the_configured_zone(tmp_path, prices, ledger_path, settings):
    settings.TIME_ZONE = "America/New_York"
    run_import("auto_analyst", build_sqlite("auto_analyst", tmp_path / "a.db"), tmp_path / "r")

    # 2025-02-01 00:00:00 UTC is still January 31st in New York.
    days = set(DailyUsage.objects.filter(model_name="claude-3-5-haiku-latest").values_list("day"))
    assert days == {(dt.date(2025, 1, 31),)}
    assert_roll_ups_match_the_ledger()


def test_query_analytics_gets_a_linked_ledger_row(tmp_path, prices, ledger_path):
    run_import("text_to_sql", build_sqlite("text_to_sql", tmp_path / "t.db"), tmp_path / "r")

    by_pk = {qa.source_pk[-2:]: qa for qa in QueryAnalytics.objects.select_related("usage")}
    first = by_pk["51"].usage
    assert (first.model_name, first.provider, first.cost, first.cost_source) == (
        "gpt-4o-mini",
        "openai",
        Decimal("0.0002"),
        REPORTED,
    )
    assert (first.prompt_tokens, first.completion_tokens, first.total_tokens) == (850, 120, 970)
    assert first.user == by_pk["51"].user and first.timestamp == by_pk["51"].timestamp
    assert first.request_time_ms is None  # the source timed the SQL, not the LLM call
    priced = by_pk["52"].usage  # NULL llm_cost_estimate: 400 × 0.80/M + 50 × 4/M
    assert (priced.provider, priced.cost, priced.cost_source) == (
        "anthropic",
        Decimal("0.00052"),
        COMPUTED,
    )
    assert by_pk["53"].usage is None  # no model, tokens or cost: no LLM call
    assert (by_pk["54"].usage.provider, by_pk["54"].usage.cost) == ("groq", Decimal("0"))
    assert by_pk["55"].usage.cost == Decimal("0.01")  # its user landed without a role
    assert ModelUsage.objects.count() == 4
    assert_roll_ups_match_the_ledger()


def test_ai_chat_v2_assistant_messages_with_tokens_get_ledger_rows(tmp_path, prices, ledger_path):
    run_import("ai_chat_v2", build_sqlite("ai_chat_v2", tmp_path / "c.db"), tmp_path / "r")

    rows = {u.source_pk[-2:]: u for u in ModelUsage.objects.select_related("chat", "user")}
    assert set(rows) == {
        "22",
        "23",
        "25",
        "26",
        "28",
    }  # not users' messages, not those without tokens
    mini = rows["22"]
    # 12 × 0.15/M + 30 × 0.60/M, priced: the source records no cost
    assert (mini.cost, mini.cost_source, mini.provider) == (
        Decimal("0.0000198"),
        COMPUTED,
        "openai",
    )
    assert mini.chat == Chat.objects.get(source_pk__endswith="11")
    assert mini.user.email == "mia@example.com"
    assert (rows["23"].provider, rows["23"].prompt_tokens, rows["23"].cost) == (
        "google",
        900_000_000,
        None,
    )
    assert (rows["28"].model_name, rows["28"].provider, rows["28"].cost_source) == (
        "unknown",
        "unknown",
        UNPRICED,
    )
    assert_roll_ups_match_the_ledger()


def test_reimport_does_not_count_ledger_rows_twice_in_the_roll_up(tmp_path, prices, ledger_path):
    path = build_sqlite("auto_analyst", tmp_path / "a.db")
    run_import("auto_analyst", path, tmp_path / "r1")
    totals = DailyUsage.objects.aggregate(Sum("requests"), Sum("cost"))

    run_import("auto_analyst", path, tmp_path / "r2", "--full")

    assert DailyUsage.objects.aggregate(Sum("requests"), Sum("cost")) == totals
    assert totals["requests__sum"] == len(ROWS["auto_analyst"]["model_usage"][1])  # all


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY exists on PostgreSQL only")
def test_new_ledger_rows_are_copied_on_postgresql(tmp_path, prices, monkeypatch):
    copied = []
    copy_upsert = LedgerWriter.copy_upsert

    def spy(self, fresh):
        result = copy_upsert(self, fresh)
        copied.append((len(fresh), len(result["created"])))
        return result

    monkeypatch.setattr(LedgerWriter, "copy_upsert", spy)
    run_import("auto_analyst", build_sqlite("auto_analyst", tmp_path / "a.db"), tmp_path / "r")

    rows = len(ROWS["auto_analyst"]["model_usage"][1])
    assert copied == [(rows, rows)]  # one batch, every row, all through COPY
    assert ModelUsage.objects.count() == rows
    assert_roll_ups_match_the_ledger()
