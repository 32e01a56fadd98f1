"""Importing again: nothing twice, only what changed, deletions reported."""

import sqlite3

import pytest
from django.apps import apps
from django.db.models import Sum
from django.utils import timezone

from chats.models import CodeExecution, Message, MessageFeedback
from core.models import AppUser, Organization, Source
from ingest.tests.source_dbs import (
    CHANGES,
    ENTITY_MAP,
    KINDS,
    build_sqlite,
    execute,
    run_import,
    summary_counts,
)
from usage import rollups
from usage.models import DailyUsage, ModelUsage, QueryAnalytics

pytestmark = pytest.mark.django_db


def models_of(kind):
    labels = {
        t.rsplit(".", 1)[0] for columns in ENTITY_MAP[kind].values() for t in columns.values()
    }
    return [apps.get_model(*label.split(".")) for label in sorted(labels)]


def snapshot(kind):
    source = Source.objects.get(kind=kind)
    counts = {m.__name__: m.objects.filter(source=source).count() for m in models_of(kind)}
    counts["roll-up requests"] = DailyUsage.objects.aggregate(n=Sum("requests"))["n"]
    counts["roll-up tokens"] = DailyUsage.objects.aggregate(n=Sum("total_tokens"))["n"]
    counts["organizations"] = Organization.objects.count()
    return counts


def change_source(path, kind):
    connection = sqlite3.connect(path)
    execute(connection, CHANGES[kind][0])
    connection.close()


@pytest.fixture
def source_db(tmp_path):
    def build(kind):
        return build_sqlite(kind, tmp_path / f"{kind}.sqlite3")

    return build


@pytest.mark.parametrize("kind", KINDS)
def test_second_run_imports_nothing_twice(kind, source_db, tmp_path):
    path = source_db(kind)
    run_import(kind, path, tmp_path / "first.jsonl")
    before = snapshot(kind)

    out, _, _ = run_import(kind, path, tmp_path / "second.jsonl")

    assert snapshot(kind) == before
    counts = summary_counts(out)
    assert {t: (c["created"], c["updated"]) for t, c in counts.items()} == dict.fromkeys(
        counts, (0, 0)
    )
    assert Source.objects.filter(kind=kind).count() == 1


@pytest.mark.parametrize("kind", KINDS)
def test_later_run_brings_only_the_rows_added_or_changed(kind, source_db, tmp_path):
    path = source_db(kind)
    run_import(kind, path, tmp_path / "first.jsonl")
    change_source(path, kind)

    out, _, _ = run_import(kind, path, tmp_path / "second.jsonl")

    moved = {
        table: (c["created"], c["updated"])
        for table, c in summary_counts(out).items()
        if c["created"] or c["updated"]
    }
    assert moved == CHANGES[kind][1]


def test_changed_values_land_on_the_existing_rows(source_db, tmp_path):
    path = source_db("auto_analyst")
    run_import("auto_analyst", path, tmp_path / "first.jsonl")
    feedback_id = MessageFeedback.objects.get(source_pk="1").pk
    change_source(path, "auto_analyst")

    run_import("auto_analyst", path, tmp_path / "second.jsonl")

    feedback = MessageFeedback.objects.get(source_pk="1")
    assert (feedback.pk, feedback.rating) == (feedback_id, 4)
    assert CodeExecution.objects.get(source_pk="1").latest_code == 'df = load("y.csv")'
    assert AppUser.objects.filter(source_pk="7", username="erin").exists()
    assert ModelUsage.objects.get(source_pk="1008").chat.source_pk == "17"


def test_query_analytics_change_moves_its_ledger_row_and_the_roll_up(source_db, tmp_path):
    path = source_db("text_to_sql")
    run_import("text_to_sql", path, tmp_path / "first.jsonl")
    usage = QueryAnalytics.objects.get(source_pk__endswith="51").usage
    tokens_before = DailyUsage.objects.aggregate(n=Sum("prompt_tokens"))["n"]
    change_source(path, "text_to_sql")

    run_import("text_to_sql", path, tmp_path / "second.jsonl")

    usage.refresh_from_db()
    assert usage.prompt_tokens == 900
    # +50 on the changed row, +10 for the new question.
    assert DailyUsage.objects.aggregate(n=Sum("prompt_tokens"))["n"] == tokens_before + 50 + 10
    assert_roll_ups_match_the_ledger()


