"""The usage ledger partitioned by month (PostgreSQL), and its upkeep.

A fresh install has the plain table ``usage_modelusage`` (SQLite and
PostgreSQL alike). ``convert`` (``manage.py partition_ledger``) turns the
PostgreSQL ledger into a table partitioned by range of ``timestamp``, one
partition per calendar month in UTC (``usage_modelusage_p2024_03``) and a
DEFAULT partition (``usage_modelusage_pdefault``) for rows outside every
month, while the site keeps writing:

1. ``prepare``: create ``usage_modelusage_new`` PARTITION BY RANGE with the
   ledger's columns, primary key (id, timestamp), the (source, source_pk)
   unique index with the timestamp added (a partitioned table's unique keys
   must hold the partition key: it is unique per month), every other index
   and foreign key of the ledger, the months holding rows through
   ``months_ahead`` months from now; and a trigger on the ledger mirroring
   every INSERT, UPDATE and DELETE into it from then on;
2. ``copy``: copy the rows that were there before, in id batches, each its
   own short transaction, progress kept in ``usage_modelusage_conversion``
   (a rerun resumes). Each batch locks its rows FOR SHARE, so a concurrent
   update either committed before (the batch copies its result) or waits
   and is then mirrored onto the copy by the trigger;
3. ``swap``: the row counts and id sums of both tables must agree (one
   statement, before any lock); then, in the same transaction under ACCESS
   EXCLUSIVE locks held for DDL only, the trigger goes, the
   ledger becomes ``usage_modelusage_unpartitioned`` (its foreign keys
   dropped: an archive, kept until ``drop_old``), the new table takes the
   ledger's name, index names and id sequence (set past every id used).

Every step reads the catalog to see what is done, so ``convert`` can be run
again after an interruption, and on a partitioned ledger does nothing.

This module moves ledger rows between physical tables without changing
what the ledger holds, so the roll-ups stay as they are; the one change of
content, detaching a month (``detach``), takes the month out of the
roll-ups through ``usage.ledger.take_out`` in the same transaction.

Django's migration state keeps the model as it is (primary key ``id``, the
(source, source_pk) UniqueConstraint): docs/DEPLOY.md §12 says what that
means for migrations that touch the ledger.
"""

import datetime as dt
import re
import time

from django.db import connection, transaction

from core.models import AuditLog

from . import ledger

LEDGER = ledger.LEDGER
NEW = f"{LEDGER}_new"
OLD = f"{LEDGER}_unpartitioned"
DEFAULT = f"{LEDGER}_pdefault"
PROGRESS = f"{LEDGER}_conversion"
MIRROR = f"{LEDGER}_mirror"
UNIQUE = "usage_modelusage_source_pk_uniq"
# Months before this many before now go to the DEFAULT partition at
# conversion: a year-2000 outlier must not make 300 empty partitions.
MAX_MONTHS_BACK = 120

_quote = connection.ops.quote_name


class PartitionError(Exception):
    """A step that cannot be taken; the message says why and what to do."""


# -- months --------------------------------------------------------------------------


def month_start(year, month):
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


def add_months(year, month, n):
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


def partition_name(year, month):
    return f"{LEDGER}_p{year:04d}_{month:02d}"


def parse_month(text):
    """'2024-03' → (2024, 3)."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text or "")
    if not match or not 1 <= int(match[2]) <= 12:
        raise PartitionError(f"not a month: {text!r} (YYYY-MM)")
    return int(match[1]), int(match[2])


def this_month(now=None):
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return now.year, now.month


# -- the catalog ---------------------------------------------------------------------


def _one(cursor, sql, params=()):
    cursor.execute(sql, params)
    row = cursor.fetchone()
    return row[0] if row else None


def relkind(cursor, name):
    """'r' (table), 'p' (partitioned table) or None (no such relation)."""
    return _one(cursor, "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [name])


def state():
    """'plain', 'converting' (prepared, not swapped) or 'partitioned'."""
    if connection.vendor != "postgresql":
        return "plain"
    with connection.cursor() as cursor:
        if relkind(cursor, LEDGER) == "p":
            return "partitioned"
        return "converting" if relkind(cursor, NEW) == "p" else "plain"


def partitions():
    """[(name, bound expression)] of the partitioned ledger's partitions, by name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s) "
            "ORDER BY c.relname",
            [LEDGER],
        )
        return cursor.fetchall()


def _columns(cursor, table):
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [table],
    )
    return [name for (name,) in cursor.fetchall()]


