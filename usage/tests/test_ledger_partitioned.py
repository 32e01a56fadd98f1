"""The ledger's own tests (test_ledger.py) and its concurrency test
(test_ledger_concurrency.py) again, on a partitioned ledger (PostgreSQL):
each test's ledger is converted before it writes (``partitioned_ledger``),
so every write path, the roll-up checks and the eight racing writers run
against month partitions and DEFAULT."""

import pytest
from django.db import connection

from . import test_ledger, test_ledger_concurrency

# Tests about the source code, not the database: once is enough.
SOURCE_ONLY = {
    "test_no_source_writes_the_ledger_outside_the_ledger_module",
    "test_the_source_scan_finds_a_bypass",
}

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="a partitioned ledger is PostgreSQL's; SQLite keeps the plain table",
    ),
    pytest.mark.usefixtures("partitioned_ledger"),
]


def _again(module, marks):
    for name in dir(module):
        test = getattr(module, name)
        if name.startswith("test_") and callable(test) and name not in SOURCE_ONLY:
            for mark in marks:
                test = mark(test)
            globals()[name] = test


_again(test_ledger, [pytest.mark.django_db])
_again(test_ledger_concurrency, test_ledger_concurrency.pytestmark)
