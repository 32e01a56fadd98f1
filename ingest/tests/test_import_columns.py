"""Each kind imported from its SQLite source: every documented column of every
table compared with the source row read by plain SQL, the totals, and the
report of refused rows.

Expected values are derived from the source value and the target field's
type here, independently of the importer's converters: dates as aware UTC,
0/1 as booleans, JSON text parsed, floats as 8-place decimals for money.
"""

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.apps import apps
from django.db.models import Sum

from core.models import Organization, Source
from ingest.tests.source_dbs import (
    BAD_ROWS,
    DROPPED,
    ENTITY_MAP,
    KINDS,
    ROWS,
    build_sqlite,
    run_import,
    source_row,
    source_rows,
    summary_counts,
)
from usage.models import ModelPrice, ModelUsage

pytestmark = pytest.mark.django_db

PRICES = [  # USD per million input / output tokens
    ("gpt-4o", "openai", "2.50", "10.00"),
    ("gpt-4o-mini", "openai", "0.15", "0.60"),
    ("claude-3-5-haiku-latest", "anthropic", "0.80", "4.00"),
]
TURNS = ("ds_ml_agent", "chatbot_conversation_states")
ANY = object()  # a NOT NULL field whose default is computed (created_at = now)


@pytest.fixture
def prices(db):
    for model_name, provider, prompt, completion in PRICES:
        ModelPrice.objects.create(
            model_name=model_name,
            provider=provider,
            input_per_million=Decimal(prompt),
            output_per_million=Decimal(completion),
            effective_from=dt.date(2024, 1, 1),
        )


def imported(kind, tmp_path):
    path = build_sqlite(kind, tmp_path / f"{kind}.sqlite3")
    url = f"sqlite:///{path}"
    out, err, report = run_import(kind, url, tmp_path / "report.jsonl")
    return url, out, err, report


# --- expected values ---------------------------------------------------------------


def as_utc(raw):
    moment = raw if isinstance(raw, dt.datetime) else dt.datetime.fromisoformat(raw)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def expected_value(field, raw):
    if raw is None:
        if field.null:
            return None
        if field.has_default() and not callable(field.default):
            return field.get_default()
        return ANY
    kind = field.get_internal_type()
    if kind == "DateTimeField":
        return as_utc(raw)
    if kind == "BooleanField":
        return bool(raw)
    if kind == "JSONField":
        return json.loads(raw) if isinstance(raw, str) else raw
    if kind == "DecimalField":
        return Decimal(repr(raw)).quantize(Decimal(1).scaleb(-field.decimal_places))
    if kind == "FloatField":
        return float(raw)
    if kind.endswith("IntegerField"):
        return int(raw)
    return str(raw)


def priced_cost(usage):
    price = ModelPrice.objects.filter(model_name=usage.model_name, provider=usage.provider).first()
    if price is None:
        return None, ModelUsage.CostSource.UNPRICED
    cost = price.cost_of(usage.prompt_tokens, usage.completion_tokens)
    return cost.quantize(Decimal("0.00000001")), ModelUsage.CostSource.COMPUTED


def check_column(kind, table, column, field, raw, holder, where):
    value = getattr(holder, field.attname)
    if field.name == "source_pk":
        return  # the key itself: checked by matching rows
    if field.is_relation:
        related = getattr(holder, field.name)
        if raw is None:
            assert related is None, where
        elif field.related_model is Organization:
            assert related.slug == raw, where
        else:
            assert related.source_pk == str(raw), where
        return
    if (kind, column) == ("auto_analyst", "sender"):
        assert value == {"ai": "assistant"}.get(raw, raw), where
        return
    if isinstance(holder, ModelUsage) and field.name == "cost" and raw is None:
        assert (value, holder.cost_source) == priced_cost(holder), where
        return
    if isinstance(holder, ModelUsage) and field.name == "cost":
        assert holder.cost_source == ModelUsage.CostSource.REPORTED, where
    if isinstance(holder, ModelUsage) and field.name == "model_name" and raw is None:
        assert value == "unknown", where
        return
    if isinstance(holder, ModelUsage) and field.name == "total_tokens" and raw is None:
        # a total the source left NULL is the sum of its parts (usage.ledger)
        assert value == (holder.prompt_tokens or 0) + (holder.completion_tokens or 0), where
        return
    expected = expected_value(field, raw)
    if expected is ANY:
        assert value is not None, where
    else:
        assert value == expected, where


def our_rows(kind, table, model, source, row, pk_column):
    """The rows one source row became: (object, columns it holds) pairs."""
    pk = str(row[pk_column])
    objects = model.objects.filter(source=source)
    if (kind, table) == TURNS:
        pairs = [(objects.get(source_pk=f"{pk}:user"), {"agent_response"})]
        if row["agent_response"] is not None:
            pairs.append((objects.get(source_pk=f"{pk}:assistant"), {"user_message"}))
        else:
            assert not objects.filter(source_pk=f"{pk}:assistant").exists()
        return pairs
    return [(objects.get(source_pk=pk), set())]


