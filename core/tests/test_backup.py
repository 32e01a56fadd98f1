"""backup_db and restore_db: a backup restored into a fresh database holds
every table with the same number of rows (and the same rows).

SQLite uses the sqlite3 backup API; PostgreSQL pg_dump -Fc / pg_restore,
skipped with a reason where the tools are missing. The PostgreSQL test
restores into a database of its own (created and dropped here).
"""

import os
import shutil
import sqlite3
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from core.models import AuditLog, DatabaseConnection

from . import factories as f
from .test_production import restore_migration_data  # noqa: F401 (autouse)

# pg_dump runs in another session: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def data():
    """Rows in many tables, a secret among them."""
    f.one_row_of_every_model()
    f.ChatFactory.create_batch(3)
    f.AuditLogFactory.create_batch(2)
    connection_row = f.DatabaseConnectionFactory()
    connection_row.set_password("restored-password-4711")
    connection_row.save()
    return connection_row


def live_counts():
    """{table: rows} of every table of the test database, read through Django."""
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        counts = {}
        for table in tables:
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608
            counts[table] = cursor.fetchone()[0]
    return counts


def run(command, *args):
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


# SQLite ---------------------------------------------------------------------


def sqlite_counts(path):
    with sqlite3.connect(path) as db:
        tables = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}  # noqa: S608


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backup API: SQLite only")
def test_sqlite_backup_restores_into_a_fresh_database_with_every_row(data, tmp_path):
    backup = tmp_path / "backup.sqlite3"
    fresh = tmp_path / "fresh.sqlite3"
    expected = live_counts()

    out = run("backup_db", str(backup))
    restored = run("restore_db", str(backup), "--target", f"sqlite:///{fresh}", "--noinput")

    assert sqlite_counts(fresh) == expected
    assert sum(expected.values()) > 50
    assert expected["core_databaseconnection"] == 2  # the factory's and ours
    assert f"Restored {len(expected)} tables" in restored
    assert "Backed up the sqlite database" in out
    assert not (tmp_path / "backup.sqlite3.partial").exists()
    with sqlite3.connect(fresh) as db:
        (token,) = db.execute(
            "SELECT encrypted_db_password FROM core_databaseconnection WHERE id = ?", [data.pk]
        ).fetchone()
    assert token == data.encrypted_db_password  # still encrypted, still ours
    assert DatabaseConnection(encrypted_db_password=token).get_password() == (
        "restored-password-4711"
    )


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backup API: SQLite only")
def test_sqlite_restore_replaces_a_database_that_has_tables(data, tmp_path):
    backup = tmp_path / "backup.sqlite3"
    target = tmp_path / "old.sqlite3"
    with sqlite3.connect(target) as db:
        db.execute("CREATE TABLE stale (id INTEGER)")
    run("backup_db", str(backup))

    run("restore_db", str(backup), "--target", f"sqlite:///{target}", "--noinput")

    counts = sqlite_counts(target)
    assert "stale" not in counts
    assert counts["core_auditlog"] == AuditLog.objects.count()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backup API: SQLite only")
def test_restore_refuses_a_backup_of_another_kind(tmp_path):
    bogus = tmp_path / "backup.dump"
    bogus.write_bytes(b"PGDMP\x01\x0e\x00 not for sqlite")

    with pytest.raises(CommandError, match="is a postgresql backup"):
        run("restore_db", str(bogus), "--target", f"sqlite:///{tmp_path}/x.sqlite3", "--noinput")


# PostgreSQL -----------------------------------------------------------------


@pytest.fixture
def fresh_postgres_database():
    """An empty database on the test server, dropped afterwards."""
    import psycopg

    db = connection.settings_dict
    name = f"{db['NAME']}_restore_{os.getpid()}"
    params = {
        "host": db["HOST"] or None,
        "port": db["PORT"] or None,
        "user": db["USER"] or None,
        "password": db["PASSWORD"] or None,
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**params) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    url = f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"
    yield url, {**params, "dbname": name}
    with psycopg.connect(**params) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_counts(params):
    import psycopg

    with psycopg.connect(**params) as db:
        tables = [
            name
            for (name,) in db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        return {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}  # noqa: S608


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_dump/pg_restore: PostgreSQL")
@pytest.mark.skipif(
    not (shutil.which("pg_dump") and shutil.which("pg_restore")),
    reason="pg_dump / pg_restore not installed (apt-get install postgresql-client)",
)
def test_postgres_backup_restores_into_a_fresh_database_with_every_row(
    data, tmp_path, fresh_postgres_database
):
    url, params = fresh_postgres_database
    backup = tmp_path / "backup.dump"
    expected = live_counts()

    out = run("backup_db", str(backup))
    restored = run("restore_db", str(backup), "--target", url, "--noinput")

    assert backup.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert postgres_counts(params) == expected
    assert sum(expected.values()) > 50
    assert f"Restored {len(expected)} tables" in restored
    assert "Backed up the postgresql database" in out
    # Restoring again over the restored copy replaces it (pg_restore --clean).
    run("restore_db", str(backup), "--target", url, "--noinput")
    assert postgres_counts(params) == expected


def test_backup_refuses_an_unknown_file(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello")

    with pytest.raises(CommandError, match="neither a SQLite backup nor a pg_dump"):
        run("restore_db", str(junk), "--noinput")


# Permissions and failures (#17.5, #17.10) -----------------------------------


@pytest.fixture
def open_umask():
    """The default umask that made backups world-readable (0644)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_backup_is_readable_by_its_owner_only(data, tmp_path, open_umask):
    backup = tmp_path / "backup.dump"

    run("backup_db", str(backup))

    assert backup.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "backup.dump.partial").exists()


@pytest.mark.parametrize("where", ["missing-folder/backup.dump", "a-file/backup.dump"])
def test_an_unwritable_backup_path_is_a_clear_command_error(tmp_path, where):
    (tmp_path / "a-file").write_text("not a folder")

    with pytest.raises(CommandError, match="cannot write the backup to .*backup.dump"):
        run("backup_db", str(tmp_path / where))


def test_restoring_a_missing_backup_file_is_a_clear_command_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read the backup .*nothing.dump"):
        run("restore_db", str(tmp_path / "nothing.dump"), "--noinput")


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backup API: SQLite only")
def test_a_truncated_sqlite_backup_is_refused_and_the_target_kept(data, tmp_path):
    backup = tmp_path / "backup.sqlite3"
    target = tmp_path / "target.sqlite3"
    with sqlite3.connect(target) as db:
        db.execute("CREATE TABLE precious (id INTEGER)")
        db.execute("INSERT INTO precious VALUES (1)")
    run("backup_db", str(backup))
    whole = backup.read_bytes()
    backup.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(CommandError, match="not a complete SQLite backup"):
        run("restore_db", str(backup), "--target", f"sqlite:///{target}", "--noinput")

    assert sqlite_counts(target) == {"precious": 1}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_dump/pg_restore: PostgreSQL")
@pytest.mark.skipif(
    not (shutil.which("pg_dump") and shutil.which("pg_restore")),
    reason="pg_dump / pg_restore not installed (apt-get install postgresql-client)",
)
def test_a_truncated_postgres_backup_is_a_clear_command_error(
    data, tmp_path, fresh_postgres_database
):
    url, params = fresh_postgres_database
    backup = tmp_path / "backup.dump"
    run("backup_db", str(backup))
    whole = backup.read_bytes()
    backup.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(CommandError, match="pg_restore failed"):
        run("restore_db", str(backup), "--target", url, "--noinput")

    assert postgres_counts(params) == {}  # one transaction: nothing restored
