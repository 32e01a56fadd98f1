"""Test helpers: partition the test database's ledger, and put the plain one back.

``partitioned_ledger`` (a fixture, PostgreSQL only) converts the empty test
ledger with ``usage.partitions.convert`` before the test writes anything,
with partitions for February to April 2024 (the months the test data use)
besides this month and three ahead, so rows land in month partitions and in
DEFAULT alike. Afterwards the plain table is put back (the conversion kept it
as usage_modelusage_unpartitioned), so the next test finds the ledger as
migrations made it.
"""

import pytest
from django.db import connection, transaction

from usage import ledger, partitions

TEST_MONTHS = ((2024, 2), (2024, 3), (2024, 4))


def convert(months=TEST_MONTHS, batch_size=50_000, log=lambda message: None):
    """Convert the test ledger and add partitions for ``months``."""
    result = partitions.convert(batch_size=batch_size, log=log)
    with transaction.atomic(), connection.cursor() as cursor:
        for year, month in months:
            partitions._create_month(cursor, partitions.LEDGER, year, month)
    return result


def restore_plain():
    """Drop the partitioned ledger (and any month detached from it) and
    rename the unpartitioned table back, with its indexes, sequence and
    foreign keys."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Deferred foreign key checks of the test's writes, pending in its
        # transaction, would stop the DROP.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
            "AND relname LIKE %s",
            [f"{partitions.LEDGER}_p%"],
        )
        for (name,) in cursor.fetchall():  # detached months
            cursor.execute(f"DROP TABLE {name}")
        if partitions.relkind(cursor, partitions.LEDGER) == "p":
            assert partitions.relkind(cursor, partitions.OLD) == "r", "no plain ledger to restore"
            keys = partitions._foreign_keys(cursor, partitions.LEDGER)
            indexes = [
                name
                for name, _, _, primary in partitions._indexes(cursor, partitions.LEDGER)
                if not primary
            ]
            cursor.execute(f"DROP TABLE {partitions.LEDGER}")
            old = partitions.OLD
            cursor.execute(f"ALTER TABLE {old} RENAME TO {partitions.LEDGER}")
            cursor.execute(
                f"ALTER TABLE {partitions.LEDGER} RENAME CONSTRAINT {old}_pkey "
                f"TO {partitions.LEDGER}_pkey"
            )
            for name in indexes:
                cursor.execute(f"ALTER INDEX {partitions._short(name, '_unpart')} RENAME TO {name}")
            cursor.execute(f"ALTER SEQUENCE {old}_id_seq RENAME TO {partitions.LEDGER}_id_seq")
            for name, definition in keys:
                cursor.execute(
                    f'ALTER TABLE {partitions.LEDGER} ADD CONSTRAINT "{name}" {definition}'
                )
        elif partitions.relkind(cursor, partitions.NEW):  # a conversion left half done
            cursor.execute(f"DROP TRIGGER IF EXISTS {partitions.MIRROR} ON {partitions.LEDGER}")
            cursor.execute(f"DROP FUNCTION IF EXISTS {partitions.MIRROR}()")
            cursor.execute(f"DROP TABLE {partitions.NEW}")
            cursor.execute(f"DROP TABLE IF EXISTS {partitions.PROGRESS}")
    ledger.set_partitioned(False)


@pytest.fixture
def partitioned_ledger(request):
    """The test's ledger partitioned (PostgreSQL), the plain one back after."""
    if connection.vendor != "postgresql":
        pytest.skip("a partitioned ledger is PostgreSQL's; SQLite keeps the plain table")
    convert()
    yield
    restore_plain()
