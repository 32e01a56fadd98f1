"""The one import loop, driven by a ``Mapping`` (see ``spec.py``).

For each table, parents first:

1. Read only what may be new or changed (``read_plan``): an INTEGER key
   remembers the highest pk seen, an ``updated_at`` column the highest
   value seen (both in ``Source.sync_cursor``); a table with a text/UUID key
   and no ``updated_at`` is read whole and compared with what we hold, batch
   by batch. Reads stop at the high-water marks taken when the run starts,
   so rows written meanwhile (a child and its new parent) wait whole for the
   next run. Rows refused, and rows stored without a parent they name
   (``resolve``), are read again by the next run.
2. Per batch (``fetchmany`` / a server-side cursor, never the whole table):
   convert and check every row in Python (``checks.py``), refusing what the
   schema cannot take — in a read-ahead thread, since it needs no database;
   then, in one transaction, create implied parents, resolve foreign keys
   (one query per parent model), check unique values, and write
   (``writers.py``; ledger rows through ``usage.ledger``). If the database
   still refuses the batch, it is retried row by row in savepoints so only
   the bad row is refused.
3. After the table, rows we hold that the source no longer has are counted
   and reported, never deleted.
"""

import dataclasses
import time
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import SET_NULL, BooleanField
from django.db.models.expressions import RawSQL
from tqdm import tqdm

from usage.models import ModelUsage
from usage.pricing import PriceBook

from .checks import DEFAULTED, UniqueChecker, constraint_violation, field_cleaner
from .converters import text
from .readers import quote_name, read_ahead
from .report import DELETED_SAMPLE, TableStats
from .spec import Col, Fk, Refused
from .writers import LedgerWriter, ModelWriter, analyze

# Rows created in a table before its statistics are refreshed (then again
# each time it has grown by half): see writers.analyze.
ANALYZE_AFTER = 10_000
# Rows refused by the last run that the next names one by one (IN …); past
# this it reads from the lowest of them (or the whole table for text keys).
RETRY_MAX = 2_000
# SQLSTATE classes of errors about the row, not the connection: data
# exception, integrity constraint violation, program limit exceeded (a value
# too large for an index).
ROW_SQLSTATE_CLASSES = ("22", "23", "54")


class SchemaMismatch(Exception):
    """The source database is not of the kind named."""


def required_columns(table):
    """The columns without which no row of ``table`` could land: its key, a
    parent its model requires, a field that has neither NULL nor a default."""
    required = {table.pk}
    for column, spec in table.columns.items():
        name = spec.field
        if name.startswith("_") or "." in name:
            continue
        model_field = table.model._meta.get_field(name)
        has_no_value = model_field.null or (model_field.has_default() and not isinstance(spec, Fk))
        if not has_no_value:
            required.add(column)
    return required


def check_schema(mapping, db):
    """What the source holds of the kind's documented schema, before writing.

    Fails when a table that identifies the kind (``Mapping.identifying``)
    or a column every row needs (``required_columns``) is missing. Other
    documented tables and columns are optional: older releases lack some.
    Returns notes [(outcome, table, column or None, reason)] for the report:
    documented but absent at the source (skipped, fields left NULL/default),
    and present but undocumented (ignored)."""
    present = db.tables()
    missing = [name for name in mapping.identifying if name not in present]
    if missing:
        raise SchemaMismatch(
            f"not a database of kind {mapping.kind}: missing tables {', '.join(missing)}"
        )
    notes, problems = [], []
    for table in mapping.tables:
        if table.name not in present:
            notes.append((ABSENT, table.name, None, "documented table absent: skipped"))
            continue
        columns = db.columns(table.name)
        wanted = {table.pk, *table.columns, *filter(None, [table.updated_at])}
        lacking = sorted(wanted - set(columns))
        problems += [f"{table.name}.{c}" for c in lacking if c in required_columns(table)]
        notes += [
            (ABSENT, table.name, c, "documented column absent: read as NULL")
            for c in lacking
            if c not in required_columns(table)
        ]
        notes += [
            (IGNORED, table.name, c, f"not in the {mapping.kind} schema: ignored")
            for c in sorted(set(columns) - wanted)
        ]
    if problems:
        raise SchemaMismatch(
            f"not a database of kind {mapping.kind}: missing columns {', '.join(problems)}"
        )
    known = {t.name for t in mapping.tables} | set(mapping.ignored)
    notes += [
        (IGNORED, name, None, f"not in the {mapping.kind} schema: ignored")
        for name in sorted(present - known)
        if not name.startswith("sqlite_")
    ]
    return notes


