"""The one write path into the usage ledger and its roll-ups.

Every writer — the ingest API, the importers (batch and COPY paths), the
admin, ``recompute_costs``, the demo data and the deletes of app users and
organisations — changes ledger rows (``ModelUsage``) and their roll-ups
through this module, in one transaction. Elsewhere the write methods of those
models raise ``LedgerBypass`` (usage.models), and a test lists any write to
them in the source outside this module.

How a change stays exact under concurrent writers (PostgreSQL):

- the ledger rows a change reads before it writes are locked first
  (``SELECT … FOR UPDATE``, in key order), so two updates of one row cannot
  both subtract the same old values; new rows go in with ``INSERT … ON
  CONFLICT DO NOTHING`` (in key order) and a row another writer inserted
  meanwhile is then locked and compared like any existing one;
- the roll-ups move by the difference, in SQL: one ``INSERT … ON CONFLICT
  (key) DO UPDATE SET m = m + EXCLUDED.m`` per roll-up table, keys in one
  order (the tables in ``ROLLUPS`` order, then the key with text in
  byte order), so writers never deadlock on them;
- each roll-up holds one row per key (a unique index on the grain, NULL keys
  equal): no delta rows pile up, so no merging, no cron; a key whose
  requests come back to 0 is deleted.

On a partitioned ledger (``usage.partitions``: PostgreSQL, after
``partition_ledger``) the unique index on (source, source_pk) holds per
month only, so it no longer keeps a key from landing twice in two months.
There every writer that looks a key up first takes a transaction-scoped
advisory lock on it (``_lock_keys``: the key hashed into one of
``KEY_BUCKETS`` locks per source, taken in bucket order), then finds the
key's row in whichever partition holds it and inserts only what is new;
the optimistic COPY attempt is skipped (it needs a global unique index).
Plain tables keep the path above, and a writer whose connection still
believes the ledger plain after a conversion fails its first insert on the
missing index (42P10) and switches over (``partitioned``).

No single row can break a figure: ``refusal`` holds every row to
core.bounds, and every write function refuses (``LedgerRefusal``) a batch
that holds such a row. The API and the importers call ``refusal`` first to
report each refused row with its reason.
"""

import operator
import zlib
from collections import defaultdict
from contextlib import contextmanager
from decimal import Decimal
from types import SimpleNamespace

from django.db import DataError, IntegrityError, OperationalError, connection, transaction
from django.db.utils import ProgrammingError
from django.utils import timezone

from chats.models import Chat
from core import bounds
from core.models import AppUser

from .models import LATENCY_BUCKETS_MS, LEDGER_WRITING, MEASURES, ModelUsage, latency_bucket
from .pricing import COST_QUANTUM, PriceBook
from .rollups import (
    LATENCY_MODELS,
    ROLLUPS,
    SUMMED,
    USAGE_MODELS,
    aggregate_latency,
    aggregate_usage,
    rollup_name,
)

LEDGER = ModelUsage._meta.db_table
LEDGER_FIELDS = [f for f in ModelUsage._meta.concrete_fields if not f.primary_key]
_quote = connection.ops.quote_name


# -- a partitioned ledger ------------------------------------------------------------

# The advisory lock space of ledger keys (chats.rollups uses 15_001 and 15_002).
KEY_LOCK_CLASS = 15_101
# Keys hash into this many locks per transaction at most: an import batch of
# 10,000 rows takes 256 locks, well inside the shared lock table
# (max_locks_per_transaction × max_connections); two writers of different
# keys in one bucket merely wait for each other.
KEY_BUCKETS = 256


def partitioned():
    """Whether the ledger is a partitioned table, as this connection last
    saw it (read once per connection, when it opens: ``usage.apps``)."""
    if connection.vendor != "postgresql":
        return False
    connection.ensure_connection()
    seen = getattr(connection, "_ledger_partitioned", None)
    if seen is None or seen[0] is not connection.connection:
        seen = (connection.connection, detect_partitioned(connection))
        connection._ledger_partitioned = seen
    return seen[1]