def _indexes(cursor, table):
    """[(name, definition, unique, primary)] of ``table``'s indexes."""
    cursor.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = to_regclass(%s) ORDER BY c.relname",
        [table],
    )
    return cursor.fetchall()


def _foreign_keys(cursor, table):
    """[(name, definition)] of the foreign keys ``table`` holds."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s) AND contype = 'f' ORDER BY conname",
        [table],
    )
    return cursor.fetchall()


def _referencing(cursor, table):
    """Foreign keys of other tables that point at ``table``."""
    cursor.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint "
        "WHERE confrelid = to_regclass(%s) AND contype = 'f' ORDER BY 1, 2",
        [table],
    )
    return cursor.fetchall()


def _sequence(cursor, table):
    return _one(cursor, "SELECT pg_get_serial_sequence(%s, 'id')", [table])


# -- partitions ----------------------------------------------------------------------


def _create_month(cursor, table, year, month):
    """Create the partition of one month of ``table``; rows the DEFAULT
    partition holds in its range are moved into it in the same transaction
    (the default partition locked meanwhile). True if created."""
    name = partition_name(year, month)
    if relkind(cursor, name):
        return False
    start, end = month_start(year, month), month_start(*add_months(year, month, 1))
    held = 0
    if relkind(cursor, DEFAULT):
        cursor.execute(f"LOCK TABLE {DEFAULT} IN ACCESS EXCLUSIVE MODE")
        held = _one(
            cursor,
            f'SELECT COUNT(*) FROM {DEFAULT} WHERE "timestamp" >= %s AND "timestamp" < %s',  # noqa: S608
            [start, end],
        )
    bounds = f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    if not held:
        cursor.execute(f"CREATE TABLE {name} PARTITION OF {table} {bounds}")
        return True
    # Rows of the month in DEFAULT: the new partition's range would cover
    # them, which PostgreSQL refuses. Build it apart, move them, attach it.
    cursor.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    columns = ", ".join(_quote(c) for c in _columns(cursor, table))
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT} "  # noqa: S608 (names from the catalog)
        f'WHERE "timestamp" >= %s AND "timestamp" < %s RETURNING {columns}) '
        f"INSERT INTO {name} ({columns}) SELECT {columns} FROM moved",
        [start, end],
    )
    cursor.execute(f"ALTER TABLE {table} ATTACH PARTITION {name} {bounds}")
    return True


def create_partitions(months_ahead=3, since=None, now=None, log=print):
    """Create the monthly partitions of the partitioned ledger from
    ``since`` (year, month; default this month) through ``months_ahead``
    months after this one, each in its own transaction; idempotent. Rows of
    a new month found in the DEFAULT partition move into it. Returns the
    names created."""
    if state() != "partitioned":
        raise PartitionError("the ledger is not partitioned: run partition_ledger first")
    first = since or this_month(now)
    last = add_months(*this_month(now), months_ahead)
    created = []
    year, month = first
    while (year, month) <= last:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '10s'")
            if _create_month(cursor, LEDGER, year, month):
                created.append(partition_name(year, month))
                log(f"created {partition_name(year, month)}")
        year, month = add_months(year, month, 1)
    return created


# -- the conversion ------------------------------------------------------------------


def _months_with_rows(cursor, months_ahead, now):
    """The months to create at conversion: each month holding ledger rows
    (back to MAX_MONTHS_BACK months: older rows go to DEFAULT), then every
    month from this one through ``months_ahead`` ahead."""
    current = this_month(now)
    floor = month_start(*add_months(*current, -MAX_MONTHS_BACK))
    cursor.execute(
        "SELECT DISTINCT EXTRACT(YEAR FROM t)::int, EXTRACT(MONTH FROM t)::int FROM "  # noqa: S608
        f"(SELECT date_trunc('month', \"timestamp\" AT TIME ZONE 'UTC') AS t FROM {LEDGER} "
        'WHERE "timestamp" >= %s) AS months',
        [floor],
    )
    months = {tuple(row) for row in cursor.fetchall()}
    month = current
    while month <= add_months(*current, months_ahead):
        months.add(month)
        month = add_months(*month, 1)
    return sorted(months)


def _index_sql(definition, name, new_name, unique):
    """An index of the ledger as the same index of the new table; unique
    ones with the partition key added."""
    pattern = rf"^CREATE (UNIQUE )?INDEX {re.escape(name)} ON \S+ USING (\w+) \(([^()]*)\)(.*)$"
    match = re.match(pattern, definition)
    if not match:
        raise PartitionError(f"cannot copy index {name}: {definition}")
    columns = match[3] + (', "timestamp"' if unique else "")
    return (
        f"CREATE {match[1] or ''}INDEX {new_name} ON {NEW} USING {match[2]} ({columns}){match[4]}"
    )


def prepare(months_ahead=3, now=None, log=print):
    """Step 1: the partitioned table beside the ledger, and the trigger
    that mirrors writes into it. One transaction; nothing if done."""
    with transaction.atomic(), connection.cursor() as cursor:
        if relkind(cursor, LEDGER) != "r":
            raise PartitionError(f"{LEDGER} is not a plain table")
        if relkind(cursor, NEW):
            return False
        referencing = _referencing(cursor, LEDGER)
        if referencing:
            raise PartitionError(
                "foreign keys point at the ledger, which a partitioned table's "
                f"(id, timestamp) key cannot take: {referencing}; run migrate first"
            )
        cursor.execute("SET LOCAL lock_timeout = '10s'")
        cursor.execute(
            f"CREATE TABLE {NEW} (LIKE {LEDGER} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            'INCLUDING STORAGE) PARTITION BY RANGE ("timestamp")'
        )
        cursor.execute(f"CREATE SEQUENCE {NEW}_id_seq AS bigint OWNED BY {NEW}.id")
        cursor.execute(f"ALTER TABLE {NEW} ALTER COLUMN id SET DEFAULT nextval('{NEW}_id_seq')")
        cursor.execute(f'ALTER TABLE {NEW} ADD CONSTRAINT {NEW}_pkey PRIMARY KEY (id, "timestamp")')
        for name, definition, unique, primary in _indexes(cursor, LEDGER):
            if not primary:
                cursor.execute(_index_sql(definition, name, f"{name}_new", unique))
        for name, definition in _foreign_keys(cursor, LEDGER):
            cursor.execute(f"ALTER TABLE {NEW} ADD CONSTRAINT {_quote(name)} {definition}")
        months = _months_with_rows(cursor, months_ahead, now)
        for year, month in months:
            _create_month(cursor, NEW, year, month)
        cursor.execute(f"CREATE TABLE {DEFAULT} PARTITION OF {NEW} DEFAULT")
        # The rows there before the trigger: copied by ``copy`` up to upper.
        columns = _columns(cursor, LEDGER)
        names = ", ".join(_quote(c) for c in columns)
        values = ", ".join(f"NEW.{_quote(c)}" for c in columns)
        key = 'id = OLD.id AND "timestamp" = OLD."timestamp"'
        cursor.execute(
            f"""
            CREATE FUNCTION {MIRROR}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO {NEW} ({names}) VALUES ({values}) ON CONFLICT DO NOTHING;
                ELSIF TG_OP = 'UPDATE' THEN
                    UPDATE {NEW} SET ({names}) = ROW({values}) WHERE {key};
                ELSE
                    DELETE FROM {NEW} WHERE {key};
                END IF;
                RETURN NULL;
            END $$"""  # noqa: S608 (names from the catalog)
        )
        # Waits for the writers in flight (SHARE ROW EXCLUSIVE): every row
        # not committed by now is written with the trigger there.
        cursor.execute(
            f"CREATE TRIGGER {MIRROR} AFTER INSERT OR UPDATE OR DELETE ON {LEDGER} "
            f"FOR EACH ROW EXECUTE FUNCTION {MIRROR}()"
        )
        cursor.execute(f"CREATE TABLE {PROGRESS} (copied_to bigint NOT NULL, upper_id bigint)")
        cursor.execute(f"INSERT INTO {PROGRESS} VALUES (0, NULL)")  # noqa: S608
        first, last = months[0], months[-1]
        log(
            f"prepared {NEW}: {len(months)} monthly partitions "
            f"(from {first[0]:04d}-{first[1]:02d} to {last[0]:04d}-{last[1]:02d}) and DEFAULT; "
            f"writes to {LEDGER} mirrored"
        )
    return True


def copy(batch_size=50_000, pause=0.0, log=print):
    """Step 2: copy the ledger's rows in id batches, each its own
    transaction; resumes where the last run stopped. Returns rows copied."""
    with transaction.atomic(), connection.cursor() as cursor:
        if relkind(cursor, PROGRESS) is None:
            raise PartitionError("no conversion in progress: prepare first")
        cursor.execute(f"SELECT copied_to, upper_id FROM {PROGRESS} FOR UPDATE")  # noqa: S608
        copied_to, upper = cursor.fetchone()
        if upper is None:
            # The trigger is committed: every row above this id is mirrored.
            upper = _one(cursor, f"SELECT COALESCE(MAX(id), 0) FROM {LEDGER}")  # noqa: S608
            cursor.execute(f"UPDATE {PROGRESS} SET upper_id = %s", [upper])  # noqa: S608
        names = ", ".join(_quote(c) for c in _columns(cursor, LEDGER))
    total, started = 0, time.monotonic()
    while copied_to < upper:
        end = min(copied_to + batch_size, upper)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {NEW} ({names}) SELECT {names} FROM {LEDGER} "  # noqa: S608
                "WHERE id > %s AND id <= %s FOR SHARE ON CONFLICT DO NOTHING",
                [copied_to, end],
            )
            total += max(cursor.rowcount, 0)
            cursor.execute(f"UPDATE {PROGRESS} SET copied_to = %s", [end])  # noqa: S608
        copied_to = end
        elapsed = time.monotonic() - started
        log(
            f"copied ids up to {copied_to} of {upper} ({total} rows, "
            f"{total / elapsed if elapsed else 0:,.0f} rows/s)"
        )
        if pause:
            time.sleep(pause)
    return total


def swap(lock_timeout=5, log=print):
    """Step 3: check the copy and swap the tables, in one short transaction
    under ACCESS EXCLUSIVE locks. Returns the seconds the locks were held.

    The row counts and id sums of both tables are compared in one statement
    (one snapshot) before the locks: the trigger writes the copy in the
    writer's own transaction, so any snapshot sees both tables alike once
    the copy is done, and under the locks nothing can change. So the locks
    are held for the renames only, whatever the ledger's size."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout)}s'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # as in ``detach``
        if relkind(cursor, PROGRESS) is None:
            raise PartitionError("no conversion in progress: prepare first")
        cursor.execute(f"SELECT copied_to, upper_id FROM {PROGRESS}")  # noqa: S608
        copied_to, upper = cursor.fetchone()
        if upper is None or copied_to < upper:
            raise PartitionError(f"copy not finished (ids up to {copied_to} of {upper})")
        cursor.execute(
            f"SELECT (SELECT COUNT(*) FROM {LEDGER}), (SELECT COALESCE(SUM(id), 0) FROM {LEDGER}), "  # noqa: S608
            f"(SELECT COUNT(*) FROM {NEW}), (SELECT COALESCE(SUM(id), 0) FROM {NEW})"
        )
        row = cursor.fetchone()
        counts = [row[:2], row[2:]]
        if counts[0] != counts[1]:
            raise PartitionError(
                f"copy differs from the ledger (rows, id sum): {counts[0]} vs {counts[1]}; "
                "nothing swapped"
            )
        cursor.execute(f"LOCK TABLE {LEDGER}, {NEW} IN ACCESS EXCLUSIVE MODE")
        locked = time.monotonic()
        if not _one(
            cursor,
            "SELECT COUNT(*) FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s",
            [LEDGER, MIRROR],
        ):
            raise PartitionError(f"the trigger {MIRROR} is gone: the copy may have missed writes")
        if _referencing(cursor, LEDGER):
            raise PartitionError("foreign keys point at the ledger: run migrate first")
        cursor.execute(f"DROP TRIGGER {MIRROR} ON {LEDGER}")
        cursor.execute(f"DROP FUNCTION {MIRROR}()")
        old_sequence = _sequence(cursor, LEDGER)
        last_id = _one(cursor, f"SELECT last_value FROM {old_sequence}")  # noqa: S608
        indexes = _indexes(cursor, LEDGER)
        # The old ledger: an archive under another name, with no foreign
        # keys (it must not stop deletes of users, chats or sources).
        for name, _ in _foreign_keys(cursor, LEDGER):
            cursor.execute(f"ALTER TABLE {LEDGER} DROP CONSTRAINT {_quote(name)}")
        cursor.execute(f"ALTER TABLE {LEDGER} RENAME TO {OLD}")
        for name, _, _, primary in indexes:
            if primary:
                cursor.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT {name} TO {OLD}_pkey")
            else:
                cursor.execute(f"ALTER INDEX {name} RENAME TO {_short(name, '_unpart')}")
        cursor.execute(f"ALTER SEQUENCE {old_sequence} RENAME TO {OLD}_id_seq")
        # The partitioned table takes the ledger's names.
        cursor.execute(f"ALTER TABLE {NEW} RENAME TO {LEDGER}")
        cursor.execute(f"ALTER TABLE {LEDGER} RENAME CONSTRAINT {NEW}_pkey TO {LEDGER}_pkey")
        for name, _, _, primary in indexes:
            if not primary:
                cursor.execute(f"ALTER INDEX {name}_new RENAME TO {name}")
        cursor.execute(f"ALTER SEQUENCE {NEW}_id_seq RENAME TO {LEDGER}_id_seq")
        cursor.execute(
            f"SELECT setval('{LEDGER}_id_seq', GREATEST(%s, "  # noqa: S608
            f"(SELECT COALESCE(MAX(id), 0) FROM {LEDGER}), 1))",
            [last_id],
        )
        cursor.execute(f"DROP TABLE {PROGRESS}")
        held = time.monotonic() - locked
    ledger.set_partitioned(True)
    log(
        f"swapped: {LEDGER} is partitioned ({counts[1][0]} rows); the old table is {OLD}; "
        f"locks held {held * 1000:.0f} ms"
    )
    return held


