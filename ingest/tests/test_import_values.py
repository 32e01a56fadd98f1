"""Refuse the value, not the row (#16.2), and never stop on a row (#16.3).

Each test builds a source from the schema documents (``source_dbs``), adds
the awkward rows it is about by plain SQL, imports, and checks what landed,
what was refused and what was dropped, with the report's reasons.
"""

import sqlite3
from decimal import Decimal

import pytest
from django.core.management import call_command

from chats.models import Chat, CodeExecution, Message
from core.models import ApiKey, AppUser, AuditLog
from ingest.importers import engine
from ingest.importers.converters import json_value
from ingest.importers.report import VALUE_MAX_CHARS
from ingest.tests.source_dbs import build_sqlite, run_import, summary_counts, uid
from usage.models import ModelUsage, QueryAnalytics

pytestmark = pytest.mark.django_db


def source(kind, tmp_path, *statements, params=()):
    path = build_sqlite(kind, tmp_path / f"{kind}.sqlite3")
    connection = sqlite3.connect(path)
    for statement in statements:
        connection.execute(statement)
    for statement, values in params:
        connection.execute(statement, values)
    connection.commit()
    connection.close()
    return path


def lines(report, outcome, table=None):
    return {
        line["source_pk"] if "column" not in line else (line["source_pk"], line["column"]): line
        for line in report
        if line["outcome"] == outcome and (table is None or line["table"] == table)
    }


