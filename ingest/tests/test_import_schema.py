"""Releases (#16.1): the tables that identify a kind are required, every other
documented table and column is optional, and what the source has beyond its
schema document is ignored; all of it reported."""

import sqlite3

import pytest
from django.core.management import call_command

from chats.models import Message
from core.models import AgentTemplate, AppUser
from ingest.importers import MAPPINGS
from ingest.importers.engine import required_columns
from ingest.tests.source_dbs import BAD_ROWS, KINDS, ROWS, ddl, run_import, summary_counts
from usage.models import ModelUsage

pytestmark = pytest.mark.django_db

# A documented, optional column of each kind to leave out, and its table.
LEFT_OUT = {
    "auto_analyst": ("model_usage", "request_time_ms"),
    "ds_ml_agent": ("chatbot_sessions", "updated_at"),
    "text_to_sql": ("users", "preferences"),
    "ai_chat_v2": ("messages", "persona"),
}


def build(kind, path, drop_tables=(), drop_columns=(), extra_sql=()):
    """The kind's source as its schema documents it, less some tables or
    columns (an older release), plus ``extra_sql`` (a newer one)."""
    rows = {t: spec for t, spec in ROWS[kind].items() if t not in drop_tables}
    statements = [
        s for s in ddl(kind, "sqlite") if not any(f"TABLE {t} " in s for t in drop_tables)
    ]
    statements = [s for s in statements if not any(f"ON {t}(" in s for t in drop_tables)]
    connection = sqlite3.connect(path)
    for statement in statements:
        connection.execute(statement)
    for table, column in drop_columns:
        connection.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')
    for table, (columns, values) in rows.items():
        keep = [i for i, c in enumerate(columns) if (table, c) not in drop_columns]
        names = ", ".join(f'"{columns[i]}"' for i in keep)
        marks = ", ".join("?" * len(keep))
        connection.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks})",
            [tuple(row[i] for i in keep) for row in values],
        )
    for statement in extra_sql:
        connection.execute(statement)
    connection.commit()
    connection.close()
    return path


def test_an_older_auto_analyst_without_templates_imports_with_exit_0(tmp_path):
    path = build(
        "auto_analyst",
        tmp_path / "old.sqlite3",
        drop_tables=("agent_templates", "user_template_preferences"),
    )

    call_command(  # no CommandError: exit code 0
        "import_source",
        "auto_analyst",
        str(path),
        "--no-progress",
        "--rejects",
        str(tmp_path / "r.jsonl"),
    )
    out, _, report = run_import("auto_analyst", path, tmp_path / "again.jsonl")

    assert "absent at source: agent_templates, user_template_preferences" in out
    absent = {(r["table"], r["column"]) for r in report if r["outcome"] == "absent at source"}
    assert absent == {("agent_templates", None), ("user_template_preferences", None)}
    assert not AgentTemplate.objects.exists()
    # every ledger row, as with the templates
    assert ModelUsage.objects.count() == len(ROWS["auto_analyst"]["model_usage"][1])
    assert "agent_templates" not in summary_counts(out)


@pytest.mark.parametrize("kind", KINDS)
def test_a_documented_column_absent_is_read_as_null_and_reported(kind, tmp_path):
    table, column = LEFT_OUT[kind]
    assert column not in required_columns(next(t for t in MAPPINGS[kind].tables if t.name == table))
    path = build(kind, tmp_path / "old.sqlite3", drop_columns=[(table, column)])

    out, _, report = run_import(kind, path, tmp_path / "r.jsonl")

    assert f"absent at source: {table}.{column}" in out
    (note,) = [r for r in report if r["outcome"] == "absent at source"]
    assert (note["table"], note["column"]) == (table, column)
    counts = summary_counts(out)
    bad = {pk for (name, pk) in BAD_ROWS[kind] if name == table}
    assert counts[table]["created"] == len(ROWS[kind][table][1]) - len(bad)


@pytest.mark.parametrize("kind", KINDS)
def test_an_undocumented_table_or_column_is_ignored_and_reported(kind, tmp_path):
    table = MAPPINGS[kind].tables[0].name
    path = build(
        kind,
        tmp_path / "new.sqlite3",
        extra_sql=[
            f"ALTER TABLE {table} ADD COLUMN shoe_size INTEGER",
            f"UPDATE {table} SET shoe_size = 44",
            "CREATE TABLE feature_flags (id INTEGER PRIMARY KEY, name TEXT)",
        ],
    )

    out, _, report = run_import(kind, path, tmp_path / "r.jsonl")

    ignored = {(r["table"], r["column"]) for r in report if r["outcome"] == "ignored"}
    assert ignored == {(table, "shoe_size"), ("feature_flags", None)}
    assert f"ignored: {table}.shoe_size, feature_flags" in out
    assert summary_counts(out)[table]["created"] > 0


def test_a_table_without_its_updated_at_is_read_as_one_without(tmp_path):
    path = build("ai_chat_v2", tmp_path / "old.sqlite3", drop_columns=[("sessions", "updated_at")])

    run_import("ai_chat_v2", path, tmp_path / "r1.jsonl")
    out, _, _ = run_import("ai_chat_v2", path, tmp_path / "r2.jsonl")

    assert summary_counts(out)["sessions"]["unchanged"] == 2
    assert Message.objects.exists() and AppUser.objects.exists()


def test_identifying_tables_are_documented_tables():
    for mapping in MAPPINGS.values():
        names = [t.name for t in mapping.tables]
        assert mapping.identifying and set(mapping.identifying) <= set(names)