def compare_all(kind, url, source, kept=()):
    """Every documented column of every table of ``kind`` against the source.

    ``kept``: (table, pk) of rows deleted at the source that we still hold.
    """
    checked = 0
    for table, columns in ENTITY_MAP[kind].items():
        pk_column = next(c for c, target in columns.items() if target.endswith(".source_pk"))
        model = apps.get_model(*columns[pk_column].split(".")[:2])
        bad = {pk for (name, pk) in BAD_ROWS[kind] if name == table}
        rows = [r for r in source_rows(url, table) if str(r[pk_column]) not in bad]
        dropped = {pk: columns for (name, pk), columns in DROPPED[kind].items() if name == table}
        expected_pks = set()
        for row in rows:
            for obj, skipped in our_rows(kind, table, model, source, row, pk_column):
                expected_pks.add(obj.source_pk)
                for column, target in columns.items():
                    if column in skipped:
                        continue
                    app_label, model_name, field_name = target.split(".")
                    holder = obj
                    if model_name != model.__name__:  # query_analytics → its ledger row
                        holder = obj.usage
                        if holder is None:
                            assert row[column] is None, (table, row[pk_column], column)
                            continue
                    field = apps.get_model(app_label, model_name)._meta.get_field(field_name)
                    where = (table, row[pk_column], column, row[column])
                    # A dropped value lands as if the source had NULL.
                    raw = None if column in dropped.get(str(row[pk_column]), ()) else row[column]
                    check_column(kind, table, column, field, raw, holder, where)
                    checked += 1
        expected_pks |= {pk for (name, pk) in kept if name == table}
        ours = set(model.objects.filter(source=source).values_list("source_pk", flat=True))
        assert ours == expected_pks, table
    return checked


@pytest.mark.parametrize("kind", KINDS)
def test_every_column_of_every_table_lands_as_the_source_has_it(kind, tmp_path, prices):
    url, *_ = imported(kind, tmp_path)

    checked = compare_all(kind, url, Source.objects.get(kind=kind))

    documented = sum(len(columns) - 1 for columns in ENTITY_MAP[kind].values())
    assert checked >= documented  # every column was looked at, most of them several times


@pytest.mark.parametrize("kind", KINDS)
def test_counts_per_table_are_the_good_source_rows(kind, tmp_path, prices):
    url, out, err, report = imported(kind, tmp_path)

    counts = summary_counts(out)
    for table, (_, rows) in ROWS[kind].items():
        if table == "alembic_version":
            assert table not in counts
            continue
        bad = sum(1 for name, _ in BAD_ROWS[kind] if name == table)
        dropped = sum(len(c) for (name, _), c in DROPPED[kind].items() if name == table)
        assert counts[table] == {
            "read": len(rows),
            "created": len(rows) - bad,
            "updated": 0,
            "unchanged": 0,
            "refused": bad,
            "dropped": dropped,
            "deleted_at_source": 0,
        }, table


TOTALS = {
    # kind: [(SQL on the source, our figure)]; bad rows excluded on both sides
    # (none in the ledger: rows whose user or chat is missing land without it).
    "auto_analyst": [
        (
            "SELECT SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens) FROM model_usage",
            lambda s: tuple(
                ModelUsage.objects.filter(source=s)
                .aggregate(Sum("prompt_tokens"), Sum("completion_tokens"), Sum("total_tokens"))
                .values()
            ),
        ),
        (
            "SELECT SUM(cost) FROM model_usage",
            lambda s: ModelUsage.objects.filter(
                source=s, cost_source=ModelUsage.CostSource.REPORTED
            ).aggregate(Sum("cost"))["cost__sum"],
        ),
        (
            "SELECT COUNT(*), COUNT(user_id), COUNT(chat_id) FROM model_usage",
            # every ledger row lands; a link to a user or chat missing or
            # refused at the source goes (1005: user 99, 1006: chat 13)
            lambda s: (
                ModelUsage.objects.filter(source=s).count(),
                ModelUsage.objects.filter(source=s, user__isnull=False).count() + 1,
                ModelUsage.objects.filter(source=s, chat__isnull=False).count() + 1,
            ),
        ),
        (
            "SELECT COUNT(*) FROM model_usage WHERE cost IS NULL",
            lambda s: (
                ModelUsage.objects.filter(source=s)
                .exclude(cost_source=ModelUsage.CostSource.REPORTED)
                .count()
            ),
        ),
    ],
    "text_to_sql": [
        (
            "SELECT SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens) "
            "FROM query_analytics",
            lambda s: tuple(
                ModelUsage.objects.filter(source=s)
                .aggregate(Sum("prompt_tokens"), Sum("completion_tokens"), Sum("total_tokens"))
                .values()
            ),
        ),
        (
            "SELECT SUM(llm_cost_estimate) FROM query_analytics",
            lambda s: ModelUsage.objects.filter(
                source=s, cost_source=ModelUsage.CostSource.REPORTED
            ).aggregate(Sum("cost"))["cost__sum"],
        ),
    ],
    "ai_chat_v2": [
        (
            "SELECT SUM(prompt_tokens), SUM(completion_tokens) FROM messages "
            "WHERE role = 'assistant' AND (prompt_tokens IS NOT NULL "
            "OR completion_tokens IS NOT NULL)",
            lambda s: tuple(
                ModelUsage.objects.filter(source=s)
                .aggregate(Sum("prompt_tokens"), Sum("completion_tokens"))
                .values()
            ),
        ),
    ],
    "ds_ml_agent": [
        (
            "SELECT SUM(file_size) FROM chatbot_uploaded_files WHERE id != 44",
            lambda s: (
                apps.get_model("chats", "UploadedFile")
                .objects.filter(source=s)
                .aggregate(Sum("file_size"))["file_size__sum"]
            ),
        ),
        (
            "SELECT COUNT(*) + SUM(CASE WHEN agent_response IS NULL THEN 0 ELSE 1 END) "
            "FROM chatbot_conversation_states WHERE id NOT IN (4, 5)",
            lambda s: apps.get_model("chats", "Message").objects.filter(source=s).count(),
        ),
    ],
}


