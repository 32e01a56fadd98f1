"""Create or update rows of one source by their source primary key.

The one upsert-by-source of everything that brings data in: the importers'
batches (``ingest/importers/writers.py``) and the ingest API
(``ingest/api/writers.py``). The usage ledger has its own path
(``usage.ledger``), since its roll-ups move with it.

One query finds the rows the source already sent (by ``(source,
source_pk)``); the new ones are inserted with ``bulk_create``, the others
compared field by field and only the fields that changed updated, with one
``bulk_update``.
"""

from chats import rollups


class Defaulted:
    """A value for a NOT NULL field whose default is computed (``timezone.now``).

    Set on create only: an existing row keeps what it has, so a re-import
    does not see a change every time the clock moves.
    """

    def __repr__(self):
        return "<default>"


DEFAULTED = Defaulted()


def upsert_by_source(model, source, rows, keep_local=None, batch_size=None):
    """Create or update ``rows`` (see ``_upsert``); the code execution
    roll-ups the writes touch are recomputed once, at the end
    (chats.rollups.deferred)."""
    with rollups.deferred(model._default_manager.db):
        return _upsert(model, source, rows, keep_local, batch_size)


def _upsert(model, source, rows, keep_local=None, batch_size=None):
    """Create or update ``rows`` = {source_pk: {field or attname: value}}.

    ``keep_local``: field → guard field; when an existing row's guard is
    set, that field was last set here (a reviewer's flag) and is left alone.
    Returns {source_pk: (state, pk)}, state "created", "updated" or
    "unchanged".
    """
    keep_local = keep_local or {}
    fields = {f.attname: f for f in model._meta.concrete_fields}
    fields |= {f.name: f for f in model._meta.concrete_fields}
    names = sorted({name for values in rows.values() for name in values})
    guards = sorted(set(keep_local.values()) - set(names))
    existing = {
        row["source_pk"]: row
        for row in model._default_manager.filter(source=source, source_pk__in=list(rows)).values(
            "id", "source_pk", *names, *guards
        )
    }
    result, new, changed = {}, [], {}
    for source_pk, values in rows.items():
        old = existing.get(source_pk)
        if old is None:
            values = {
                name: fields[name].get_default() if value is DEFAULTED else value
                for name, value in values.items()
            }
            new.append((source_pk, model(source=source, source_pk=source_pk, **values)))
            continue
        diff = {
            name: value
            for name, value in values.items()
            if value is not DEFAULTED
            and old[name] != value
            and not (name in keep_local and old[keep_local[name]] is not None)
        }
        result[source_pk] = ("updated" if diff else "unchanged", old["id"])
        if diff:
            changed[old["id"]] = (old, diff)
    if new:
        model._default_manager.bulk_create([obj for _, obj in new], batch_size=batch_size)
        result.update((source_pk, ("created", obj.pk)) for source_pk, obj in new)
    if changed:
        names = sorted({name for _, diff in changed.values() for name in diff})
        objs = [
            model(id=pk, **{name: diff.get(name, old[name]) for name in names})
            for pk, (old, diff) in changed.items()
        ]
        model._default_manager.bulk_update(objs, names, batch_size=batch_size)
    return result