def detect_partitioned(conn):
    """Read from the catalog whether ``conn``'s ledger is partitioned."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [LEDGER])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def set_partitioned(value, conn=None):
    """Record what the ledger now is on ``conn`` (after a conversion, or a
    writer that found out from a failed insert)."""
    conn = conn or connection
    conn.ensure_connection()
    conn._ledger_partitioned = (conn.connection, value)


def _lost_index(error):
    """A plain-table ON CONFLICT target on a partitioned ledger: 42P10."""
    return getattr(error.__cause__, "sqlstate", None) == "42P10"


def _moved(error):
    """A row lock that found its row moved to another partition (40001)."""
    return getattr(error.__cause__, "sqlstate", None) == "40001"


def _bucket(source_id, source_pk):
    return zlib.crc32(f"{source_id}:{source_pk}".encode()) % KEY_BUCKETS


def _lock_keys(source_id, source_pks):
    """Take the advisory locks of (source, source_pk) keys for the
    transaction, in one order for every writer (no deadlock)."""
    buckets = sorted({_bucket(source_id, pk) for pk in source_pks})
    if not buckets:
        return
    key = source_id or 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, ((%s::bigint * 1024 + b) %% 2147483647)::int) "
            "FROM unnest(%s::int[]) WITH ORDINALITY AS u(b, n) ORDER BY n",
            [KEY_LOCK_CLASS, key, buckets],
        )


def _conflict_clause():
    """ON CONFLICT … DO NOTHING on the (source, source_pk) unique index as
    the ledger has it: per partition with the timestamp, or global."""
    columns = 'source_id, source_pk, "timestamp"' if partitioned() else "source_id, source_pk"
    return f"ON CONFLICT ({columns}) WHERE source_id IS NOT NULL DO NOTHING"


def _refuse_existing_keys(usages):
    """On a partitioned ledger, what the global unique index does on a plain
    one for rows inserted as new: lock their keys, refuse any that exists."""
    if not partitioned():
        return
    by_source = defaultdict(list)
    for usage in usages:
        if usage.source_id is not None:
            by_source[usage.source_id].append(usage.source_pk)
    for source_id, pks in sorted(by_source.items()):
        _lock_keys(source_id, pks)
        taken = list(
            ModelUsage.objects.filter(source_id=source_id, source_pk__in=pks).values_list(
                "source_pk", flat=True
            )[:5]
        )
        if taken or len(set(pks)) < len(pks):
            raise IntegrityError(
                "duplicate key value violates unique constraint "
                f'"usage_modelusage_source_pk_uniq": source {source_id}, {taken or pks}'
            )


class LedgerRefusal(DataError):
    """A ledger row outside core.bounds. A DataError, so an importer that
    retries a failed batch row by row reports the row with this reason."""


@contextmanager
def _writing():
    """Allow writes to the ledger and roll-ups (the guard in usage.models)."""
    token = LEDGER_WRITING.set(True)
    try:
        yield
    finally:
        LEDGER_WRITING.reset(token)


@contextmanager
def unchecked():
    """Writes outside this module's bookkeeping, for tests that plant
    inconsistent or orphaned roll-up rows on purpose. Not for app code (the
    source test lists every use outside tests)."""
    with _writing():
        yield


# -- bounds ------------------------------------------------------------------------

TOKEN_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
)
# Token counts that are part of another (OpenAI's usage semantics).
PARTS = {"cached_input_tokens": "prompt_tokens", "reasoning_tokens": "completion_tokens"}


def refusal(usage, latest_time=None):
    """Why a ledger row may not be stored (core.bounds), or None.

    ``latest_time``: ``bounds.latest()``, taken once for a batch."""
    for name in TOKEN_FIELDS:
        problem = bounds.tokens_problem(getattr(usage, name, None))
        if problem:
            return f"{name}: {problem}"
    for part, whole in PARTS.items():
        problem = bounds.part_problem(getattr(usage, part, None), getattr(usage, whole, None))
        if problem:
            return f"{part}: {problem} {whole}"
    problem = bounds.cost_problem(getattr(usage, "cost", None))
    if problem:
        return problem
    problem = bounds.time_problem(getattr(usage, "timestamp", None), latest_time)
    if problem:
        return f"timestamp: {problem}"
    return None


def _refuse(usages):
    latest_time = bounds.latest()
    reasons = [(u, r) for u in usages if (r := refusal(u, latest_time))]
    if reasons:
        listed = "; ".join(f"{u.source_pk or '(new row)'}: {r}" for u, r in reasons[:5])
        raise LedgerRefusal(f"{len(reasons)} ledger row(s) outside the bounds: {listed}")


# -- preparing rows ----------------------------------------------------------------


def fill_organizations(usages):
    """Set ``organization_id`` from the row's app user, else its chat."""
    missing = [u for u in usages if u.organization_id is None]
    user_ids = {u.user_id for u in missing if u.user_id}
    chat_ids = {u.chat_id for u in missing if u.chat_id and not u.user_id}
    user_orgs = dict(
        AppUser.objects.filter(pk__in=user_ids, organization__isnull=False).values_list(
            "pk", "organization_id"
        )
    )
    chat_orgs = dict(
        Chat.objects.filter(pk__in=chat_ids, organization__isnull=False).values_list(
            "pk", "organization_id"
        )
    )
    for usage in missing:
        usage.organization_id = user_orgs.get(usage.user_id) or chat_orgs.get(usage.chat_id)


