"""What the importer does with databases, rows and batches it cannot take."""

import socket
import sqlite3
import threading
import time

import pytest
from django.core.management import CommandError, call_command, execute_from_command_line
from django.db import OperationalError, connection

from chats.models import Chat, Message, MessageFeedback
from core.models import AppUser, Source
from ingest.importers import checks, engine
from ingest.importers.readers import safe_url, scrubbed
from ingest.importers.writers import ModelWriter
from ingest.tests.source_dbs import (
    BAD_ROWS,
    DDL,
    DROPPED,
    ROWS,
    build_sqlite,
    ddl,
    execute,
    read_report,
    run_import,
    summary_counts,
)
from usage.models import ModelUsage

pytestmark = pytest.mark.django_db


def nothing_written():
    return not (Source.objects.exists() or AppUser.objects.exists() or Chat.objects.exists())


def test_a_database_of_another_kind_fails_before_writing_naming_the_missing_tables(tmp_path):
    path = build_sqlite("ai_chat_v2", tmp_path / "ai_chat.sqlite3")

    with pytest.raises(CommandError) as error:
        run_import("auto_analyst", path, tmp_path / "report.jsonl")

    assert str(error.value) == (
        "not a database of kind auto_analyst: missing tables chats, model_usage"
    )
    assert nothing_written()
    assert not (tmp_path / "report.jsonl").exists()


def test_missing_required_columns_fail_before_writing(tmp_path):
    # No message could land without its text or its role.
    path = tmp_path / "old.sqlite3"
    connection = sqlite3.connect(path)
    statements = [
        s.replace("    content TEXT NOT NULL,\n", "").replace("    sender VARCHAR NOT NULL,\n", "")
        for s in ddl("auto_analyst", "sqlite")
    ]
    execute(connection, statements)
    connection.close()

    with pytest.raises(CommandError, match=r"missing columns messages\.content, messages\.sender$"):
        run_import("auto_analyst", path, tmp_path / "report.jsonl")

    assert nothing_written()


def test_an_older_ai_chat_v2_without_the_later_columns_reads_them_as_null(tmp_path):
    path = tmp_path / "v1.sqlite3"
    connection = sqlite3.connect(path)
    statements = ddl("ai_chat_v2", "sqlite")
    for column in ("tone TEXT", "behavior TEXT", "signal_strength FLOAT", "mistake_note TEXT"):
        statements = [s.replace(f"    {column},\n", "") for s in statements]
    execute(connection, statements)
    connection.execute("INSERT INTO users VALUES ('u1', 'a@example.com', 'A', 'x', 1, NULL, NULL)")
    connection.execute("INSERT INTO sessions VALUES ('s1', 'T', 'u1', NULL, NULL)")
    connection.execute(
        "INSERT INTO messages (id, session_id, role, content) VALUES ('m1', 's1', 'user', 'hi')"
    )
    connection.commit()
    connection.close()

    run_import("ai_chat_v2", path, tmp_path / "report.jsonl")

    message = Message.objects.get(source_pk="m1")
    assert (message.tone, message.signal_strength, message.mistake_note) == (None, None, None)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/nowhere/app.db", "no SQLite database at /nowhere/app.db"),
        ("mysql://localhost/app", "unsupported source URL"),
    ],
)
def test_a_source_that_cannot_be_opened_fails(url, message, tmp_path):
    with pytest.raises(CommandError, match=message):
        run_import("auto_analyst", url, tmp_path / "report.jsonl")