ABSENT, IGNORED = "absent at source", "ignored"


@dataclass(slots=True)
class Record:
    """One row to land in the table's model (a source row may give several)."""

    source_pk: str
    values: dict
    usage: dict | None = None
    state: str = ""
    id: int | None = None
    usage_state: str = ""
    usage_id: int | None = None


@dataclass(slots=True)
class Item:
    """One source row on its way in."""

    raw: dict
    pk: str
    keys: dict = field(default_factory=dict)
    records: list = field(default_factory=list)
    staged_usage: dict = field(default_factory=dict)
    # (source column, reason, raw value) of each value dropped, not stored.
    dropped: list = field(default_factory=list)
    # Stored without a parent it names (see Importer.resolve): read again.
    unlinked: bool = False

    @property
    def state(self):
        """created (its first record is new), updated (anything moved) or unchanged."""
        if self.records[0].state == "created":
            return "created"
        moved = ("created", "updated")
        if any(r.state in moved or r.usage_state in moved for r in self.records):
            return "updated"
        return "unchanged"


class Importer:
    def __init__(self, mapping, db, source, report, batch_size=1000, full=False, progress=True):
        self.mapping = mapping
        self.db = db
        self.source = source
        self.report = report
        self.batch_size = batch_size
        self.full = full
        self.progress = progress
        self.price_book = PriceBook()
        self.refused_pks = defaultdict(set)
        # Rows stored without a parent they name: read again by the next run,
        # which links them once the parent has landed.
        self.unlinked_pks = defaultdict(set)
        # Rows refused, or stored unlinked, by the last run: read again (see read_plan).
        self.earlier_refused = defaultdict(set)
        self.earlier_unlinked = defaultdict(set)
        if not full:
            for name, cursor in source.sync_cursor.items():
                self.earlier_refused[name] = set(cursor.get("refused", ()))
                self.earlier_unlinked[name] = set(cursor.get("unlinked", ()))
        self.stats = []
        self._cleaners = {}
        self._plans = {}
        self._sources = {}

    def run(self):
        # High-water marks of every table first: a row written during the run
        # (a child and the parent it needs) is left whole for the next run.
        tables = self.present_tables()
        marks = {table.name: self.high_marks(table) for table in tables}
        for table in tables:
            self.import_table(table, marks[table.name])
        return self.stats

    def present_tables(self):
        """The mapping's tables the source has; an absent updated_at column
        means the table is read as one without (see check_schema)."""
        present, tables = self.db.tables(), []
        for table in self.mapping.tables:
            if table.name not in present:
                continue
            if table.updated_at and table.updated_at not in self.db.columns(table.name):
                table = dataclasses.replace(table, updated_at=None)
            tables.append(table)
        return tables

    # --- one table ------------------------------------------------------------

    def import_table(self, table, marks):
        stats = TableStats(table.name)
        self.stats.append(stats)
        started = time.monotonic()
        had_rows = table.model._default_manager.filter(source=self.source).exists()
        sql, params, count_sql, new_cursor = self.read_plan(table, marks)
        total = self.db.scalar(count_sql, params)[0]
        analyzed_at = ANALYZE_AFTER
        batches = self.db.stream(sql, params, self.batch_size, name=table.name)
        with (
            tqdm(total=total, desc=table.name, unit=" rows", disable=not self.progress) as bar,
            # closing(): stop the reading thread at once if a batch fails.
            closing(read_ahead(self.converted(table, batches))) as prepared,
        ):
            for rows, items, refusals in prepared:
                self.import_batch(table, rows, items, refusals, stats)
                last = rows[-1][table.pk]
                if "pk" in new_cursor and isinstance(last, int):  # read in pk order
                    self.save_cursor(table, {"pk": last, **self.retry_lists(table, last)})
                if stats.created >= analyzed_at:  # each time it grew by half
                    analyze(table.model, *([ModelUsage] if table.ledger else []))
                    analyzed_at = stats.created * 3 // 2
                bar.update(len(rows))
        if new_cursor:
            # Rows refused in this run are read again by the next, whatever
            # the cursor: fixed at the source, they land then; rows stored
            # without a parent too: once it lands, they are linked to it.
            new_cursor.update(self.retry_lists(table))
        self.save_cursor(table, new_cursor)
        if had_rows:
            self.find_deleted(table, stats)
        stats.seconds = time.monotonic() - started
        return stats

    def retry_lists(self, table, last=None):
        """The cursor's lists of rows the next run reads again: refused, and
        stored unlinked, in this run; with ``last`` (the highest integer pk
        read so far) also the earlier run's not read again yet. "unlinked"
        is left out while no row of the table ever was."""
        lists = {}
        for key, now, earlier in (
            ("refused", self.refused_pks, self.earlier_refused),
            ("unlinked", self.unlinked_pks, self.earlier_unlinked),
        ):
            waiting = set() if last is None else {p for p in earlier[table.name] if int(p) > last}
            lists[key] = sorted(waiting | now[table.name])
        if not lists["unlinked"] and "unlinked" not in self.source.sync_cursor.get(table.name, {}):
            del lists["unlinked"]
        return lists

    def high_marks(self, table):
        """(integer key?, MAX(pk) if so, MAX(updated_at) if the table has one)."""
        integer_pk = self.db.is_integer(self.db.columns(table.name)[table.pk])
        pk, changed = quote_name(table.pk), table.updated_at and quote_name(table.updated_at)
        # Identifiers come from the mapping, quoted; values are parameters.
        high_pk, high_changed = self.db.scalar(
            f"SELECT {f'MAX({pk})' if integer_pk else 'NULL'}, "  # noqa: S608
            f"{f'MAX({changed})' if changed else 'NULL'} FROM {quote_name(table.name)}"
        )
        return integer_pk, high_pk, high_changed

    def read_plan(self, table, marks):
        """SELECT and COUNT of the rows to read, and the cursor to keep after.

        Rows up to the marks; of those, when a cursor is stored (and not
        --full), only rows past it: a higher integer pk, or an updated_at at
        or after the last one seen (or NULL, for a text key: never dated).
        """
        integer_pk, high_pk, high_changed = marks
        stored = {} if self.full else self.source.sync_cursor.get(table.name, {})
        pk, changed = quote_name(table.pk), table.updated_at and quote_name(table.updated_at)
        mark, where, params, since = self.db.placeholder, [], [], []
        if high_pk is not None:
            where.append(f"{pk} <= {mark}")
            params.append(high_pk)
        if high_changed is not None:
            where.append(f"({changed} <= {mark} OR {changed} IS NULL)")
            params.append(high_changed)
        if integer_pk and "pk" in stored:
            since.append(f"{pk} > {mark}")
            params.append(stored["pk"])
        if changed and "updated_at" in stored:
            since.append(f"{changed} >= {mark}")
            params.append(self.db.cursor_value(table.name, table.updated_at, stored["updated_at"]))
            if not integer_pk:
                since.append(f"{changed} IS NULL")
        retry = sorted(self.earlier_refused[table.name] | self.earlier_unlinked[table.name])
        if integer_pk:
            retry = [int(p) for p in retry if _is_int(p)]
        if since and retry:
            if len(retry) <= RETRY_MAX:
                since.append(f"{pk} IN ({', '.join([mark] * len(retry))})")
                params.extend(retry)
            elif integer_pk:
                since.append(f"{pk} >= {mark}")
                params.append(min(retry))
            else:
                since = []  # too many to name: read the table whole
        if since:
            where.append("(" + " OR ".join(since) + ")")
        columns = self.db.columns(table.name)
        wanted = dict.fromkeys([table.pk, *table.columns, *filter(None, [table.updated_at])])
        select = ", ".join(
            quote_name(c) if c in columns else f"NULL AS {quote_name(c)}" for c in wanted
        )
        rows = f"FROM {quote_name(table.name)}"
        if where:
            rows += f" WHERE {' AND '.join(where)}"
        new_cursor = {}
        if high_pk is not None:
            new_cursor["pk"] = high_pk
        if high_changed is not None:
            new_cursor["updated_at"] = self.db.storable(high_changed)
        return (
            f"SELECT {select} {rows} ORDER BY {pk}",
            params,
            f"SELECT COUNT(*) {rows}",
            new_cursor,
        )

    def save_cursor(self, table, values):
        if not values:
            return
        cursor = dict(self.source.sync_cursor)
        cursor[table.name] = {**cursor.get(table.name, {}), **values}
        self.source.sync_cursor = cursor
        type(self.source).objects.filter(pk=self.source.pk).update(sync_cursor=cursor)

    # --- one batch -----------------------------------------------------------

    def converted(self, table, batches):
        """Each batch as (rows, items converted, [(item, reason)] refused).

        Runs in the read-ahead thread: no database access here."""
        with closing(batches):  # the source cursor is closed by this thread
            for rows in batches:
                items, refusals = [], []
                for raw in rows:
                    try:
                        item = Item(raw=raw, pk=text(raw[table.pk]))
                    except ValueError:
                        item = Item(raw=raw, pk=None)
                    try:
                        if item.pk is None or not item.pk.strip():
                            raise Refused(f"{table.pk}: no primary key")
                        self.convert(table, item)
                    except Refused as refusal:
                        refusals.append((item, str(refusal)))
                        continue
                    except Exception as error:  # a row no converter foresaw: refused, run on
                        refusals.append((item, f"could not be read: {problem_text(error)}"))
                        continue
                    items.append(item)
                yield rows, items, refusals

    def import_batch(self, table, rows, items, refused_on_reading, stats):
        stats.read += len(rows)
        for item, reason in refused_on_reading:
            self.refuse(table, item, reason, stats)
        if not items:
            return
        try:
            with transaction.atomic():
                refusals = self.apply(table, items)
        except Exception as error:  # one bad row must not stop the run: retry one by one
            if stops_the_run(error):
                raise
            refusals = self.apply_one_by_one(table, items)
        refused = {id(item) for item, _ in refusals}
        for item, reason in refusals:
            self.refuse(table, item, reason, stats)
        for item in items:
            if id(item) not in refused:
                setattr(stats, item.state, getattr(stats, item.state) + 1)
                if item.unlinked:
                    self.unlinked_pks[table.name].add(item.pk)
                for column, reason, value in item.dropped:
                    stats.dropped += 1
                    self.report.dropped(table.name, item.pk, column, reason, value)

    def apply_one_by_one(self, table, items):
        refusals = []
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # Foreign keys are checked at commit (DEFERRABLE INITIALLY
                # DEFERRED); here each row's savepoint must see its own errors.
                with connection.cursor() as cursor:
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for item in items:
                for record in item.records:
                    record.id = record.usage_id = None
                try:
                    with transaction.atomic():
                        refusals += self.apply(table, [item])
                except Exception as error:  # this row's, whatever it is: refused, run on
                    if stops_the_run(error):
                        raise
                    if isinstance(error, DatabaseError):
                        reason = problem_text(ValueError(str(error).strip().splitlines()[0]))
                        refusals.append((item, f"refused by the database: {reason}"))
                    else:
                        refusals.append((item, f"could not be written: {problem_text(error)}"))
        return refusals

    def refuse(self, table, item, reason, stats):
        stats.refused += 1
        if item.pk is not None:
            self.refused_pks[table.name].add(item.pk)
        self.report.refused(table.name, item.pk, reason, item.raw)

    # --- converting and checking one row (no database) --------------------------

    def cleaner(self, model, name):
        key = (model, name)
        if key not in self._cleaners:
            self._cleaners[key] = field_cleaner(model._meta.get_field(name))
        return self._cleaners[key]

    def plan(self, table):
        """Per column: (column, converter, target, cleaner or None, ledger field
        or None, droppable?).

        Cleaned as converted, except in a split table (cleaned after the split)
        and for staging and ``usage.*`` targets (cleaned with their model). A
        droppable column's invalid value is dropped, not the row (see
        ``Table.defining``): every plain column that does not define the row."""
        if table.name not in self._plans:
            columns = []
            for column, spec in table.columns.items():
                if isinstance(spec, Fk):
                    continue
                usage_field = spec.field.removeprefix("usage.") if "." in spec.field else None
                staged = bool(usage_field or spec.field.startswith("_"))
                clean = (
                    self.cleaner(table.model, spec.field) if not (staged or table.split) else None
                )
                droppable = not staged and column not in table.defining
                columns.append((column, spec.convert, spec.field, clean, usage_field, droppable))
            self._plans[table.name] = (columns, list(table.foreign_keys))
        return self._plans[table.name]

    def sources_of(self, table):
        """{target field (``usage.`` removed): source column} of ``table``."""
        sources = self._sources.get(table.name)
        if sources is None:
            sources = self._sources[table.name] = {
                s.field.removeprefix("usage."): c
                for c, s in table.columns.items()
                if isinstance(s, Col)
            }
        return sources

    def droppable(self, table, column):
        return column in table.columns and any(
            c == column and droppable for c, *_, droppable in self.plan(table)[0]
        )

    def convert(self, table, item):
        columns, foreign_keys = self.plan(table)
        raw, values = item.raw, {}
        for column, convert, name, clean, usage_field, droppable in columns:
            try:
                value = convert(raw[column])
                if clean is not None:
                    value = clean(value)
            except Exception as error:  # any failure of one value: drop it or refuse
                reason = f"{column}: {problem_text(error)}"
                if not droppable:
                    raise Refused(reason) from None
                value = self.dropped(table.model, name, clean, item, column, reason)
            if usage_field:
                item.staged_usage[usage_field] = value
            else:
                values[name] = value
        if table.model is ModelUsage:
            total = self.sources_of(table).get("total_tokens")
            if total is not None and raw.get(total) is None:
                values["total_tokens"] = None
                derive_total(values)
        for column in foreign_keys:
            item.keys[column] = None if raw[column] is None else text(raw[column])
        if table.split:
            item.records = [
                Record(pk, self.clean(table, table.model, v, item))
                for pk, v in table.split(item.pk, values)
            ]
        else:
            item.records = [Record(item.pk, values)]
        for record in item.records:
            self.check_row(table, item, record.values)
        if table.model is ModelUsage and item.records[0].values.get("timestamp") is DEFAULTED:
            raise Refused("timestamp: NULL, and a ledger row needs the time of the call")

    def dropped(self, model, name, clean, item, column, reason):
        """The value of a dropped one: what a NULL at the source would give.

        Refuses the row when the field cannot go without a value (NOT NULL,
        no default) or would get the time of the import (a computed date
        default), which would state something the source never said."""
        if clean is None and not name.startswith("_"):
            clean = self.cleaner(model, name)
        try:
            value = None if clean is None else clean(None)
        except ValueError:
            raise Refused(reason) from None
        if value is DEFAULTED and model._meta.get_field(name).get_internal_type() in (
            "DateTimeField",
            "DateField",
        ):
            raise Refused(reason)
        if all(c != column for c, *_ in item.dropped):  # once per column (a split row)
            item.dropped.append((column, reason, item.raw.get(column)))
        return value

    def check_row(self, table, item, values):
        """The model's check constraints, then the table's validators.

        A constraint that only involves droppable columns drops their values
        (and is checked again); one that involves a defining column, a
        parent or a value the mapping sets refuses the row."""
        violation = constraint_violation_for(table.model)
        sources = self.sources_of(table)
        for _ in range(len(table.model._meta.constraints) + 1):
            found = violation(values)
            if found is None:
                break
            reason, attnames = found
            columns = [sources.get(attname) for attname in attnames]
            if not all(column and self.droppable(table, column) for column in columns):
                raise Refused(reason)
            for attname, column in zip(attnames, columns, strict=True):
                values[attname] = self.dropped(table.model, attname, None, item, column, reason)
        reason = next(filter(None, (validate(values) for validate in table.validators)), None)
        if reason:
            raise Refused(reason)

    def clean(self, table, model, values, item=None):
        """Clean every field of ``values`` (a split record, a ledger row).

        In a split record (``item`` given) an invalid droppable value is
        dropped; in a ledger row every value counts: the row is refused."""
        sources = self.sources_of(table)
        if model is ModelUsage:
            derive_total(values)
        for name, value in values.items():
            if name.startswith("_"):
                continue
            try:
                values[name] = self.cleaner(model, name)(value)
            except Exception as error:  # any failure of one value: drop it or refuse
                column = sources.get(name, name)
                reason = f"{column}: {problem_text(error)}"
                if item is None or model is ModelUsage or not self.droppable(table, column):
                    raise Refused(reason) from None
                values[name] = self.dropped(model, name, None, item, column, reason)
        if model is ModelUsage and values.get("timestamp") is DEFAULTED:
            raise Refused("timestamp: NULL, and a ledger row needs the time of the call")
        return values

    # --- in the batch's transaction ---------------------------------------------

    def apply(self, table, items):
        """Resolve, check and write ``items``; returns [(item, reason)] refused."""
        refusals = []
        alive = list(items)

        def keep(new_refusals):
            refusals.extend(new_refusals)
            gone = {id(item) for item, _ in new_refusals}
            return [item for item in alive if id(item) not in gone]

        for column, fk in table.foreign_keys.items():
            if fk.create:
                alive = keep(self.create_implied(column, fk, alive))
            alive = keep(self.resolve(table, column, fk, alive))
        if table.ledger:
            alive = keep(self.add_ledger_values(table, alive))
        records = [(item, record) for item in alive for record in item.records]
        conflicts = UniqueChecker(table.model).conflicts(
            self.source, [(record.source_pk, record.values) for _, record in records]
        )
        first_reason = {}  # of each item (a split row may conflict twice)
        for index, reason in conflicts.items():
            item = records[index][0]
            first_reason.setdefault(id(item), (item, reason))
        alive = keep(list(first_reason.values()))
        self.write(table, alive)
        return refusals

    def create_implied(self, column, fk, items):
        """Create the parents a source names but has no table for."""
        wanted = {}
        for item in items:
            key = item.keys[column]
            if key is not None and key not in wanted:
                wanted[key] = item
        if not wanted:
            return []
        known = set(self.parents(fk, wanted).values_list(fk.by, flat=True))
        refusals, new = [], []
        for key, item in wanted.items():
            if key in known:
                continue
            try:
                parent = fk.create(key, item.records[0].values)
                parent.source = self.source
                parent.clean_fields(exclude={"source"})
            except (ValueError, ValidationError) as error:
                reason = "; ".join(getattr(error, "messages", [str(error)]))
                refusals.extend((i, f"{column}: {reason}") for i in items if i.keys[column] == key)
                continue
            new.append(parent)
        fk.model._default_manager.bulk_create(new)
        return refusals

    def parents(self, fk, keys):
        """The parents ``fk`` names by these keys: one query.

        On PostgreSQL the keys go as one array parameter (``= ANY(%s)``)
        rather than thousands of bound IN parameters, which cost more to
        build than the query costs to run."""
        manager = fk.model._default_manager
        queryset = manager.filter(source=self.source) if fk.by == "source_pk" else manager.all()
        keys = list(keys)
        if connection.vendor != "postgresql":
            return queryset.filter(**{f"{fk.by}__in": keys})
        column = connection.ops.quote_name(fk.model._meta.get_field(fk.by).column)
        any_key = RawSQL(f"{column} = ANY(%s)", (keys,), output_field=BooleanField())  # noqa: S611
        return queryset.filter(any_key)

    def resolve(self, table, column, fk, items):
        """Set the parent id (and carried fields) on every record.

        A row whose parent is missing at the source or was refused is
        refused, unless the link may go (``link_droppable``): then it is
        stored without it (NULL) and the link reported as a value dropped;
        the next run reads it again and links it once the parent lands."""
        model_field = table.model._meta.get_field(fk.field)
        keys = {i.keys[column] for i in items} - {None}
        found = {}
        if keys:
            for key, pk, *carried in self.parents(fk, keys).values_list(fk.by, "id", *fk.carry):
                found[str(key)] = (pk, carried)
        refusals = []
        parent_table = self.mapping.table_of(fk.model)
        droppable = link_droppable(table, column, fk)
        for item in items:
            key = item.keys[column]
            if key is None and not model_field.null:
                refusals.append((item, f"{column}: NULL where a value is required"))
                continue
            if key is not None and key not in found:
                if key in self.refused_pks.get(parent_table, ()):
                    how = "refused in this run"
                elif key in self.earlier_refused.get(parent_table, ()):
                    how = "refused in an earlier run"
                else:
                    how = "not in this source"
                where = f"{column}={key!r} ({parent_table}, {how})"
                if not droppable:
                    refusals.append((item, f"parent refused/missing: {where}"))
                    continue
                outcome = "missing at source" if how == "not in this source" else "refused"
                reason = f"parent {fk.field} {outcome}: {where}; stored without it"
                if all(c != column for c, *_ in item.dropped):
                    item.dropped.append((column, reason, item.raw.get(column)))
                item.unlinked = True
            pk, carried = found.get(key, (None, [None] * len(fk.carry)))
            for record in item.records:
                record.values[model_field.attname] = pk
                for name, value in zip(fk.carry, carried, strict=True):
                    record.values[f"_{fk.field}.{name}"] = value
        return refusals

    def add_ledger_values(self, table, items):
        """The ``usage`` values of each record (after its parents are known)."""
        refusals = []
        for item in items:
            try:
                for record in item.records:
                    usage = table.ledger(record.values, dict(item.staged_usage))
                    record.usage = usage and self.clean(table, ModelUsage, usage)
            except Refused as refusal:
                refusals.append((item, str(refusal)))
        return refusals

    def write(self, table, items):
        records = [r for i in items for r in i.records]
        if not records:
            return
        ledger = LedgerWriter(self.source, self.price_book)
        if table.model is ModelUsage:
            ledger.write(records, attribute="values")
            for record in records:
                record.state, record.id = record.usage_state, record.usage_id
                record.usage_state = ""
            return
        if table.ledger:
            ledger.write(records)
            if table.ledger_link:
                attname = table.model._meta.get_field(table.ledger_link).attname
                for record in records:
                    record.values[attname] = record.usage_id
        ModelWriter(table.model, self.source, table.keep_local).write(records)

    # --- after the table -------------------------------------------------------

    def find_deleted(self, table, stats):
        """Count (and sample) rows we hold whose source row is gone."""
        integer_pk = self.db.is_integer(self.db.columns(table.name)[table.pk])
        rows = table.model._default_manager.filter(source=self.source).order_by("id")
        chunk_size = min(self.batch_size, 900)
        last, sample = 0, []
        while chunk := list(rows.filter(id__gt=last).values_list("id", "source_pk")[:chunk_size]):
            last = chunk[-1][0]
            keys = {pk.rpartition(":")[0] if table.split else pk for _, pk in chunk}
            params = [int(k) if integer_pk else k for k in keys if not integer_pk or _is_int(k)]
            present = set()
            if params:
                marks = ", ".join([self.db.placeholder] * len(params))
                sql = (
                    f"SELECT {quote_name(table.pk)} FROM {quote_name(table.name)} "  # noqa: S608
                    f"WHERE {quote_name(table.pk)} IN ({marks})"
                )
                present = {text(value) for (value,) in self.db.rows(sql, params)}
            gone = sorted(keys - present)
            stats.deleted_at_source += len(gone)
            sample += gone[: DELETED_SAMPLE - len(sample)]
        if stats.deleted_at_source:
            self.report.deleted(table.name, stats.deleted_at_source, sample)