def assert_roll_ups_match_the_ledger():
    """Every roll-up's delta rows add up to what a rebuild from the ledger writes."""

    def sums(rows, grain, fields):
        totals = {}
        for row in rows:
            current = totals.setdefault(tuple(getattr(row, g) for g in grain), [0] * len(fields))
            for index, name in enumerate(fields):
                current[index] += getattr(row, name)
        return {key: value for key, value in totals.items() if any(value)}

    ledger = ModelUsage.objects.all()
    assert ledger.exists()
    for rollup in rollups.ROLLUPS:
        assert sums(rollup.rows(), rollup.grain, rollups.SUMMED) == sums(
            rollups.aggregate_usage(ledger, rollup), rollup.grain, rollups.SUMMED
        ), rollups.rollup_name(rollup)
        if rollup.latency is None:
            continue
        latency_grain = (*rollup.grain, "bucket")
        assert sums(rollup.latency.objects.all(), latency_grain, ["requests"]) == sums(
            rollups.aggregate_latency(ledger, rollup), latency_grain, ["requests"]
        ), rollup.latency.__name__


def test_ai_chat_v2_message_changes_update_the_message_and_its_ledger_row(source_db, tmp_path):
    path = source_db("ai_chat_v2")
    run_import("ai_chat_v2", path, tmp_path / "first.jsonl")
    change_source(path, "ai_chat_v2")

    run_import("ai_chat_v2", path, tmp_path / "second.jsonl")

    message = Message.objects.get(source_pk__endswith="22")
    assert (message.is_mistake, message.mistake_note, message.completion_tokens) == (
        True,
        "rude",
        31,
    )
    assert ModelUsage.objects.get(source_pk=message.source_pk).completion_tokens == 31
    assert ModelUsage.objects.filter(source_pk__endswith="30").exists()
    assert_roll_ups_match_the_ledger()


def test_a_mistake_flag_set_by_a_reviewer_here_survives_a_reimport(source_db, tmp_path):
    path = source_db("ai_chat_v2")
    run_import("ai_chat_v2", path, tmp_path / "first.jsonl")
    Message.objects.filter(source_pk__endswith="21").update(
        is_mistake=True, mistake_note="flagged here", mistake_flagged_at=timezone.now()
    )

    out, _, _ = run_import("ai_chat_v2", path, tmp_path / "second.jsonl")

    message = Message.objects.get(source_pk__endswith="21")
    assert (message.is_mistake, message.mistake_note) == (True, "flagged here")
    assert summary_counts(out)["messages"]["updated"] == 0


def test_rows_deleted_at_the_source_are_reported_not_deleted(source_db, tmp_path):
    path = source_db("auto_analyst")
    run_import("auto_analyst", path, tmp_path / "first.jsonl")
    change_source(path, "auto_analyst")  # deletes message 106

    out, _, report = run_import("auto_analyst", path, tmp_path / "second.jsonl")

    assert summary_counts(out)["messages"]["deleted_at_source"] == 1
    deleted = [line for line in report if "deleted_at_source" in line]
    assert deleted == [
        {
            "outcome": "deleted at source",
            "table": "messages",
            "deleted_at_source": 1,
            "sample_pks": ["106"],
            "reason": "deleted at the source; kept here",
        }
    ]
    assert Message.objects.filter(source_pk="106").exists()
    assert "messages: 1 rows deleted at the source, kept here" in out


def test_a_change_without_updated_at_is_brought_by_full(source_db, tmp_path):
    path = source_db("auto_analyst")
    run_import("auto_analyst", path, tmp_path / "first.jsonl")
    change_source(path, "auto_analyst")  # edits message 100, which has no updated_at
    run_import("auto_analyst", path, tmp_path / "second.jsonl")
    assert Message.objects.get(source_pk="100").content == "Load the CSV"

    out, _, _ = run_import("auto_analyst", path, tmp_path / "third.jsonl", "--full")

    assert Message.objects.get(source_pk="100").content == "edited, unseen without --full"
    assert summary_counts(out)["messages"]["updated"] == 1
    assert summary_counts(out)["model_usage"]["updated"] == 0


def test_sync_cursor_keeps_the_highest_pk_and_updated_at_per_table(source_db, tmp_path):
    path = source_db("auto_analyst")
    run_import("auto_analyst", path, tmp_path / "first.jsonl")

    cursor = Source.objects.get(kind="auto_analyst").sync_cursor

    # and the rows refused, or stored without a parent they name (user 99,
    # chat 13), read again by the next run
    assert cursor["model_usage"] == {"pk": 1007, "refused": [], "unlinked": ["1005", "1006"]}
    assert cursor["code_executions"] == {
        "pk": 4,
        "updated_at": "2025-02-01 00:00:00",
        "refused": ["4"],
    }
    assert Source.objects.get(kind="auto_analyst").last_synced_at is not None


def test_dry_run_reports_but_keeps_nothing(source_db, tmp_path):
    path = source_db("auto_analyst")

    out, err, report = run_import("auto_analyst", path, tmp_path / "dry.jsonl", "--dry-run")

    assert "dry run: nothing was kept" in out
    assert summary_counts(out)["users"]["created"] == 5
    assert len(report) == 16  # 12 rows refused, 4 values dropped
    assert not Source.objects.exists()
    assert not AppUser.objects.exists()
    assert not ModelUsage.objects.exists()
    assert not DailyUsage.objects.exists()