def prepare(usages, price_book=None):
    """Price, total and attribute unsaved ledger rows in place.

    Reported values stay as reported: ``total_tokens`` is derived only when
    the source gave none (None), never over a reported 0."""
    price_book = price_book or PriceBook()
    for usage in usages:
        if usage.total_tokens is None:
            usage.total_tokens = (usage.prompt_tokens or 0) + (usage.completion_tokens or 0)
        price_book.price_row(usage)
        if usage.cost is not None:
            # As stored (8 places), so a re-sent row compares equal.
            usage.cost = Decimal(usage.cost).quantize(COST_QUANTUM)
    fill_organizations(usages)
    return usages


# -- roll-up deltas ----------------------------------------------------------------


def _sort_key(key):
    """Keys in one order for every writer (NULL as 0, as the unique index)."""
    return tuple(0 if part is None else part for part in key)


class Deltas:
    """The changes a write makes to every roll-up, summed per key in Python,
    then applied with one upsert per roll-up table (``apply``)."""

    def __init__(self):
        # {rollup index: {key: [measure values]}}, {rollup index: {key+bucket: n}}
        self.usage = defaultdict(dict)
        self.latency = defaultdict(lambda: defaultdict(int))

    def add(self, usages, sign=1):
        for usage in usages:
            day = timezone.localtime(usage.timestamp).date()
            values = {
                "day": day,
                "model_name": usage.model_name,
                "provider": usage.provider,
                "organization_id": usage.organization_id,
                "source_id": usage.source_id,
                "user_id": usage.user_id,
            }
            measures = [sign * measure.of(usage) for measure in MEASURES]
            bucket = (
                latency_bucket(usage.request_time_ms) if usage.request_time_ms is not None else None
            )
            for index, rollup in enumerate(ROLLUPS):
                key = (
                    *rollup.constants.values(),
                    rollup.first_day(day),
                    *(values[name] for name in rollup.grain[1:]),
                )
                row = self.usage[index].get(key)
                if row is None:
                    self.usage[index][key] = list(measures)
                else:
                    for i, value in enumerate(measures):
                        row[i] += value
                if rollup.latency and bucket is not None:
                    self.latency[index][(*key, bucket)] += sign
        return self

    def add_rollup_rows(self, rollup_index, rows, sign=1, **replace):
        """Add (or take away) roll-up rows as they are, with key columns
        replaced (``user_id=None``): moves a key's figures to another key."""
        rollup = ROLLUPS[rollup_index]
        for row in rows:
            key = (
                *rollup.constants.values(),
                *(replace.get(name, getattr(row, name)) for name in rollup.grain),
            )
            if hasattr(row, "bucket"):
                self.latency[rollup_index][(*key, row.bucket)] += sign * row.requests
                continue
            measures = [sign * getattr(row, name) for name in SUMMED]
            current = self.usage[rollup_index].get(key)
            if current is None:
                self.usage[rollup_index][key] = measures
            else:
                for i, value in enumerate(measures):
                    current[i] += value
        return self

    def apply(self):
        """Upsert every changed key, roll-up by roll-up, keys in order."""
        for index, rollup in enumerate(ROLLUPS):
            columns = [*rollup.constants, *rollup.grain]
            rows = [
                (*key, *measures)
                for key, measures in sorted(
                    self.usage[index].items(), key=lambda item: _sort_key(item[0])
                )
                if any(measures)
            ]
            _upsert(rollup.usage, columns, SUMMED, rows)
            if rollup.latency:
                rows = [
                    (*key, n)
                    for key, n in sorted(
                        self.latency[index].items(), key=lambda item: _sort_key(item[0])
                    )
                    if n
                ]
                _upsert(rollup.latency, [*rollup.grain, "bucket"], ("requests",), rows)


def _conflict_target(model, columns):
    """The unique key's columns as its index has them (NULL as 0)."""
    parts = []
    for name in columns:
        field = model._meta.get_field(name)
        column = _quote(field.column)
        parts.append(f"COALESCE({column}, 0)" if field.null else column)
    return ", ".join(parts)


def _upsert_sql(model, columns, measures, select, returning=True):
    """INSERT … ``select`` ON CONFLICT (key) DO UPDATE adding the measures
    (returning each row's id and requests)."""
    table = _quote(model._meta.db_table)
    names = ", ".join(_quote(model._meta.get_field(c).column) for c in (*columns, *measures))
    add = ", ".join(f"{_quote(m)} = {table}.{_quote(m)} + EXCLUDED.{_quote(m)}" for m in measures)
    return (
        f"INSERT INTO {table} ({names}) {select} "  # noqa: S608 (names from the models)
        f"ON CONFLICT ({_conflict_target(model, columns)}) DO UPDATE SET {add}"
        + (" RETURNING id, requests" if returning else "")
    )