@pytest.mark.parametrize("kind", KINDS)
def test_totals_match_the_source(kind, tmp_path, prices):
    url, *_ = imported(kind, tmp_path)
    source = Source.objects.get(kind=kind)

    for sql, ours in TOTALS[kind]:
        theirs = tuple(
            Decimal(repr(v)).quantize(Decimal("0.00000001")) if isinstance(v, float) else v
            for v in source_row(url, sql)
        )
        figure = ours(source)
        assert (figure if isinstance(figure, tuple) else (figure,)) == theirs, sql


@pytest.mark.parametrize("kind", KINDS)
def test_report_lists_exactly_the_bad_rows_with_reasons_and_raw_rows(kind, tmp_path, prices):
    url, out, err, report = imported(kind, tmp_path)

    refused = {
        (line["table"], line["source_pk"]): line for line in report if line["outcome"] == "refused"
    }
    assert set(refused) == set(BAD_ROWS[kind])
    for key, word in BAD_ROWS[kind].items():
        assert word in refused[key]["reason"], (key, refused[key]["reason"])
    # The raw row as the source has it, every column.
    table, pk = next(iter(BAD_ROWS[kind]))
    columns, rows = ROWS[kind][table]
    (raw,) = [r for r in rows if str(r[0]) == pk]
    assert list(refused[(table, pk)]["row"]) == list(columns)
    assert refused[(table, pk)]["row"][columns[0]] == raw[0]
    assert f"{len(BAD_ROWS[kind])} rows refused" in err


@pytest.mark.parametrize("kind", KINDS)
def test_report_lists_exactly_the_dropped_values_with_reasons_and_raw_values(
    kind, tmp_path, prices
):
    url, out, err, report = imported(kind, tmp_path)

    dropped = {
        (line["table"], line["source_pk"], line["column"]): line
        for line in report
        if line["outcome"] == "value dropped"
    }
    expected = {
        (table, pk, column): word
        for (table, pk), columns in DROPPED[kind].items()
        for column, word in columns.items()
    }
    assert set(dropped) == set(expected)
    for (table, pk, column), word in expected.items():
        line = dropped[(table, pk, column)]
        assert word in line["reason"], line
        columns, rows = ROWS[kind][table]
        (raw,) = [r for r in rows if str(r[0]) == pk]
        assert line["value"] == raw[columns.index(column)]


def test_email_differing_only_in_case_names_the_owner(tmp_path, prices):
    _, _, _, report = imported("auto_analyst", tmp_path)

    (line,) = [r for r in report if (r["table"], r["source_pk"]) == ("users", "4")]
    assert line["reason"] == (
        "email 'Alice@Example.com' differs only in case from 'alice@example.com' "
        "of source pk '1' (same batch)"
    )


def test_ds_ml_agent_org_ids_and_user_ids_become_organisations_and_app_users(tmp_path):
    path = build_sqlite("ds_ml_agent", tmp_path / "agent.sqlite3")
    run_import("ds_ml_agent", path, tmp_path / "r1.jsonl")
    run_import("ds_ml_agent", path, tmp_path / "r2.jsonl", "--source-name", "agent copy")

    assert sorted(Organization.objects.values_list("slug", "name")) == [
        ("org_acme_corp", "Acme Corp"),
        ("org_techstart_inc", "Techstart Inc"),
    ]  # one each, shared by both sources
    users = apps.get_model("core", "AppUser").objects.filter(source__name="agent copy")
    assert sorted(users.values_list("source_pk", "username", "organization__slug")) == [
        ("user_jane_smith_456", None, "org_acme_corp"),
        ("user_john_doe_123", None, "org_acme_corp"),
    ]
    anonymous = apps.get_model("chats", "Chat").objects.get(
        source__name="agent copy", source_pk="sess_c9f5e1d4a3b6"
    )
    assert (anonymous.user, anonymous.organization.slug) == (None, "org_techstart_inc")
