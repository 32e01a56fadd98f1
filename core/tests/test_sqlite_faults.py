"""SQLite faults recover by themselves (#17.4), and /health/ fails when the
database is not the one the site was migrated on.

- A database file that goes missing is never re-created empty: the site
  answers 503 (and /health/ too) until the file is back, then 200 again,
  with no restart (a real gunicorn on a SQLite file).
- WAL side files left read-only (SQLite creates them with the database
  file's permissions, so a briefly read-only file leaves them so) get the
  database file's permissions back at the next connection.
- A database error closes the connection, so the next request reconnects.
"""

import os
import sqlite3
import stat

import pytest
from django.db import OperationalError
from django.db.migrations.recorder import MigrationRecorder
from django.test import RequestFactory

from analyst_admin.sqlite3.base import DatabaseWrapper
from core.middleware import DatabaseUnavailableMiddleware
from core.views import expected_migrations

from .test_production import get, gunicorn_server, manage, production_env


@pytest.mark.django_db
def test_health_fails_when_the_latest_migration_of_an_app_is_not_recorded(client):
    assert client.get("/health/").status_code == 200
    app, name = sorted(expected_migrations())[0]

    MigrationRecorder.Migration.objects.filter(app=app, name=name).delete()
    response = client.get("/health/")

    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "not migrated"}


def test_expected_migrations_are_the_leaves_of_every_app():
    apps = {app for app, _name in expected_migrations()}

    assert {"core", "chats", "usage", "reports", "auth", "sessions", "axes"} <= apps


def test_a_missing_database_file_is_not_recreated_and_the_site_recovers(tmp_path):
    database = tmp_path / "db.sqlite3"
    moved = tmp_path / "elsewhere.sqlite3"
    env = production_env(DATABASE_URL=f"sqlite:///{database}", STATIC_ROOT=str(tmp_path / "s"))
    assert manage("migrate", "--noinput", env=env).returncode == 0
    https = {"X-Forwarded-Proto": "https"}

    with gunicorn_server(env) as base:
        before = get(f"{base}/health/")
        os.rename(database, moved)
        gone = get(f"{base}/health/")
        created = database.exists()
        os.rename(moved, database)
        back = get(f"{base}/health/")
        page_back = get(f"{base}/admin/login/", https)

    assert before[0] == 200
    assert gone[0] == 503
    assert not created  # no empty database in the real one's place
    assert back[0] == 200
    assert page_back[0] == 200


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_read_only_wal_side_files_get_the_database_file_permissions_back(
    tmp_path, django_db_blocker
):
    path = str(tmp_path / "db.sqlite3")
    holder = sqlite3.connect(path)  # keeps -wal and -shm in place
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("INSERT INTO t VALUES (1)")
    holder.commit()
    os.chmod(path, 0o640)
    # As SQLite leaves them after the file was briefly read-only.
    for suffix in ("-wal", "-shm"):
        os.chmod(path + suffix, 0o440)
    wrapper = DatabaseWrapper(
        {
            "NAME": path,
            "ENGINE": "analyst_admin.sqlite3",
            "OPTIONS": {},
            "TIME_ZONE": None,
            "CONN_MAX_AGE": 0,
            "CONN_HEALTH_CHECKS": False,
            "AUTOCOMMIT": True,
            "ATOMIC_REQUESTS": False,
            "USER": "",
            "PASSWORD": "",
            "HOST": "",
            "PORT": "",
            "TEST": {},
        }
    )
    try:
        with django_db_blocker.unblock(), wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO t VALUES (2)")
        modes = {suffix: _mode(path + suffix) for suffix in ("-wal", "-shm")}
    finally:
        wrapper.close()
        holder.close()

    assert modes == {"-wal": 0o640, "-shm": 0o640}


def test_a_database_error_closes_the_connection_for_the_next_request(monkeypatch):
    class Connection:
        in_atomic_block = False
        closed = 0

        def close(self):
            self.closed += 1

    kept, inside_atomic = Connection(), Connection()
    inside_atomic.in_atomic_block = True  # a test's transaction: left alone
    monkeypatch.setattr(
        "core.views.connections.all", lambda initialized_only=False: [kept, inside_atomic]
    )
    middleware = DatabaseUnavailableMiddleware(lambda request: None)

    response = middleware.process_exception(
        RequestFactory().post("/admin/"), OperationalError("attempt to write a readonly database")
    )

    assert response.status_code == 503
    assert (kept.closed, inside_atomic.closed) == (1, 0)