def _upsert(model, columns, measures, rows, batch_size=1000):
    """Add ``rows`` (key values then measure values) to ``model``'s rows by
    key; delete the keys whose requests come back to 0."""
    width = len(columns) + len(measures)
    emptied = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            values = ", ".join(["(" + ", ".join(["%s"] * width) + ")"] * len(batch))
            cursor.execute(
                _upsert_sql(model, columns, measures, f"VALUES {values}"),
                [value for row in batch for value in row],
            )
            emptied += [pk for pk, requests in cursor.fetchall() if requests == 0]
    if emptied:
        model.objects.filter(pk__in=emptied).delete()


# -- writing ledger rows --------------------------------------------------------------


def add_usage(usages, price_book=None, batch_size=2000):
    """Insert new ledger rows and move their roll-ups, atomically.

    A row whose source reported no cost has ``cost=None`` and
    ``cost_source=COMPUTED`` (or any non-REPORTED value) on the way in.
    Returns the saved rows.
    """
    usages = list(usages)
    with transaction.atomic(), _writing():
        prepare(usages, price_book)
        _refuse(usages)
        _refuse_existing_keys(usages)
        saved = ModelUsage.objects.bulk_create(usages, batch_size=batch_size)
        Deltas().add(saved).apply()
    return saved


# Fields a source may change on a ledger row it sent before.
UPDATABLE = (
    "user_id",
    "chat_id",
    "organization_id",
    "model_name",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "query_size",
    "response_size",
    "cost",
    "cost_source",
    "timestamp",
    "is_streaming",
    "request_time_ms",
)


def _bulk_update(rows, fields, batch_size=None):
    """Write ``fields`` of locked ledger rows.

    Django's bulk_update sets each column to a CASE over the batch's ids,
    which PostgreSQL evaluates row by row: quadratic in the batch (a batch
    of 1,000 changed rows took 9 s on a plain 1M-row ledger, 100 s on a
    partitioned one, where the CASE is planned per partition). On
    PostgreSQL one UPDATE … FROM (VALUES …) joined on the id per 1,000 rows
    instead (0.9 s for 2,000, row movement included); SQLite keeps
    bulk_update."""
    if connection.vendor != "postgresql":
        ModelUsage.objects.bulk_update(rows, fields, batch_size=batch_size)
        return
    columns = [ModelUsage._meta.get_field(name) for name in fields]
    typed = "(%s::bigint, " + ", ".join(f"%s::{f.db_type(connection)}" for f in columns) + ")"
    names = ", ".join(_quote(f.column) for f in columns)
    assign = ", ".join(f"{_quote(f.column)} = v.{_quote(f.column)}" for f in columns)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 1000):
            batch = rows[start : start + 1000]
            params = [
                value
                for row in batch
                for value in (
                    row.pk,
                    *(f.get_db_prep_save(getattr(row, f.attname), connection) for f in columns),
                )
            ]
            cursor.execute(
                f"UPDATE {_quote(LEDGER)} AS t SET {assign} "  # noqa: S608 (names from the model)
                f"FROM (VALUES {', '.join([typed] * len(batch))}) AS v (id, {names}) "
                "WHERE t.id = v.id",
                params,
            )


