"""Restore a backup made by ``backup_db`` into a database.

The target is the site's own database unless ``--target URL`` names another
(a fresh database to check a backup, a new server). A target that already
has tables is replaced, after a confirmation (``--noinput`` skips it):
SQLite's backup API overwrites every page; pg_restore ``--clean`` drops
the objects it restores first. pg_restore runs in one transaction: a
restore that fails changes nothing.
"""

import contextlib
import sqlite3

import environ
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from .backup_db import backup_kind, pg_tool, run_pg_tool, vendor_of


def target_settings(url):
    """Django database settings from a DATABASE_URL-style URL."""
    return environ.Env.db_url_config(url)


def sqlite_tables(path):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    return [name for (name,) in rows]


def postgresql_tables(db_settings):
    import psycopg

    with psycopg.connect(
        host=db_settings.get("HOST") or None,
        port=db_settings.get("PORT") or None,
        user=db_settings.get("USER") or None,
        password=db_settings.get("PASSWORD") or None,
        dbname=db_settings["NAME"],
    ) as db:
        rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return [name for (name,) in rows]


class Command(BaseCommand):
    help = "Restore a backup_db FILE into the database (or into --target URL)."

    def add_arguments(self, parser):
        parser.add_argument("backup", help="A file written by backup_db.")
        parser.add_argument(
            "--target",
            help="DATABASE_URL of the database to restore into (default: the site's own).",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--noinput", "--no-input", action="store_true", help="Replace without asking."
        )

    def handle(self, *args, backup, target, database, noinput, **options):
        own = target is None
        db_settings = connections[database].settings_dict if own else target_settings(target)
        kind = vendor_of(db_settings)
        if backup_kind(backup) != kind:
            raise CommandError(f"{backup} is a {backup_kind(backup)} backup; the target is {kind}")
        if kind == "sqlite" and own:
            # Let go of our own connection to the file we overwrite.
            connections[database].close()

        existing = self._tables(kind, db_settings)
        if existing and not noinput:
            answer = input(
                f"{db_settings['NAME']} has {len(existing)} tables: replace them with the "
                "backup? Type 'yes' to continue: "
            )
            if answer.strip().lower() != "yes":
                raise CommandError("Restore cancelled.")

        if kind == "sqlite":
            self._sqlite(backup, db_settings["NAME"])
        else:
            self._postgresql(backup, db_settings, clean=bool(existing))
        restored = self._tables(kind, db_settings)
        self.stdout.write(f"Restored {len(restored)} tables into {db_settings['NAME']}.")

    @staticmethod
    def _tables(kind, db_settings):
        if kind == "sqlite":
            name = str(db_settings["NAME"])
            if name in ("", ":memory:") or name.startswith("file:"):
                raise CommandError("restore into an in-memory SQLite database is not possible")
            try:
                return sqlite_tables(name)
            except sqlite3.OperationalError:
                return []  # no such file yet: a fresh database
        return postgresql_tables(db_settings)

    @staticmethod
    def _check_sqlite_backup(backup):
        """Refuse a truncated or damaged backup before the target is touched."""
        try:
            with contextlib.closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as db:
                problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        except sqlite3.Error as error:
            problems = [str(error)]
        if problems != ["ok"]:
            raise CommandError(
                f"{backup} is not a complete SQLite backup (truncated or damaged: "
                f"{problems[0]}); nothing was restored"
            )

    @classmethod
    def _sqlite(cls, backup, name):
        cls._check_sqlite_backup(backup)
        try:
            source = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
            try:
                target = sqlite3.connect(name)
                try:
                    source.backup(target)
                finally:
                    target.close()
            finally:
                source.close()
        except sqlite3.Error as error:
            raise CommandError(f"restoring {backup} into {name} failed: {error}") from error

    @staticmethod
    def _postgresql(backup, db_settings, clean):
        command = [
            pg_tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            "--no-password",
            f"--dbname={db_settings['NAME']}",
        ]
        if clean:
            command += ["--clean", "--if-exists"]
        run_pg_tool([*command, str(backup)], db_settings)
