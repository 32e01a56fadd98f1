"""Importing from a PostgreSQL source database (psycopg, a server-side cursor).

The test creates the source database itself (CREATE DATABASE with
autocommit) on the server the tests run on, and drops it afterwards.
"""

import pytest
from django.db import connection

from core.models import Source
from ingest.tests.source_dbs import (
    BAD_ROWS,
    CHANGES,
    DELETED,
    DROPPED,
    KINDS,
    execute,
    postgres_source,
    run_import,
    summary_counts,
)
from ingest.tests.test_import_columns import compare_all, prices  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs a PostgreSQL server: the tests run on SQLite",
    ),
]


@pytest.mark.parametrize("kind", KINDS)
def test_import_from_postgresql_matches_the_source(kind, tmp_path, prices):  # noqa: F811
    import psycopg

    with postgres_source(kind, f"aa_importer_src_{kind}") as url:
        out, _, report = run_import(kind, url, tmp_path / "first.jsonl")

        source = Source.objects.get(kind=kind)
        assert source.name == f"{kind}:aa_importer_src_{kind}"
        compare_all(kind, url, source)
        refused = {(line["table"], line["source_pk"]) for line in report if "row" in line}
        assert refused == set(BAD_ROWS[kind])
        dropped = {(line["table"], line["source_pk"]) for line in report if "value" in line}
        assert dropped == set(DROPPED[kind])

        with psycopg.connect(url) as db:
            execute(db, CHANGES[kind][0])
        out, _, _ = run_import(kind, url, tmp_path / "second.jsonl")

        moved = {
            table: (c["created"], c["updated"])
            for table, c in summary_counts(out).items()
            if c["created"] or c["updated"]
        }
        assert moved == CHANGES[kind][1]
        run_import(kind, url, tmp_path / "third.jsonl", "--full")  # and what only --full sees
        compare_all(kind, url, source, kept=DELETED.get(kind, ()))


def test_a_password_in_the_url_is_not_kept(tmp_path):
    with postgres_source("ds_ml_agent", "aa_importer_src_password") as url:
        secret = url.replace("://postgres@", "://postgres:hunter2@")
        run_import("ds_ml_agent", secret, tmp_path / "r.jsonl")

    assert "hunter2" not in Source.objects.get().description