def _locked(queryset, attempts=20):
    """Rows of ``queryset``, locked for the transaction, in id order.

    On a partitioned ledger a row another writer moved to another month
    meanwhile fails the lock (40001): the lock is taken again, in a savepoint."""
    if not partitioned():
        return list(queryset.select_for_update().order_by("pk"))
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                return list(queryset.select_for_update().order_by("pk"))
        except OperationalError as error:
            if not _moved(error) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _insert_new(source, usages):
    """INSERT rows of ``source`` ON CONFLICT (source, source_pk) DO NOTHING,
    in source_pk order; sets the pk of each row inserted and returns them."""
    fields = LEDGER_FIELDS
    names = ", ".join(_quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    by_pk = {u.source_pk: u for u in usages}
    inserted = []
    with connection.cursor() as cursor:
        ordered = sorted(usages, key=lambda u: u.source_pk)
        for start in range(0, len(ordered), 1000):
            batch = ordered[start : start + 1000]
            params = [
                f.get_db_prep_save(getattr(u, f.attname), connection) for u in batch for f in fields
            ]
            cursor.execute(
                f"INSERT INTO {_quote(LEDGER)} ({names}) "  # noqa: S608 (names from the model)
                f"VALUES {', '.join([row] * len(batch))} {_conflict_clause()} "
                "RETURNING id, source_pk",
                params,
            )
            for pk, source_pk in cursor.fetchall():
                usage = by_pk[source_pk]
                usage.pk = pk
                usage._state.adding = False
                inserted.append(usage)
    return inserted


class _Retry(Exception):  # noqa: N818 (control flow, never escapes)
    pass


def _lock_and_insert(source, usages, insert=None, attempts=20):
    """Lock the existing rows of ``usages`` (in id order) and insert the new
    ones (in source_pk order, with ``insert``: ``_insert_new`` or the COPY
    path's ``_copy_insert``): ({source_pk: locked row}, [inserted rows]).

    If a concurrent writer inserted one of them between our lock and our
    insert, the attempt is rolled back to its savepoint — releasing every
    lock it took — and made again, so a transaction never waits for a lock
    out of order while holding rows (no deadlock)."""
    insert = insert or _insert_new
    pks = [u.source_pk for u in usages]
    if partitioned():
        _lock_keys(source.pk, pks)
    attempt = 0
    while attempt < attempts:
        attempt += 1
        pending = []
        try:
            with transaction.atomic():  # a savepoint: rolled back on retry
                existing = {
                    row.source_pk: row
                    for row in _locked(ModelUsage.objects.filter(source=source, source_pk__in=pks))
                }
                pending = [u for u in usages if u.source_pk not in existing]
                created = insert(source, pending)
                done = {u.source_pk for u in created}
                late = [u.source_pk for u in pending if u.source_pk not in done]
                if late and attempt < attempts:
                    raise _Retry
                if late:  # contended beyond reason: lock them now
                    existing.update(
                        (row.source_pk, row)
                        for row in _locked(
                            ModelUsage.objects.filter(source=source, source_pk__in=late)
                        )
                    )
                return existing, created
        except ProgrammingError as error:
            if not _lost_index(error) or partitioned():
                raise
            # The ledger was partitioned since this connection looked.
            set_partitioned(True)
            _lock_keys(source.pk, pks)
            attempt -= 1
        except _Retry:
            pass
        for usage in pending:
            usage.pk = None
            if hasattr(usage, "_state"):
                usage._state.adding = True
    raise AssertionError("unreachable")


def _compare(existing, usages, created):
    """Set the existing rows' values from ``usages``: (changed rows, unchanged
    rows, snapshots of the changed rows as they were)."""
    done = {u.source_pk for u in created}
    changed, unchanged, before = [], [], []
    for usage in usages:
        if usage.source_pk in done:
            continue
        old = existing[usage.source_pk]
        if any(getattr(old, f) != getattr(usage, f) for f in UPDATABLE):
            before.append(_snapshot(old))
            for field in UPDATABLE:
                setattr(old, field, getattr(usage, field))
            changed.append(old)
        else:
            unchanged.append(old)
    return changed, unchanged, before


def upsert_usage(source, usages, price_book=None, batch_size=2000):
    """Insert or update ledger rows of one source by their ``source_pk``.

    Idempotent: a row sent again unchanged is left alone; a changed one is
    updated and the roll-ups moved by the difference. Existing rows are
    locked before they are compared. Returns a dict with the ``created``,
    ``updated`` and ``unchanged`` rows (lists).
    """
    usages = list(usages)
    for usage in usages:
        usage.source = source
    with transaction.atomic(), _writing():
        prepare(usages, price_book)
        _refuse(usages)
        existing, created = _lock_and_insert(source, usages)
        changed, unchanged, before = _compare(existing, usages, created)
        if changed:
            _bulk_update(changed, UPDATABLE, batch_size=batch_size)
        Deltas().add(before, sign=-1).add(changed).add(created).apply()
    return {"created": created, "updated": changed, "unchanged": unchanged}


def _snapshot(usage):
    """A detached copy of a ledger row's values (for taking it out of roll-ups)."""
    return ModelUsage(
        **{f.attname: getattr(usage, f.attname) for f in ModelUsage._meta.concrete_fields}
    )


def save_usage(usage):
    """Save one ledger row edited or added by hand (the admin)."""
    if usage.pk is None:
        return add_usage([usage])[0]
    with transaction.atomic(), _writing():
        if usage.total_tokens is None:
            usage.total_tokens = (usage.prompt_tokens or 0) + (usage.completion_tokens or 0)
        _refuse([usage])
        locked = _locked(ModelUsage.objects.filter(pk=usage.pk))
        if not locked:
            raise ModelUsage.DoesNotExist(f"ledger row {usage.pk} was deleted")
        before = locked[0]
        usage.save()
        Deltas().add([before], sign=-1).add([usage]).apply()
    return usage


def delete_usage(queryset):
    """Delete ledger rows (a queryset or rows) and take them out of the roll-ups."""
    if isinstance(queryset, list | tuple):
        pks = [u.pk for u in queryset]
    else:
        pks = list(queryset.values_list("pk", flat=True))
    with transaction.atomic(), _writing():
        locked = _locked(ModelUsage.objects.filter(pk__in=pks))
        Deltas().add(locked, sign=-1).apply()
        ModelUsage.objects.filter(pk__in=[u.pk for u in locked]).delete()
    return len(locked)


def reprice(pks, price_book, dry_run=False):
    """Recompute the cost of computed-price ledger rows ``pks`` from the
    prices in force; reported costs are never touched. Returns the rows whose
    cost changed (written unless ``dry_run``)."""
    with transaction.atomic(), _writing():
        rows = ModelUsage.objects.filter(pk__in=pks).exclude(
            cost_source=ModelUsage.CostSource.REPORTED
        )
        rows = list(rows.order_by("pk")) if dry_run else _locked(rows)
        before, after = [], []
        for usage in rows:
            old = (usage.cost, usage.cost_source)
            snapshot = _snapshot(usage)
            usage.cost = None
            price_book.price_row(usage)
            if usage.cost is not None:
                usage.cost = Decimal(usage.cost).quantize(COST_QUANTUM)
            if (usage.cost, usage.cost_source) != old:
                before.append(snapshot)
                after.append(usage)
        if after and not dry_run:
            _refuse(after)
            _bulk_update(after, ("cost", "cost_source"))
            Deltas().add(before, sign=-1).add(after).apply()
    return after


def bulk_load(usages, batch_size=1000):
    """Insert prepared ledger rows without touching the roll-ups, for a
    writer that rebuilds them when it is done (the demo data, in one
    transaction with ``rebuild``)."""
    usages = list(usages)
    _refuse(usages)
    with _writing():
        _refuse_existing_keys(usages)
        return ModelUsage.objects.bulk_create(usages, batch_size=batch_size)


# -- deletes the ledger sees as SET NULL ------------------------------------------------


def forget(column, pk):
    """Move the roll-up figures of an app user (``user_id``) or organisation
    (``organization_id``) just deleted to the NULL key, as their ledger rows
    were (SET NULL)."""
    with transaction.atomic(), _writing():
        deltas = Deltas()
        for index, rollup in enumerate(ROLLUPS):
            if column not in rollup.grain:
                continue
            rows = list(rollup.rows().filter(**{column: pk}).order_by("pk").select_for_update())
            deltas.add_rollup_rows(index, rows, sign=-1)
            deltas.add_rollup_rows(index, rows, **{column: None})
            if rollup.latency:
                rows = list(
                    rollup.latency.objects.filter(**{column: pk}).order_by("pk").select_for_update()
                )
                deltas.add_rollup_rows(index, rows, sign=-1)
                deltas.add_rollup_rows(index, rows, **{column: None})
        deltas.apply()


# -- the COPY path (PostgreSQL bulk loads) ------------------------------------------------


class LedgerRow(SimpleNamespace):
    """A new ledger row on the COPY path: the attributes of a ModelUsage
    (all that ``prepare`` and ``refusal`` read and set) without building a
    model instance for each of a million rows. Fields not given read the
    field's default from the class."""


for _field in LEDGER_FIELDS:
    if not (_field.has_default() and callable(_field.default)):  # timestamp: always given
        setattr(LedgerRow, _field.attname, _field.get_default())


STAGING = "ledger_staging"
INSERTED = "ledger_inserted"
_COLUMNS = ", ".join(_quote(f.column) for f in LEDGER_FIELDS)


def _temp_tables_sql():
    # Live as long as the connection; emptied before each batch (a batch may
    # be a savepoint in an outer transaction, as in --dry-run).
    return [
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} AS "  # noqa: S608 (names from the model)
        f"SELECT {_COLUMNS} FROM {LEDGER} WITH NO DATA",
        f"CREATE TEMP TABLE IF NOT EXISTS {INSERTED} AS "  # noqa: S608
        f"SELECT id, {_COLUMNS} FROM {LEDGER} WITH NO DATA",
        f"TRUNCATE {STAGING}, {INSERTED}",
    ]