def test_a_file_that_is_not_sqlite_fails(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, I am not a database" * 100)

    with pytest.raises(CommandError, match="not a SQLite database"):
        run_import("auto_analyst", path, tmp_path / "report.jsonl")


def test_a_source_name_of_another_kind_is_refused(tmp_path):
    Source.objects.create(name="shared", kind=Source.Kind.TEXT_TO_SQL)
    path = build_sqlite("auto_analyst", tmp_path / "aa.sqlite3")

    with pytest.raises(CommandError, match="'shared' is a text_to_sql source, not auto_analyst"):
        run_import("auto_analyst", path, tmp_path / "report.jsonl", "--source-name", "shared")


def test_default_source_name_and_report_path(tmp_path, settings):
    settings.BASE_DIR = tmp_path
    path = build_sqlite("ds_ml_agent", tmp_path / "agent.sqlite3")

    call_command("import_source", "ds_ml_agent", f"sqlite:///{path}", "--no-progress")

    assert Source.objects.get().name == "ds_ml_agent:agent.sqlite3"
    (report,) = (tmp_path / "var" / "import-rejects").glob("ds_ml_agent-*.jsonl")
    outcomes = sorted(line["outcome"] for line in read_report(report))
    dropped = sum(map(len, DROPPED["ds_ml_agent"].values()))
    assert outcomes == ["refused"] * len(BAD_ROWS["ds_ml_agent"]) + ["value dropped"] * dropped


# execute_from_command_line closes the test's database connection when the
# command ends (on PostgreSQL it is then unusable in the test's transaction).
@pytest.mark.rollups_unchecked
def test_exit_code_is_0_with_refused_rows_and_1_when_the_import_cannot_run(tmp_path, capsys):
    good = build_sqlite("auto_analyst", tmp_path / "aa.sqlite3")
    other = build_sqlite("ai_chat_v2", tmp_path / "other.sqlite3")
    argv = ["manage.py", "import_source", "auto_analyst", "--no-progress", "--rejects"]

    execute_from_command_line([*argv, str(tmp_path / "r1.jsonl"), str(good)])  # no SystemExit
    assert f"{len(BAD_ROWS['auto_analyst'])} rows refused" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        execute_from_command_line([*argv, str(tmp_path / "r2.jsonl"), str(other)])

    assert exit_.value.code == 1
    assert "missing tables" in capsys.readouterr().err


@pytest.mark.django_db(transaction=True)
def test_a_failure_part_way_exits_non_zero_and_keeps_committed_batches(tmp_path, monkeypatch):
    path = build_sqlite("auto_analyst", tmp_path / "aa.sqlite3")
    write = ModelWriter.write

    def fail_on_messages(self, records):
        if self.model is Message:  # our database, not the row: the run stops
            raise OperationalError("disk on fire")
        return write(self, records)

    monkeypatch.setattr(ModelWriter, "write", fail_on_messages)
    with pytest.raises(CommandError, match="import stopped in table messages: OperationalError"):
        run_import("auto_analyst", path, tmp_path / "report.jsonl", "--batch-size", "2")

    assert Chat.objects.count() == 4  # written before the failure, kept
    assert not Message.objects.exists()
    cursor = Source.objects.get().sync_cursor
    assert "messages" not in cursor and cursor["chats"] == {"pk": 16, "refused": ["13", "14"]}

    monkeypatch.setattr(ModelWriter, "write", write)
    out, _, _ = run_import("auto_analyst", path, tmp_path / "report2.jsonl")

    assert summary_counts(out)["messages"]["created"] == 4
    assert summary_counts(out)["chats"]["created"] == 0


def test_a_batch_the_database_refuses_is_retried_row_by_row(tmp_path, monkeypatch):
    # As if another writer had taken the values between our check and our
    # write: the unique check sees nothing, the database refuses the batch.
    monkeypatch.setattr(checks.UniqueChecker, "conflicts", lambda self, source, records: {})
    path = build_sqlite("auto_analyst", tmp_path / "aa.sqlite3")

    out, _, report = run_import("auto_analyst", path, tmp_path / "report.jsonl")

    reasons = {(r["table"], r["source_pk"]): r["reason"] for r in report}
    assert reasons[("users", "4")].startswith("refused by the database:")
    assert reasons[("message_feedback", "4")].startswith("refused by the database:")
    counts = summary_counts(out)
    assert (counts["users"]["created"], counts["users"]["refused"]) == (5, 1)
    assert MessageFeedback.objects.count() == 2
    assert AppUser.objects.filter(email__iexact="alice@example.com").count() == 1


def test_e_mail_or_username_of_another_source_is_refused_naming_the_owner(tmp_path):
    first = build_sqlite("auto_analyst", tmp_path / "first.sqlite3")
    run_import("auto_analyst", first, tmp_path / "first.jsonl")
    owner = AppUser.objects.get(email="bob@example.com")
    second = tmp_path / "second.sqlite3"
    connection = sqlite3.connect(second)
    execute(connection, ddl("auto_analyst", "sqlite"))
    connection.execute("INSERT INTO users VALUES (1, 'robert', 'bob@example.com', NULL)")
    connection.execute("INSERT INTO users VALUES (2, 'carol', 'carol2@example.com', NULL)")
    connection.execute("INSERT INTO users VALUES (3, 'dora', 'ZOE@example.com', NULL)")
    connection.commit()
    connection.close()

    _, _, report = run_import("auto_analyst", second, tmp_path / "second.jsonl")

    reasons = {r["source_pk"]: r["reason"] for r in report}
    assert reasons == {
        "1": f"email 'bob@example.com' already belongs to app user #{owner.pk} "
        "(source 'auto_analyst:first.sqlite3', source pk '2')",
        "2": f"username 'carol' already belongs to app user "
        f"#{AppUser.objects.get(username='carol').pk} "
        "(source 'auto_analyst:first.sqlite3', source pk '5')",
        "3": "email 'ZOE@example.com' differs only in case from 'zoe@example.com' of app user "
        f"#{AppUser.objects.get(email='zoe@example.com').pk} "
        "(source 'auto_analyst:first.sqlite3', source pk '3')",
    }


def test_an_app_user_created_here_is_named_as_such(tmp_path):
    AppUser.objects.create(email="alice@example.com")
    path = build_sqlite("auto_analyst", tmp_path / "aa.sqlite3")

    _, _, report = run_import("auto_analyst", path, tmp_path / "report.jsonl")

    (line,) = [r for r in report if r["source_pk"] == "1" and r["table"] == "users"]
    assert line["reason"].endswith("(created here)")


def test_batch_size_one_gives_the_same_result(tmp_path):
    path = build_sqlite("auto_analyst", tmp_path / "aa.sqlite3")

    out, _, report = run_import("auto_analyst", path, tmp_path / "r.jsonl", "--batch-size", "1")

    assert [line["outcome"] for line in report].count("refused") == len(BAD_ROWS["auto_analyst"])
    dropped = sum(map(len, DROPPED["auto_analyst"].values()))
    assert [line["outcome"] for line in report].count("value dropped") == dropped
    ledger_rows = len(ROWS["auto_analyst"]["model_usage"][1])  # every one lands
    assert summary_counts(out)["model_usage"]["created"] == ledger_rows
    assert ModelUsage.objects.count() == ledger_rows


def test_every_table_of_the_ddl_has_rows_in_the_fixture():
    for kind, text in DDL.items():
        tables = {line.split()[2] for line in text.splitlines() if line.startswith("CREATE TABLE")}
        assert tables == set(ROWS[kind]), kind


def test_an_implied_app_user_that_does_not_fit_refuses_its_session(tmp_path):
    path = build_sqlite("ds_ml_agent", tmp_path / "agent.sqlite3")
    connection = sqlite3.connect(path)
    connection.execute(
        "INSERT INTO chatbot_sessions (id, org_id, user_id) VALUES ('sess_long', 'org_x', ?)",
        ("u" * 101,),
    )
    connection.commit()
    connection.close()

    _, _, report = run_import("ds_ml_agent", path, tmp_path / "r.jsonl")

    (line,) = [r for r in report if r["source_pk"] == "sess_long"]
    assert line["reason"] == "user_id: Ensure this value has at most 100 characters (it has 101)."
    assert not AppUser.objects.filter(source_pk__startswith="uuu").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite checks deferred foreign keys only at the outer commit",
)
def test_a_foreign_key_the_database_refuses_at_commit_refuses_only_its_row(tmp_path, monkeypatch):
    # As if the app user had been deleted between our lookup and our commit.
    path = build_sqlite("auto_analyst", tmp_path / "aa.sqlite3")
    resolve = engine.Importer.resolve

    def stale_user_id(self, table, column, fk, items):
        refusals = resolve(self, table, column, fk, items)
        if table.name == "chats" and column == "user_id":
            for item in items:
                if item.pk == "12":
                    item.records[0].values["user_id"] = 10**9
        return refusals

    monkeypatch.setattr(engine.Importer, "resolve", stale_user_id)
    out, _, report = run_import("auto_analyst", path, tmp_path / "r.jsonl")

    (line,) = [r for r in report if (r["table"], r["source_pk"]) == ("chats", "12")]
    assert line["reason"].startswith("refused by the database:")
    assert summary_counts(out)["chats"]["created"] == 3