def test_json_value_empty_literal_and_broken():
    assert json_value("") is None
    assert json_value("   ") is None
    assert json_value("['planner', 'coder']") == ["planner", "coder"]  # str(list), not JSON
    assert json_value("{'a': 1, 'b': (2, 3)}") == {"a": 1, "b": (2, 3)}
    with pytest.raises(ValueError, match="invalid JSON"):
        json_value("[not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        json_value("__import__('os').system('true')")  # literals only, never code
    with pytest.raises(ValueError, match="nested too deep"):
        json_value("[" * 6000 + "]" * 6000)


def test_empty_json_text_is_no_value_and_keeps_the_user_and_everything_of_theirs(tmp_path):
    path = source(
        "text_to_sql",
        tmp_path,
        f"UPDATE users SET preferences = '' WHERE id = '{uid(1)}'",
        f"UPDATE api_keys SET permissions = '' WHERE id = '{uid(21)}'",
    )

    out, _, report = run_import("text_to_sql", path, tmp_path / "r.jsonl")

    ana = AppUser.objects.get(source_pk=uid(1))
    assert ana.preferences is None
    assert ApiKey.objects.get(source_pk=uid(21)).permissions is None
    assert Chat.objects.filter(user=ana).exists()
    assert QueryAnalytics.objects.filter(user=ana).exists()
    assert not [line for line in report if line["source_pk"] in (uid(1), uid(21))]


def test_empty_context_data_keeps_the_turn(tmp_path):
    path = source(
        "ds_ml_agent", tmp_path, "UPDATE chatbot_conversation_states SET context_data = ''"
    )

    out, _, report = run_import("ds_ml_agent", path, tmp_path / "r.jsonl")

    assert summary_counts(out)["chatbot_conversation_states"]["refused"] == 2  # the orphans
    assert Message.objects.filter(source_pk="1:user", context_data__isnull=True).exists()
    assert Message.objects.filter(source_pk="3:assistant").exists()


def test_a_python_list_repr_lands_and_broken_json_is_dropped_truncated(tmp_path):
    broken = "[" + "x" * 5000
    path = source(
        "auto_analyst",
        tmp_path,
        "UPDATE code_executions SET failed_agents = '[''planner'', ''coder'']' "
        "WHERE execution_id = 1",
        params=[
            ("UPDATE code_executions SET error_messages = ? WHERE execution_id = 2", (broken,))
        ],
    )

    out, _, report = run_import("auto_analyst", path, tmp_path / "r.jsonl")

    assert CodeExecution.objects.get(source_pk="1").failed_agents == ["planner", "coder"]
    second = CodeExecution.objects.get(source_pk="2")
    assert second.error_messages is None
    line = lines(report, "value dropped", "code_executions")[("2", "error_messages")]
    assert "invalid JSON" in line["reason"]
    assert line["value"].startswith("[xxx") and "5,001 characters" in line["value"]
    assert len(line["value"]) < VALUE_MAX_CHARS + 40


def test_deeply_nested_json_drops_the_value_and_the_run_goes_on(tmp_path):
    nested = "[" * 6000 + "]" * 6000
    path = source(
        "auto_analyst",
        tmp_path,
        params=[("UPDATE code_executions SET failed_agents = ? WHERE execution_id = 1", (nested,))],
    )

    out, _, report = run_import("auto_analyst", path, tmp_path / "r.jsonl")

    assert CodeExecution.objects.get(source_pk="1").failed_agents is None
    line = lines(report, "value dropped", "code_executions")[("1", "failed_agents")]
    assert "nested too deep" in line["reason"]
    assert summary_counts(out)["code_executions"]["created"] == 3


@pytest.mark.parametrize(
    ("assignment", "word"),
    [
        ("prompt_tokens = 9223372036854775807", "impossible tokens"),
        ("total_tokens = 9223372036854775807", "impossible tokens"),
        ("cost = -0.5", "impossible cost"),
        ("cost = 1e30", "impossible cost"),
        ("timestamp = '9999-12-31 00:00:00'", "impossible time"),
        ("timestamp = '1970-01-01 00:00:00'", "impossible time"),
        ("cost = 'lots'", "not a number"),
    ],
)
def test_an_impossible_quantity_refuses_the_ledger_row_only(tmp_path, assignment, word):
    path = source(
        "auto_analyst", tmp_path, f"UPDATE model_usage SET {assignment} WHERE usage_id = 1000"
    )

    out, _, report = run_import("auto_analyst", path, tmp_path / "r.jsonl")

    assert word in lines(report, "refused", "model_usage")["1000"]["reason"]
    assert not ModelUsage.objects.filter(source_pk="1000").exists()
    assert summary_counts(out)["model_usage"]["created"] == 7  # of 8: all but 1000


def test_reported_zeros_stay_zero_and_only_a_null_total_is_derived(tmp_path):
    path = source(
        "auto_analyst",
        tmp_path,
        "UPDATE model_usage SET prompt_tokens = 0, completion_tokens = 0, total_tokens = 0, "
        "cost = 0 WHERE usage_id = 1000",
        "UPDATE model_usage SET total_tokens = NULL WHERE usage_id = 1002",
    )

    run_import("auto_analyst", path, tmp_path / "r.jsonl")

    zero = ModelUsage.objects.get(source_pk="1000")
    assert (zero.prompt_tokens, zero.total_tokens, zero.cost) == (0, 0, Decimal(0))
    assert zero.cost_source == ModelUsage.CostSource.REPORTED
    assert ModelUsage.objects.get(source_pk="1002").total_tokens == 1000 + 2000


def test_a_value_out_of_range_in_a_side_column_is_dropped(tmp_path):
    path = source(
        "auto_analyst",
        tmp_path,
        "UPDATE model_usage SET query_size = 99999999999 WHERE usage_id = 1000",
        "UPDATE messages SET timestamp = '9999-01-01 00:00:00' WHERE message_id = 100",
    )

    _, _, report = run_import("auto_analyst", path, tmp_path / "r.jsonl")

    assert ModelUsage.objects.get(source_pk="1000").query_size == 0
    assert "out of range" in lines(report, "value dropped")[("1000", "query_size")]["reason"]
    # A message's time would become "now": refused instead, never restated.
    assert "impossible time" in lines(report, "refused", "messages")["100"]["reason"]


def test_children_of_a_refused_parent_are_refused_because_of_it(tmp_path):
    path = source("auto_analyst", tmp_path)

    _, _, report = run_import("auto_analyst", path, tmp_path / "r.jsonl")

    assert "differs only in case" in lines(report, "refused", "users")["4"]["reason"]
    assert lines(report, "refused", "chats")["14"]["reason"] == (
        "parent refused/missing: user_id='4' (users, refused in this run)"
    )


def test_a_ledger_row_whose_user_or_chat_is_missing_or_refused_lands_without_it(tmp_path):
    # 1005 names user 99 (no such user), 1006 chat 13 (refused: its user is
    # missing); 1008 names user 4, refused (e-mail differing only in case).
    path = source(
        "auto_analyst",
        tmp_path,
        "INSERT INTO model_usage VALUES (1008, 4, 14, 'gpt-4o', 'openai', 3, 4, 7, 0, 0, "
        "0.75, '2025-02-06 00:00:00', FALSE, 5)",
    )

    out, _, report = run_import("auto_analyst", path, tmp_path / "r.jsonl")

    rows = {
        u.source_pk: (u.user_id, u.chat_id, u.total_tokens, u.cost)
        for u in ModelUsage.objects.filter(source_pk__in=["1005", "1006", "1008"])
    }
    alice = AppUser.objects.get(source_pk="1").pk
    chat_10 = Chat.objects.get(source_pk="10").pk
    assert rows == {
        "1005": (None, chat_10, 2, Decimal("0.1")),
        "1006": (alice, None, 2, Decimal("0.1")),
        "1008": (None, None, 7, Decimal("0.75")),
    }
    dropped = lines(report, "value dropped", "model_usage")
    assert dropped[("1005", "user_id")]["reason"] == (
        "parent user missing at source: user_id='99' (users, not in this source); stored without it"
    )
    assert dropped[("1005", "user_id")]["value"] == 99
    assert dropped[("1006", "chat_id")]["reason"] == (
        "parent chat refused: chat_id='13' (chats, refused in this run); stored without it"
    )
    assert set(dropped) == {
        ("1005", "user_id"),
        ("1006", "chat_id"),
        ("1008", "user_id"),
        ("1008", "chat_id"),
    }
    assert not lines(report, "refused", "model_usage")
    # A required parent still refuses: a message of a refused chat.
    assert "parent refused/missing" in lines(report, "refused", "messages")["104"]["reason"]
    # The end-of-run summary: per table and reason, with a first example.
    summary = out[out.index("Refused rows and dropped values") :].splitlines()
    (missing,) = [s for s in summary if "model_usage" in s and "user missing at source" in s]
    assert missing.split()[:4] == ["model_usage", "value", "dropped", "1"]
    assert summary[summary.index(missing) + 1].strip() == (
        "first: pk 1005: parent user missing at source: user_id='99' (users, not in this "
        "source); stored without it"
    )
    (refused,) = [s for s in summary if "model_usage" in s and "parent user refused" in s]
    assert refused.split()[:4] == ["model_usage", "value", "dropped", "1"]  # 1008
    (chat,) = [s for s in summary if "model_usage" in s and "parent chat refused" in s]
    assert chat.split()[:4] == ["model_usage", "value", "dropped", "2"]  # 1006, 1008


def test_text_to_sql_rows_whose_user_is_missing_or_refused_land_without_it(tmp_path):
    # A question (and its LLM call) of user 9, who is not in the source; an
    # audit row of user 4, refused (e-mail differing only in case); an API
    # key of user 9: ApiKey.user is CASCADE (the key is the user's), refused.
    path = source(
        "text_to_sql",
        tmp_path,
        f"INSERT INTO query_analytics VALUES ('{uid(57)}', NULL, '{uid(9)}', 'orphan?', NULL, "
        "NULL, NULL, TRUE, NULL, NULL, 30, 20, 50, 'gpt-4o-mini', 0.0042, "
        "'2025-02-05 00:00:00', '2025-02-05 00:00:00')",
        f"INSERT INTO audit_logs VALUES (3, '{uid(4)}', 'login', 'user', NULL, NULL, NULL, "
        "NULL, NULL, '2025-02-05 00:00:00', TRUE, NULL)",
        f"INSERT INTO api_keys VALUES ('{uid(22)}', '{uid(9)}', 'x', 'key-hash-9', 'tts_x', "
        "NULL, TRUE, '2025-02-01 00:00:00', NULL, NULL, 0)",
    )

    _, _, report = run_import("text_to_sql", path, tmp_path / "r.jsonl")

    question = QueryAnalytics.objects.get(source_pk=uid(57))
    assert (question.user, question.usage.user, question.usage.cost) == (
        None,
        None,
        Decimal("0.0042"),
    )
    assert AuditLog.objects.get(source_pk="3").user is None
    dropped = lines(report, "value dropped")
    assert dropped[(uid(57), "user_id")]["reason"].startswith("parent user missing at source")
    assert dropped[("3", "user_id")]["reason"].startswith("parent user refused")
    assert "parent refused/missing" in lines(report, "refused", "api_keys")[uid(22)]["reason"]


def test_a_ledger_row_stored_without_its_user_is_linked_once_the_user_lands(tmp_path):
    path = source("auto_analyst", tmp_path)
    run_import("auto_analyst", path, tmp_path / "r1.jsonl")
    assert ModelUsage.objects.get(source_pk="1005").user is None

    connection = sqlite3.connect(path)
    connection.execute(
        "INSERT INTO users VALUES (99, 'late', 'late@example.com', '2025-02-05 00:00:00')"
    )
    connection.commit()
    connection.close()
    out, _, report = run_import("auto_analyst", path, tmp_path / "r2.jsonl")

    # User 99 lands, then chat 13 (refused for want of it), then both ledger rows link.
    user_99 = AppUser.objects.get(source_pk="99")
    assert ModelUsage.objects.get(source_pk="1005").user == user_99
    assert ModelUsage.objects.get(source_pk="1006").chat == Chat.objects.get(
        source_pk="13", user=user_99
    )
    counts = summary_counts(out)
    assert (counts["chats"]["created"], counts["model_usage"]["updated"]) == (1, 2)
    assert not lines(report, "value dropped", "model_usage")
    cursor = ModelUsage.objects.get(source_pk="1005").source.sync_cursor["model_usage"]
    assert cursor["unlinked"] == []


def test_a_row_the_writer_cannot_take_is_refused_and_the_run_goes_on(tmp_path, monkeypatch):
    path = source("auto_analyst", tmp_path)
    write = engine.Importer.write

    def overflow_on_chat_11(self, table, items):
        if table.name == "chats" and any(item.pk == "11" for item in items):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return write(self, table, items)

    monkeypatch.setattr(engine.Importer, "write", overflow_on_chat_11)
    out, _, report = run_import("auto_analyst", path, tmp_path / "r.jsonl")

    reason = lines(report, "refused", "chats")["11"]["reason"]
    assert (
        reason
        == "could not be written: OverflowError: Python int too large to convert to SQLite INTEGER"
    )
    counts = summary_counts(out)
    assert counts["chats"]["created"] == 3  # 10, 12, 16: the others of the batch landed
    assert counts["messages"]["created"] > 0  # and the run went on


def test_a_refused_row_fixed_at_the_source_lands_on_the_next_run(tmp_path):
    path = source(
        "auto_analyst", tmp_path, "UPDATE model_usage SET cost = -1 WHERE usage_id = 1000"
    )
    run_import("auto_analyst", path, tmp_path / "r1.jsonl")
    assert not ModelUsage.objects.filter(source_pk="1000").exists()

    connection = sqlite3.connect(path)
    connection.execute("UPDATE model_usage SET cost = 0.5 WHERE usage_id = 1000")
    connection.execute("UPDATE messages SET sender = 'user' WHERE message_id = 103")
    connection.commit()
    connection.close()
    out, _, report = run_import("auto_analyst", path, tmp_path / "r2.jsonl")

    assert ModelUsage.objects.get(source_pk="1000").cost == Decimal("0.5")
    assert Message.objects.filter(source_pk="103").exists()
    counts = summary_counts(out)
    assert (counts["model_usage"]["created"], counts["messages"]["created"]) == (1, 1)
    # Still without their parents (user 99 missing): read again, reported again.
    assert ("1005", "user_id") in lines(report, "value dropped", "model_usage")
    assert not lines(report, "refused", "model_usage")


def test_exit_code_is_0_with_refusals_and_drops(tmp_path):
    path = source(
        "auto_analyst", tmp_path, "UPDATE model_usage SET cost = 1e30 WHERE usage_id = 1000"
    )

    call_command(
        "import_source",
        "auto_analyst",
        str(path),
        "--no-progress",
        "--rejects",
        str(tmp_path / "r.jsonl"),
    )  # no CommandError: exit 0

    assert ModelUsage.objects.count() == 7  # of 8: all but 1000


def test_the_summary_counts_per_table_and_reason_with_a_first_example(tmp_path):
    path = source(
        "auto_analyst",
        tmp_path,
        "UPDATE model_usage SET cost = -1 WHERE usage_id IN (1000, 1001)",
        "UPDATE model_usage SET cost = -2.5 WHERE usage_id = 1002",
        "UPDATE code_executions SET failed_agents = '[oops' WHERE execution_id IN (1, 2)",
    )

    out, _, report = run_import("auto_analyst", path, tmp_path / "r.jsonl")

    summary = out[out.index("Refused rows and dropped values") :].splitlines()
    (cost,) = [line for line in summary if "model_usage" in line and "impossible cost" in line]
    assert cost.split()[:3] == ["model_usage", "refused", "3"]
    after = summary[summary.index(cost) + 1].strip()
    assert after == "first: pk 1000: cost: impossible cost -1.0 outside 0…100,000 USD"
    (json_,) = [line for line in summary if "code_executions" in line and "JSON" in line]
    assert json_.split()[:4] == ["code_executions", "value", "dropped", "3"]  # 1, 2 and 3
    # The same counts as the full report.
    assert len([r for r in report if "impossible cost" in r["reason"]]) == 3