# Insert the staged rows that are new (in source_pk order) and keep exactly
# those, for their roll-up deltas.
COPY_SQL = f"""
WITH inserted AS (
    INSERT INTO {LEDGER} ({_COLUMNS})
    SELECT {_COLUMNS} FROM {STAGING} ORDER BY source_pk COLLATE "C"
    {{conflict}}
    RETURNING id, {_COLUMNS}
)
INSERT INTO {INSERTED} (id, {_COLUMNS}) SELECT id, {_COLUMNS} FROM inserted
"""  # noqa: S608 (table and column names from the models; values are parameters)

# The same for a batch tried as all new: if every staged row goes in, the
# staging table holds exactly the rows inserted, and the roll-ups take their
# sums from it; nothing is written a third time.
COPY_NEW_SQL = f"""
INSERT INTO {LEDGER} ({_COLUMNS})
SELECT {_COLUMNS} FROM {STAGING} ORDER BY source_pk COLLATE "C"
{{conflict}}
RETURNING source_pk, id
"""  # noqa: S608 (table and column names from the models)


def _copy(table, rows):
    values_of = operator.attrgetter(*(f.attname for f in LEDGER_FIELDS))
    sql = f"COPY {_quote(table)} ({_COLUMNS}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            # str() turns TextChoices members into plain text for the text dumper.
            copy.write_row([(str(v) if isinstance(v, str) else v) for v in values_of(row)])


