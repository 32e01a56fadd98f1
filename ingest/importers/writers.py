"""Writing one batch of converted records: plain models, and the usage ledger.

Both writers match records to existing rows by (source, source_pk) with one
query per batch, insert the new ones in bulk and update only the fields that
changed, and set ``record.state`` ("created", "updated", "unchanged") and
``record.id``.
"""

from django.db import connection

from ingest.upsert import upsert_by_source
from usage import ledger
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


class LedgerWriter:
    """Ledger rows go through ``usage.ledger``: priced from ModelPrice when the
    source gave no cost, attributed to an organisation, and counted in the
    daily roll-ups in the same transaction.

    On SQLite every row goes through ``ledger.upsert_usage``. On PostgreSQL a
    batch takes the COPY path, ``ledger.copy_upsert``: the same result, with
    the rows that are new going in with COPY and, in a first import, their
    roll-ups moving by sums grouped in the database.
    """

    def __init__(self, source, price_book, use_copy=None):
        self.source = source
        self.price_book = price_book
        self.use_copy = connection.vendor == "postgresql" if use_copy is None else use_copy
        # Try each COPY batch as all new until one turns out to hold known rows.
        self.all_new = True

    def write(self, records, attribute="usage"):
        """Write ``getattr(record, attribute)`` (ledger field values) of each record.

        Sets ``record.usage_state`` and ``record.usage_id``.
        """
        wanted = {}
        for record in records:
            values = getattr(record, attribute)
            if values is not None:
                values = dict(values)  # ledger fields only (no staging keys)
                values.setdefault("total_tokens", None)  # not reported: derived
                values["cost_source"] = (
                    ModelUsage.CostSource.REPORTED
                    if values.get("cost") is not None
                    else ModelUsage.CostSource.COMPUTED
                )
                wanted[record.source_pk] = (record, values)
        if not wanted:
            return
        if self.use_copy:
            result = self.copy_upsert({pk: values for pk, (_, values) in wanted.items()})
        else:
            rows = [
                ModelUsage(source=self.source, source_pk=pk, **values)
                for pk, (_, values) in wanted.items()
            ]
            result = ledger.upsert_usage(self.source, rows, price_book=self.price_book)
        states = {}
        for state in ("created", "updated", "unchanged"):
            states.update((u.source_pk, (state, u.pk)) for u in result[state])
        for source_pk, (record, _) in wanted.items():
            record.usage_state, record.usage_id = states[source_pk]

    def copy_upsert(self, wanted):
        """The COPY path's upsert of a batch (``ledger.copy_upsert``)."""
        result = ledger.copy_upsert(self.source, wanted, self.price_book, optimistic=self.all_new)
        self.all_new = len(result["created"]) == len(wanted)
        return result


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