def test_an_unsupported_url_never_shows_its_password(tmp_path):
    with pytest.raises(CommandError) as error:
        run_import("auto_analyst", "mysql://root:hunter2@db/app", tmp_path / "r.jsonl")

    assert "hunter2" not in str(error.value)
    assert "mysql://root:***@db/app" in str(error.value)


def test_safe_url_and_scrubbed_mask_every_password():
    url = "postgresql://app:s3cr%2Ft@db:5432/app?sslmode=require&password=other"
    assert safe_url(url) == "postgresql://app:***@db:5432/app?sslmode=require&password=***"
    message = "FATAL: password authentication failed (s3cr%2Ft, other)"
    assert "s3cr" not in scrubbed(message, url) and "other" not in scrubbed(message, url)
    assert safe_url("postgres://u:p@host:notaport/db") == "postgres://u:***@host:notaport/db"


def test_a_postgresql_source_that_never_answers_fails_within_15_seconds(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    stop = threading.Event()

    def accept_and_stay_silent():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(CommandError) as error:
            run_import(
                "ds_ml_agent",
                f"postgresql://app:hunter2@127.0.0.1:{port}/app",
                tmp_path / "r.jsonl",
            )
    finally:
        stop.set()
        thread.join()
        for connection_ in accepted:
            connection_.close()
        listener.close()

    assert time.monotonic() - started < 15
    assert accepted  # it did connect, and the server never answered
    assert str(error.value).startswith(
        f"cannot connect to postgresql://app:***@127.0.0.1:{port}/app"
    )
    assert "timeout" in str(error.value).lower()
    assert "hunter2" not in str(error.value)
    assert nothing_written()