def link_droppable(table, column, fk):
    """Whether a row may be stored without the parent ``column`` names when
    that parent is missing or refused: the field is nullable and declared
    ``on_delete=SET_NULL`` (the row outlives its parent: a ledger row's user
    or chat, an audit row's user), and the link is not what the row is
    about (``Table.defining``). A ``CASCADE`` parent owns the row (a chat
    is its user's, a message its chat's): an orphan is refused, not stored
    as anonymous. Implied parents (``Fk.create``) are created, not dropped."""
    model_field = table.model._meta.get_field(fk.field)
    return (
        model_field.null
        and model_field.remote_field.on_delete is SET_NULL
        and column not in table.defining
        and fk.create is None
    )


def stops_the_run(error):
    """Whether ``error`` is about our database, not the row: a lost
    connection or a locked database stops the run (committed batches stay,
    a rerun continues); anything else refuses the row and the run goes on."""
    if not isinstance(error, OperationalError | InterfaceError):
        return False
    sqlstate = getattr(error.__cause__, "sqlstate", None) or ""
    return sqlstate[:2] not in ROW_SQLSTATE_CLASSES


def _is_int(value):
    return value.lstrip("-").isdigit()


_constraint_violations = {}


def constraint_violation_for(model):
    if model not in _constraint_violations:
        _constraint_violations[model] = constraint_violation(model)
    return _constraint_violations[model]


def derive_total(values):
    """A ledger row's total_tokens when the source gave none (NULL): the sum
    of its parts. A total the source reported, 0 included, stays as it is."""
    if values.get("total_tokens") is None:
        parts = (values.get("prompt_tokens"), values.get("completion_tokens"))
        if all(isinstance(p, int) or p is None for p in parts):
            values["total_tokens"] = sum(p or 0 for p in parts)


PROBLEM_MAX_CHARS = 300


def problem_text(error):
    """One line saying why a value failed: a ValueError's own words, else
    the exception's name and message (a RecursionError, an OverflowError)."""
    if isinstance(error, ValueError) and type(error) is ValueError:
        text_ = str(error)
    else:
        text_ = f"{type(error).__name__}: {error}"
    text_ = " ".join(text_.split())
    return text_ if len(text_) <= PROBLEM_MAX_CHARS else text_[: PROBLEM_MAX_CHARS - 1] + "…"
