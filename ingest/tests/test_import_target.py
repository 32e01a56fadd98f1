"""The database the import writes into: one that this code's migrations have
not all run on is refused in one line, before anything is read or written."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from ingest.tests.source_dbs import build_sqlite

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _import_source(database_url, source, tmp_path):
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "true"}
    return subprocess.run(  # noqa: S603 (this project's manage.py, fixed argv)
        [
            sys.executable,
            "manage.py",
            "import_source",
            "auto_analyst",
            f"sqlite:///{source}",
            "--no-progress",
            "--rejects",
            str(tmp_path / "rejects.jsonl"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_an_unmigrated_target_is_refused_in_one_line(tmp_path):
    source = build_sqlite("auto_analyst", tmp_path / "source.db")
    target = tmp_path / "never-migrated.sqlite3"

    result = _import_source(f"sqlite:///{target}", source, tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "run `manage.py migrate` first" in line
    assert "core" in line and "usage" in line
    # Nothing was written: no table of this project in the target, no report.
    with sqlite3.connect(target) as connection:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert not {t for t in tables if t.startswith(("core_", "usage_", "chats_"))}
    assert not (tmp_path / "rejects.jsonl").exists()
