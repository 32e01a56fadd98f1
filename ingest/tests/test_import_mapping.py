"""The importers' mappings against the entity map, and their small functions."""

import datetime as dt
from decimal import Decimal

import pytest
from django.apps import apps

from chats.models import Message, MessageFeedback
from core.models import AppUser
from ingest.importers import MAPPINGS
from ingest.importers.checks import DEFAULTED, constraint_checker, field_cleaner, unique_keys
from ingest.importers.converters import (
    boolean,
    decimal,
    integer,
    json_value,
    provider_of,
    role,
    timestamp,
)
from ingest.importers.spec import Col, Fk
from ingest.tests.source_dbs import ENTITY_MAP, KINDS
from usage.models import ModelUsage


def mapped_targets(mapping):
    """{table: {column: 'app.Model.field'}} as the mapping declares it."""
    targets = {}
    for table in mapping.tables:
        label = f"{table.model._meta.app_label}.{table.model.__name__}"
        columns = {table.pk: f"{label}.source_pk"}
        for column, spec in table.columns.items():
            if isinstance(spec, Fk):
                columns[column] = f"{label}.{spec.field}"
            elif spec.field.startswith("usage."):
                columns[column] = f"usage.ModelUsage.{spec.field.removeprefix('usage.')}"
            elif spec.field == "_agent_response":  # a turn's reply: the assistant message
                columns[column] = f"{label}.content"
            else:
                columns[column] = f"{label}.{spec.field}"
        targets[table.name] = columns
    return targets


@pytest.mark.parametrize("kind", KINDS)
def test_every_documented_column_lands_where_the_entity_map_says(kind):
    assert mapped_targets(MAPPINGS[kind]) == ENTITY_MAP[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_every_target_field_exists(kind):
    for columns in ENTITY_MAP[kind].values():
        for target in columns.values():
            app_label, model_name, field_name = target.split(".")
            apps.get_model(app_label, model_name)._meta.get_field(field_name)


@pytest.mark.parametrize("kind", KINDS)
def test_tables_are_imported_parents_first(kind):
    seen = set()
    for table in MAPPINGS[kind].tables:
        for fk in table.foreign_keys.values():
            parent = MAPPINGS[kind].table_of(fk.model)
            assert parent is None or parent in seen, (table.name, parent)
        seen.add(table.name)


def test_text_to_sql_ignores_only_alembic_version():
    assert set(MAPPINGS["text_to_sql"].ignored) == {"alembic_version"}


@pytest.mark.parametrize(
    ("model_name", "provider"),
    [
        ("gpt-4o-mini", "openai"),
        ("GPT-4", "openai"),
        ("o3-mini", "openai"),
        ("claude-3-5-haiku-latest", "anthropic"),
        ("gemini-2.0-flash", "google"),
        ("llama-3.3-70b-versatile", "groq"),
        ("gemma2-9b-it", "groq"),
        ("deepseek-r1-distill-llama-70b", "groq"),
        ("mistral-large-latest", "mistral"),
        ("command-r-plus", "cohere"),
        ("openai/gpt-4o", "openai"),
        ("azure/gpt-4o", "azure"),
        ("my-own-model", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_provider_is_inferred_from_the_model_name(model_name, provider):
    assert provider_of(model_name) == provider


def test_timestamps_become_aware_utc_whatever_the_source_gives():
    utc = dt.UTC
    assert timestamp("2025-01-31 23:59:59") == dt.datetime(2025, 1, 31, 23, 59, 59, tzinfo=utc)
    assert timestamp("2025-03-01 01:30:00+02:00") == dt.datetime(2025, 2, 28, 23, 30, tzinfo=utc)
    # a naive datetime from a SQLite source is read as UTC
    assert timestamp(dt.datetime(2025, 1, 1)) == dt.datetime(2025, 1, 1, tzinfo=utc)  # noqa: DTZ001
    assert timestamp("2025-02-05T23:59:59.999999Z").microsecond == 999999
    assert timestamp(None) is None
    with pytest.raises(ValueError, match="not a date-time"):
        timestamp("yesterday")


def test_booleans_json_numbers_and_roles():
    assert [boolean(v) for v in (1, 0, True, "t", "false", None)] == [
        True,
        False,
        True,
        True,
        False,
        None,
    ]
    with pytest.raises(ValueError, match="not a boolean"):
        boolean(2)
    assert json_value('{"a": [1, 2]}') == {"a": [1, 2]}
    assert json_value({"already": "parsed"}) == {"already": "parsed"}
    with pytest.raises(ValueError, match="invalid JSON"):
        json_value("[not json")
    assert integer(5.0) == 5
    assert integer("12") == 12
    with pytest.raises(ValueError, match="not an integer"):
        integer(5.5)
    assert decimal(0.1) == Decimal("0.1")
    assert role("ai") == "assistant"
    assert role("robot") == "robot"  # left for the choices check to refuse


def test_field_cleaner_applies_defaults_ranges_and_validators():
    title = field_cleaner(apps.get_model("chats", "Chat")._meta.get_field("title"))
    assert title(None) == "New Chat"
    created = field_cleaner(apps.get_model("chats", "Chat")._meta.get_field("created_at"))
    assert created(None) is DEFAULTED
    content = field_cleaner(Message._meta.get_field("content"))
    with pytest.raises(ValueError, match="NULL"):
        content(None)
    with pytest.raises(ValueError, match="NUL character"):
        content("a\x00b")
    tokens = field_cleaner(Message._meta.get_field("prompt_tokens"))
    with pytest.raises(ValueError, match="impossible tokens"):
        tokens(2**31)
    size = field_cleaner(ModelUsage._meta.get_field("query_size"))
    with pytest.raises(ValueError, match="out of range"):
        size(2**31)
    ledger_tokens = field_cleaner(ModelUsage._meta.get_field("prompt_tokens"))
    assert ledger_tokens(10**9) == 10**9  # core.bounds: at most 10^9 tokens per call
    with pytest.raises(ValueError, match="impossible tokens"):
        ledger_tokens(2**40)
    with pytest.raises(ValueError, match="impossible cost"):
        field_cleaner(ModelUsage._meta.get_field("cost"))(Decimal("-0.01"))
    with pytest.raises(ValueError, match="impossible time"):
        field_cleaner(ModelUsage._meta.get_field("timestamp"))(
            dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
        )
    cost = field_cleaner(ModelUsage._meta.get_field("cost"))
    assert cost(Decimal("0.123456789")) == Decimal("0.12345679")
    email = field_cleaner(AppUser._meta.get_field("email"))
    with pytest.raises(ValueError, match="valid email"):
        email("not-an-e-mail")


def test_check_constraints_are_evaluated_with_sql_null_semantics():
    check = constraint_checker(MessageFeedback)
    assert check({"rating": 5}) is None
    assert check({"rating": None}) is None
    assert "chats_feedback_rating_1_5" in check({"rating": 7})
    message_check = constraint_checker(Message)
    assert "confidence" in message_check({"role": "assistant", "confidence": 2.0})
    assert message_check({"role": "assistant", "confidence": None, "signal_strength": 1.0}) is None


def test_unique_keys_are_read_off_the_model():
    labels = {(key.label, key.lower) for key in unique_keys(AppUser)}
    assert labels == {("email", True), ("username", False)}
    assert {key.label for key in unique_keys(MessageFeedback)} == {"message"}


def test_columns_map_through_col_or_fk_only():
    for mapping in MAPPINGS.values():
        for table in mapping.tables:
            assert all(isinstance(spec, Col | Fk) for spec in table.columns.values())