def _short(name, suffix):
    return name[: 63 - len(suffix)] + suffix


def convert(batch_size=50_000, months_ahead=3, pause=0.0, now=None, log=print):
    """``prepare``, ``copy`` and ``swap``, each skipped when done.
    Returns {"copied": rows, "lock_seconds": s} or None when partitioned."""
    if connection.vendor != "postgresql":
        raise PartitionError("partitioning is for PostgreSQL; SQLite keeps the plain ledger")
    if state() == "partitioned":
        log(f"{LEDGER} is already partitioned")
        return None
    if state() == "plain":
        prepare(months_ahead=months_ahead, now=now, log=log)
    copied = copy(batch_size=batch_size, pause=pause, log=log)
    held = swap(log=log)
    return {"copied": copied, "lock_seconds": held}


def drop_old(log=print):
    """Drop the unpartitioned table a conversion left (after a backup)."""
    if state() != "partitioned":
        raise PartitionError("the ledger is not partitioned: nothing to drop")
    with transaction.atomic(), connection.cursor() as cursor:
        if relkind(cursor, OLD) is None:
            return False
        cursor.execute(f"DROP TABLE {OLD}")
    log(f"dropped {OLD}")
    return True


# -- detaching old months -------------------------------------------------------------


def detach(year, month, drop=False, now=None, log=print):
    """Detach one past month's partition from the ledger, for archive (or
    ``drop`` it), and take its rows out of the roll-ups, in one
    transaction, with an audit entry. Returns the audit entry.

    Writes to the ledger wait while the month's sums are taken out (SHARE
    lock), reads go on; the final DETACH holds ACCESS EXCLUSIVE for a few
    milliseconds. (DETACH … CONCURRENTLY is refused by PostgreSQL while a
    DEFAULT partition exists, and this ledger always has one.)"""
    if state() != "partitioned":
        raise PartitionError("the ledger is not partitioned: run partition_ledger first")
    if (year, month) >= this_month(now):
        raise PartitionError("only months before the current one can be detached")
    name = partition_name(year, month)
    if name not in {partition for partition, _ in partitions()}:
        raise PartitionError(f"{name} is not a partition of {LEDGER} (detached already?)")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '10s'")
        # Checks deferred by earlier writes of an enclosing transaction now,
        # or they would stop the DROP.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"LOCK TABLE {LEDGER} IN SHARE MODE")
        cursor.execute(
            f"SELECT COUNT(*), COALESCE(SUM(cost), 0), COALESCE(SUM(total_tokens), 0), "  # noqa: S608
            f'MIN("timestamp"), MAX("timestamp") FROM {name}'
        )
        rows, cost, tokens, first, last = cursor.fetchone()
        ledger.take_out(name)
        started = time.monotonic()
        cursor.execute(f"ALTER TABLE {LEDGER} DETACH PARTITION {name}")
        # The archive needs no ids from the ledger's sequence (nor may it
        # keep the ledger from being dropped).
        cursor.execute(f"ALTER TABLE {name} ALTER COLUMN id DROP DEFAULT")
        if drop:
            cursor.execute(f"DROP TABLE {name}")
        entry = AuditLog.objects.create(
            action="detach_ledger_partition",
            resource_type="usage.modelusage",
            resource_id=name,
            old_values={
                "month": f"{year:04d}-{month:02d}",
                "rows": rows,
                "cost": str(cost),
                "total_tokens": int(tokens),
                "first": first.isoformat() if first else None,
                "last": last.isoformat() if last else None,
            },
            new_values={"archived_table": None if drop else name, "dropped": drop},
        )
        held = time.monotonic() - started
    log(
        f"{'dropped' if drop else 'detached'} {name}: {rows} rows, cost {cost}, taken out of "
        f"the roll-ups; detach lock {held * 1000:.0f} ms"
        + ("" if drop else f"; archive it (pg_dump -t {name}) then DROP TABLE {name}")
    )
    return entry