def _copy_insert(source, rows, keep=True):
    """The COPY path's ``_insert_new``: COPY ``rows`` into the staging table,
    insert those that are new; sets ``pk`` of each row inserted and returns
    them. With ``keep`` the inserted rows stay in the INSERTED table for
    ``_upsert_from``; without, the caller takes all or none of them and reads
    the staging table."""
    by_pk = {row.source_pk: row for row in rows}
    with connection.cursor() as cursor:
        for statement in _temp_tables_sql():
            cursor.execute(statement)
        if not rows:
            return []
        _copy(STAGING, rows)
        if keep:
            cursor.execute(COPY_SQL.format(conflict=_conflict_clause()))
            cursor.execute(f"SELECT source_pk, id FROM {INSERTED}")  # noqa: S608
        else:
            cursor.execute(COPY_NEW_SQL.format(conflict=_conflict_clause()))
        inserted = []
        for source_pk, pk in cursor.fetchall():
            row = by_pk[source_pk]
            row.pk = pk
            inserted.append(row)
    return inserted


def _copy_all_new(source, rows):
    """COPY ``rows`` with no lock taken first: the rows inserted if every one
    of them was new, else None with nothing kept (the savepoint rolled back).

    Safe without locks: an insert waits only on another writer's uncommitted
    insert of the same key, and writers insert in one key order before they
    touch any roll-up key, so no wait closes a cycle. Not on a partitioned
    ledger, whose unique index is per month: None at once there."""
    if partitioned():
        return None
    try:
        with transaction.atomic():  # a savepoint
            created = _copy_insert(source, rows, keep=False)
            if len(created) < len(rows):
                raise _Retry
            return created
    except ProgrammingError as error:
        if not _lost_index(error):
            raise
        set_partitioned(True)  # partitioned since this connection looked
    except _Retry:
        pass
    for row in rows:
        row.pk = None
    return None


def copy_upsert(source, wanted, price_book, optimistic=True):
    """``upsert_usage`` for the big batches of an import on PostgreSQL.

    ``wanted`` is {source_pk: ledger field values}. New rows go in with COPY
    (no model instance each). With ``optimistic`` a batch is first tried as
    all new (a first import: no lookup of the ledger at all); otherwise, or
    when some rows existed, the existing rows are locked first and updated
    when they changed, as in ``upsert_usage``. The roll-ups then move once,
    keys in the writers' order: for new rows alone by sums grouped in the
    database, otherwise by deltas summed in Python. Every ledger lock is
    taken before any roll-up key, in one roll-up pass, so a batch cannot
    deadlock with the API's writers. Returns {"created", "updated",
    "unchanged"} as ``upsert_usage`` does (created rows as ``LedgerRow``s)."""
    rows = [LedgerRow(**values, source_id=source.pk, source_pk=pk) for pk, values in wanted.items()]
    prepare(rows, price_book)
    _refuse(rows)
    with transaction.atomic(), _writing():
        created = _copy_all_new(source, rows) if optimistic else None
        changed = unchanged = []
        inserted = STAGING  # all new: the staged rows are the rows inserted
        if created is None:
            inserted = INSERTED
            existing, created = _lock_and_insert(source, rows, insert=_copy_insert)
            changed, unchanged, before = _compare(existing, rows, created)
        if changed:
            _bulk_update(changed, UPDATABLE, batch_size=2000)
            Deltas().add(before, sign=-1).add(changed).add(created).apply()
        elif created:
            with connection.cursor() as cursor:
                _upsert_from(cursor, inserted)
    return {"created": created, "updated": changed, "unchanged": unchanged}


def take_out(relation):
    """Take the ledger rows in ``relation`` (a month partition just detached
    from the ledger, usage.partitions) out of every roll-up, in SQL, and
    delete the keys left with no request. In the detaching transaction."""
    with _writing(), connection.cursor() as cursor:
        _upsert_from(cursor, relation, sign=-1)
        for model in (*USAGE_MODELS, *LATENCY_MODELS):
            cursor.execute(
                f"DELETE FROM {_quote(model._meta.db_table)} WHERE requests = 0"  # noqa: S608
            )


