"""Migrations match the models, apply on a fresh database and reverse."""

import os
import sqlite3
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

PROJECT_ROOT = Path(settings.BASE_DIR)
PROJECT_APPS = ("core", "chats", "usage", "reports")
# Dependents first: usage and reports point at chats; chats and core.0002 at core.
ZERO_ORDER = ("reports", "usage", "chats", "core")


@pytest.mark.django_db
def test_makemigrations_check_reports_no_changes():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exit_:  # --check exits 1 when a migration is missing
        pytest.fail(f"makemigrations --check exited {exit_.code}:\n{out.getvalue()}")

    assert "No changes detected" in out.getvalue()


def _manage(database_url, *args):
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(  # noqa: S603 — fixed argv, no shell
        [sys.executable, "manage.py", *args, "--verbosity", "1"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def _migrate_down_and_up(database_url, list_tables):
    _manage(database_url, "migrate")
    tables = list_tables()
    assert {"core_appuser", "chats_message", "usage_modelusage", "reports_analysisresult"} <= tables

    for app in ZERO_ORDER:
        # The first migrate ran the system checks; skip repeating them.
        _manage(database_url, "migrate", app, "zero", "--skip-checks")
    leftover = {t for t in list_tables() if t.split("_")[0] in PROJECT_APPS}
    assert leftover == set()

    out = _manage(database_url, "migrate", "--skip-checks")
    assert "Applying core.0002_staff_groups... OK" in out
    assert list_tables() == tables


def test_migrations_reverse_and_reapply_on_fresh_sqlite(tmp_path):
    path = tmp_path / "m.sqlite3"

    def list_tables():
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {name for (name,) in rows}

    _migrate_down_and_up(f"sqlite:///{path}", list_tables)

    with sqlite3.connect(path) as db:
        groups = db.execute("SELECT name FROM auth_group ORDER BY name").fetchall()
    assert groups == [("Admins",), ("Managers",), ("Staff",)]


@pytest.fixture
def throwaway_postgres():
    """A PostgreSQL database created for the test and dropped after it."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL migration reversal runs only when the test DB is PostgreSQL")
    import psycopg

    params = settings.DATABASES["default"]
    name = f"analyst_admin_migtest_{uuid.uuid4().hex[:12]}"
    conninfo = {
        "host": params.get("HOST") or None,
        "port": params.get("PORT") or None,
        "user": params.get("USER") or None,
        "password": params.get("PASSWORD") or None,
    }
    conninfo = {k: v for k, v in conninfo.items() if v}
    with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, conninfo
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_reverse_and_reapply_on_throwaway_postgres(throwaway_postgres):
    import psycopg

    name, conninfo = throwaway_postgres
    credentials = quote(conninfo["user"], safe="")
    if "password" in conninfo:
        credentials += ":" + quote(conninfo["password"], safe="")
    url = (
        f"postgres://{credentials}@{conninfo.get('host', 'localhost')}:"
        f"{conninfo.get('port', 5432)}/{name}"
    )

    def list_tables():
        with psycopg.connect(dbname=name, **conninfo) as db:
            rows = db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        return {table for (table,) in rows}

    _migrate_down_and_up(url, list_tables)

    with psycopg.connect(dbname=name, **conninfo) as db:
        groups = db.execute("SELECT name FROM auth_group ORDER BY name").fetchall()
    assert groups == [("Admins",), ("Managers",), ("Staff",)]
