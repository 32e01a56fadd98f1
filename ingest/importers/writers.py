"""Writing one batch of converted records: plain models, and the usage ledger.

Both writers match records to existing rows by (source, source_pk) with one
query per batch, insert the new ones in bulk and update only the fields that
changed, and set ``record.state`` ("created", "updated", "unchanged") and
``record.id``.
"""

from django.db import connection

from usage import ledger
from usage.models import ModelUsage

from .checks import DEFAULTED


class ModelWriter:
    """Every imported model but the ledger: bulk_create the new rows,
    bulk_update the changed fields of the others (see ``Table.keep_local``)."""

    def __init__(self, model, source, keep_local=None):
        self.model = model
        self.source = source
        self.keep_local = keep_local or {}
        self.fields = {f.attname: f for f in model._meta.concrete_fields}

    def write(self, records):
        names = sorted({k for r in records for k in r.values if not k.startswith("_")})
        guards = sorted(set(self.keep_local.values()) - set(names))
        existing = {
            row["source_pk"]: row
            for row in self.model._default_manager.filter(
                source=self.source, source_pk__in=[r.source_pk for r in records]
            ).values("id", "source_pk", *names, *guards)
        }
        new, changed = [], {}
        for record in records:
            values = {k: v for k, v in record.values.items() if not k.startswith("_")}
            old = existing.get(record.source_pk)
            if old is None:
                for name, value in values.items():
                    if value is DEFAULTED:
                        values[name] = self.fields[name].get_default()
                new.append(
                    (record, self.model(source=self.source, source_pk=record.source_pk, **values))
                )
                record.state = "created"
                continue
            record.id = old["id"]
            diff = {
                name: value
                for name, value in values.items()
                if value is not DEFAULTED
                and old[name] != value
                and not (name in self.keep_local and old[self.keep_local[name]] is not None)
            }
            record.state = "updated" if diff else "unchanged"
            if diff:
                changed[old["id"]] = (old, diff)
        if new:
            self.model._default_manager.bulk_create([obj for _, obj in new])
            for record, obj in new:
                record.id = obj.pk
        if changed:
            fields = sorted({name for _, diff in changed.values() for name in diff})
            objs = [
                self.model(id=pk, **{f: diff.get(f, old[f]) for f in fields})
                for pk, (old, diff) in changed.items()
            ]
            self.model._default_manager.bulk_update(objs, fields)


class LedgerWriter:
    """Ledger rows go through ``usage.ledger``: priced from ModelPrice when the
    source gave no cost, attributed to an organisation, and counted in the
    daily roll-ups in the same transaction.

    On SQLite every row goes through ``ledger.upsert_usage``. On PostgreSQL a
    batch takes the COPY path, ``ledger.copy_new``: the rows that are new go
    in with COPY and their roll-ups move by sums grouped in the database;
    rows that already existed then go through ``upsert_usage`` to be
    compared and updated.
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
                values.setdefault("total_tokens", None)  # not reported: derived
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
        return ledger.copy_new(self.source, wanted, self.price_book)


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