def _upsert_from(cursor, relation, sign=1):
    """Add every roll-up's sums over the ledger rows in ``relation`` (a
    table with the ledger's columns), in SQL: one INSERT … SELECT … GROUP BY
    … ON CONFLICT DO UPDATE per roll-up table, keys in the writers' order.
    ``sign=-1`` takes them away instead."""
    zone = timezone.get_current_timezone_name()
    local = '("timestamp" AT TIME ZONE %(zone)s)'
    days = {"day": f"{local}::date", "month": f"date_trunc('month', {local})::date"}
    bucket = " ".join(
        f"WHEN request_time_ms < {bound} THEN {index}"
        for index, bound in enumerate(LATENCY_BUCKETS_MS)
    )
    minus = "-" if sign < 0 else ""
    sums = ", ".join(f"{minus}{measure.sql()}" for measure in MEASURES)
    for rollup in ROLLUPS:
        constants = rollup.constants
        columns = [*constants, *rollup.grain]  # the grain names are the column names
        keys = [days[rollup.span], *rollup.grain[1:]]
        select = ", ".join([*(f"'{value}'" for value in constants.values()), *keys])
        group = ", ".join(str(i + 1) for i in range(len(constants), len(columns)))
        order = ", ".join(_order(k) for k in keys)
        cursor.execute(
            _upsert_sql(
                rollup.usage,
                columns,
                SUMMED,
                f"SELECT {select}, {sums} FROM {relation} GROUP BY {group} ORDER BY {order}",  # noqa: S608
                returning=False,
            ),
            {"zone": zone},
        )
        if rollup.latency is None:
            continue
        case = f"CASE {bucket} ELSE {len(LATENCY_BUCKETS_MS)} END"
        cursor.execute(
            _upsert_sql(
                rollup.latency,
                [*rollup.grain, "bucket"],
                ("requests",),
                f"SELECT {select}, {case}, {minus}COUNT(*) FROM {relation} "  # noqa: S608
                f"WHERE request_time_ms IS NOT NULL "
                f"GROUP BY {group}, {len(columns) + 1} ORDER BY {order}, {case}",
                returning=False,
            ),
            {"zone": zone},
        )


def _order(expression):
    """ORDER BY term matching Python's key order (``_sort_key``)."""
    if expression in ("model_name", "provider"):
        return f'{expression} COLLATE "C"'
    if expression.endswith("_id"):
        return f"COALESCE({expression}, 0)"
    return expression


# -- repairs ---------------------------------------------------------------------------


def rebuild():
    """Replace every roll-up with one computed from the whole ledger.

    On PostgreSQL one INSERT … SELECT per roll-up table (the COPY path's
    statements over the whole ledger, the ledger locked against writers
    meanwhile, the tables analysed after); elsewhere GROUP BY queries
    written back in batches. The two give the same rows (tested). Readers
    keep seeing the old roll-ups until the transaction commits. Returns
    {roll-up name: rows written}.
    """
    with transaction.atomic(), _writing():
        postgres = connection.vendor == "postgresql"
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {LEDGER} IN SHARE MODE")
                cursor.execute("SET LOCAL work_mem = '256MB'")
        for model in (*USAGE_MODELS, *LATENCY_MODELS):
            model.objects.all().delete()
        if postgres:
            with connection.cursor() as cursor:
                _upsert_from(cursor, LEDGER)
        else:
            ledger = ModelUsage.objects.all()
            for rollup in ROLLUPS:
                _bulk_write(rollup.usage, aggregate_usage(ledger, rollup))
                if rollup.latency:
                    _bulk_write(rollup.latency, aggregate_latency(ledger, rollup))
        written = {}
        for rollup in ROLLUPS:
            written[rollup_name(rollup)] = rollup.rows().count()
            if rollup.latency:
                written[rollup.latency.__name__] = rollup.latency.objects.count()
    analyze_rollups()
    return written


def _bulk_write(model, rows, batch_size=5000):
    written, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_size:
            model.objects.bulk_create(batch)
            written, batch = written + len(batch), []
    model.objects.bulk_create(batch)
    return written + len(batch)


def analyze_rollups():
    """Refresh PostgreSQL's statistics of the roll-up tables (after a
    rebuild's mass delete and insert), so pages are fast at once rather than
    after autovacuum."""
    if connection.vendor != "postgresql":
        return
    # VACUUM (dead rows of the delete gone too) needs to be outside a transaction.
    command = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
    with connection.cursor() as cursor:
        for model in (*USAGE_MODELS, *LATENCY_MODELS):
            cursor.execute(f"{command} {_quote(model._meta.db_table)}")
