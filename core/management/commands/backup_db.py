"""Back up the database to one file, consistently, while the site runs.

- SQLite: the sqlite3 online backup API copies every page into a new file
  (a consistent snapshot even while others write; WAL included).
- PostgreSQL: ``pg_dump --format=custom`` (one compressed file that
  ``pg_restore`` reads, table by table, in parallel if asked).

Restore with ``manage.py restore_db FILE``. docs/DEPLOY.md has the schedule
and the off-machine copy.
"""

import contextlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
# Owner read/write only: backups hold API key hashes, settings and secrets.
BACKUP_MODE = 0o600


def vendor_of(db_settings):
    engine = db_settings["ENGINE"]
    if engine.endswith("sqlite3"):
        return "sqlite"
    if "postgresql" in engine:
        return "postgresql"
    raise CommandError(f"backups of {engine} databases are not supported")


def backup_kind(path):
    """ "sqlite" or "postgresql", from the first bytes of a backup file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise CommandError(f"cannot read the backup {path}: {error.strerror}") from error
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PGDUMP_MAGIC):
        return "postgresql"
    raise CommandError(f"{path} is neither a SQLite backup nor a pg_dump custom-format file")


def discard(path):
    """Remove a partial backup, if there is one to remove."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def pg_tool(name):
    path = shutil.which(name)
    if path is None:
        raise CommandError(f"{name} not found: install the PostgreSQL client tools")
    return path


def pg_environment(db_settings):
    """libpq variables for pg_dump / pg_restore: the password never appears
    on a command line (where ``ps`` would show it)."""
    env = dict(os.environ)
    values = {
        "PGHOST": db_settings.get("HOST"),
        "PGPORT": db_settings.get("PORT"),
        "PGUSER": db_settings.get("USER"),
        "PGPASSWORD": db_settings.get("PASSWORD"),
        "PGDATABASE": db_settings.get("NAME"),
        "PGSSLMODE": (db_settings.get("OPTIONS") or {}).get("sslmode"),
    }
    env.update({key: str(value) for key, value in values.items() if value})
    return env


def run_pg_tool(command, db_settings):
    done = subprocess.run(  # noqa: S603 (fixed tool, arguments as a list)
        command, env=pg_environment(db_settings), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise CommandError(f"{Path(command[0]).name} failed: {done.stderr.strip()}")
    return done


class Command(BaseCommand):
    help = "Back up the database to FILE (SQLite backup API, or pg_dump custom format)."

    def add_arguments(self, parser):
        parser.add_argument("output", help="The backup file to write.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, output, database, **options):
        connection = connections[database]
        kind = vendor_of(connection.settings_dict)
        output = Path(output)
        partial = output.with_name(output.name + ".partial")
        try:
            partial.unlink(missing_ok=True)
            # Created 0600 before anything is written: a backup holds the
            # site's secrets (encrypted passwords, settings) and must not be
            # readable by other users whatever the umask.
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, BACKUP_MODE))
            if kind == "sqlite":
                self._sqlite(connection, partial)
            else:
                self._postgresql(connection.settings_dict, partial)
            os.chmod(partial, BACKUP_MODE)
            # Only a complete backup takes the name.
            os.replace(partial, output)
        except OSError as error:
            discard(partial)
            raise CommandError(
                f"cannot write the backup to {output}: {error.strerror or error}"
            ) from error
        except sqlite3.Error as error:
            discard(partial)
            raise CommandError(f"the SQLite backup to {output} failed: {error}") from error
        except BaseException:
            discard(partial)
            raise
        size = output.stat().st_size
        self.stdout.write(f"Backed up the {kind} database to {output} ({size:,} bytes).")

    @staticmethod
    def _sqlite(connection, path):
        connection.ensure_connection()
        target = sqlite3.connect(path)
        try:
            connection.connection.backup(target)
        finally:
            target.close()

    @staticmethod
    def _postgresql(db_settings, path):
        run_pg_tool(
            [pg_tool("pg_dump"), "--format=custom", "--no-password", f"--file={path}"],
            db_settings,
        )
