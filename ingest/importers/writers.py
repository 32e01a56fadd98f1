"""Writing one batch of converted records: plain models, and the usage ledger.

Both writers match records to existing rows by (source, source_pk) with one
query per batch, insert the new ones in bulk and update only the fields that
changed, and set ``record.state`` ("created", "updated", "unchanged") and
``record.id``.
"""

from types import SimpleNamespace

from django.db import connection
from django.utils import timezone

from ingest.upsert import upsert_by_source
from usage import ledger, rollups
from usage.models import ModelUsage


class ModelWriter:
    """Every imported model but the ledger, through ``ingest.upsert``: new rows
    created, changed fields updated (see ``Table.keep_local``)."""

    def __init__(self, model, source, keep_local=None):
        self.model = model
        self.source = source
        self.keep_local = keep_local or {}

    def write(self, records):
        rows = {
            record.source_pk: {k: v for k, v in record.values.items() if not k.startswith("_")}
            for record in records
        }
        states = upsert_by_source(self.model, self.source, rows, keep_local=self.keep_local)
        for record in records:
            record.state, record.id = states[record.source_pk]


LEDGER_FIELDS = [f for f in ModelUsage._meta.concrete_fields if not f.primary_key]


class LedgerRow(SimpleNamespace):
    """A new ledger row on the COPY path: the attributes of a ModelUsage
    (all that ``ledger.prepare`` reads and sets) without building a model
    instance for each of a million rows. Fields not given read the field's
    default from the class."""


for _field in LEDGER_FIELDS:
    if not (_field.has_default() and callable(_field.default)):  # timestamp: always given
        setattr(LedgerRow, _field.attname, _field.get_default())


class LedgerWriter:
    """Ledger rows go through ``usage.ledger``: priced from ModelPrice when the
    source gave no cost, attributed to an organisation, and counted in the
    daily roll-ups in the same transaction.

    On SQLite every row goes through ``upsert_usage``. On PostgreSQL a batch
    takes the COPY path: the same ``ledger.prepare``, COPY into a temporary
    staging table, then one statement (``COPY_SQL``) inserts the rows that
    are new (ON CONFLICT on (source, source_pk) skips the others) and writes
    the roll-up deltas of exactly those rows, grouped in the database by
    ``rollups.delta_ctes``; rows that already existed then go through
    ``upsert_usage`` to be compared and updated. (``rollups.record`` builds a
    delta row per distinct (day, model, user, …) in Python and saves it
    through the ORM; on a first import that is about one roll-up row per
    ledger row per roll-up, and it was the slowest step.)
    """

    def __init__(self, source, price_book, use_copy=None):
        self.source = source
        self.price_book = price_book
        self.use_copy = connection.vendor == "postgresql" if use_copy is None else use_copy

    def write(self, records, attribute="usage"):
        """Write ``getattr(record, attribute)`` (ledger field values) of each record.

        Sets ``record.usage_state`` and ``record.usage_id``.
        """
        wanted = {}
        for record in records:
            values = getattr(record, attribute)
            if values is not None:
                values = dict(values)  # ledger fields only (no staging keys)
                values["cost_source"] = (
                    ModelUsage.CostSource.REPORTED
                    if values.get("cost") is not None
                    else ModelUsage.CostSource.COMPUTED
                )
                wanted[record.source_pk] = (record, values)
        if not wanted:
            return
        states = {}
        if self.use_copy:
            inserted = self.copy_new({pk: values for pk, (_, values) in wanted.items()})
            states.update((pk, ("created", row_id)) for pk, row_id in inserted)
        rows = [
            ModelUsage(source=self.source, source_pk=pk, **values)
            for pk, (_, values) in wanted.items()
            if pk not in states
        ]
        if rows:
            result = ledger.upsert_usage(self.source, rows, price_book=self.price_book)
            for state in ("created", "updated", "unchanged"):
                states.update((u.source_pk, (state, u.pk)) for u in result[state])
        for source_pk, (record, _) in wanted.items():
            record.usage_state, record.usage_id = states[source_pk]

    def copy_new(self, wanted):
        """Insert the rows of ``wanted`` that are new; [(source_pk, id)] of those."""
        source_id = self.source.pk
        rows = [
            LedgerRow(**values, source_id=source_id, source_pk=pk) for pk, values in wanted.items()
        ]
        ledger.prepare(rows, self.price_book)
        with connection.cursor() as cursor:
            cursor.execute(STAGING_SQL)
            cursor.execute(f"TRUNCATE {STAGING}")
            copy_rows(ModelUsage, rows, table=STAGING)
            cursor.execute(COPY_SQL, {"zone": timezone.get_current_timezone_name()})
            return cursor.fetchall()


def analyze(*models):
    """Refresh PostgreSQL's statistics of tables that just grew a lot.

    A freshly loaded table keeps the planner's "nearly empty" estimate until
    autovacuum comes by; meanwhile each (source, source_pk IN …) lookup of a
    batch would scan every row of the source instead of using the index.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in models:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def copy_rows(model, rows, table=None):
    """COPY ``rows`` (instances or look-alikes) into ``model``'s table, or
    ``table`` with the same columns (PostgreSQL)."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    attnames = [f.attname for f in fields]
    sql = f"COPY {quote(table or model._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            # str() turns TextChoices members into plain text for the text dumper.
            copy.write_row(
                [(str(v) if isinstance(v, str) else v) for v in map(row.__getattribute__, attnames)]
            )


# The COPY path's SQL. The staging table lives as long as the connection;
# it is emptied before each batch (a batch may be a savepoint in an outer
# transaction, as in --dry-run, so ON COMMIT alone would not do).
STAGING = "import_ledger_staging"
_LEDGER_COLUMNS = ", ".join(connection.ops.quote_name(f.column) for f in LEDGER_FIELDS)
STAGING_SQL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} AS "  # noqa: S608 (names from the model)
    f"SELECT {_LEDGER_COLUMNS} FROM {ModelUsage._meta.db_table} WITH NO DATA"
)
# One statement: insert the staged rows that are new and, from exactly those
# (the ``inserted`` CTE), every roll-up's deltas (rollups.delta_ctes).
COPY_SQL = f"""
WITH inserted AS (
    INSERT INTO {ModelUsage._meta.db_table} ({_LEDGER_COLUMNS})
    SELECT {_LEDGER_COLUMNS} FROM {STAGING}
    ON CONFLICT (source_id, source_pk) WHERE source_id IS NOT NULL DO NOTHING
    RETURNING *
), {", ".join(rollups.delta_ctes("inserted"))}
SELECT source_pk, id FROM inserted
"""  # noqa: S608 (table and column names from the models; values are parameters)
