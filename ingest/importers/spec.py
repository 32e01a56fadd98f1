"""The vocabulary of the mapping modules: which source column lands where.

A mapping module (``auto_analyst.py`` …) is a list of ``Table``s, parents
first. Each reads like its entry in ``entity_map.json``: source column →
``Col`` (a field of the table's model, with a converter) or ``Fk`` (a
parent found by the primary key it had in the same source).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import converters


class Refused(Exception):
    """A row the unified schema cannot take; the message is the reason."""


@dataclass(frozen=True)
class Col:
    """A column that lands in ``field`` after ``convert``.

    ``usage.<name>`` targets the ledger row a table may carry (see
    ``Table.ledger``); a name starting with ``_`` is staging data for a
    table's ``split`` or ``ledger`` function, never stored as it is.
    """

    field: str
    convert: Callable[[Any], Any] = converters.text


@dataclass(frozen=True)
class Fk:
    """A column holding a parent's key: resolved to the parent row's id.

    ``by="source_pk"``: the parent imported from this source with that
    primary key. Any other ``by`` names a globally unique field of the parent
    (an organisation's slug). ``create`` builds a parent the source implies
    but has no table for (ds-ml-agent's org_id and user_id strings); it gets
    the key and the row's values so far and returns an unsaved instance, or
    raises ``ValueError``. ``carry`` copies parent fields into the row's
    values as ``_<field>.<name>`` (e.g. a chat's user for its ledger row).
    """

    field: str
    model: type
    by: str = "source_pk"
    create: Callable[[str, dict], Any] | None = None
    carry: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """One source table and the model its rows land in.

    - ``pk``: the source primary key column; kept as ``source_pk`` (text).
    - ``updated_at``: a column the application bumps on change, if any; with
      it a later run reads only rows changed since (see ``engine.py``).
    - ``optional``: columns older versions of the application lack (for the
      record: every column but the required ones may be absent, see
      ``engine.check_schema``).
    - ``defining``: source columns that are what the row is about (a
      message's role and text, a feedback's rating, a call's tokens and
      cost). An invalid value there refuses the row; an invalid value in
      any other column is dropped (stored as if the source had NULL) and
      reported, and the row lands. The key and the parents always define.
    - ``validators``: row checks beyond the model's own, ``f(values)`` →
      a reason, or None when the row is fine.
    - ``split``: one source row → several records, ``f(source_pk, values)``
      yielding ``(source_pk, values)`` pairs (a ds-ml-agent turn).
    - ``ledger``: the row also carries an LLM call: ``f(values, usage)``
      completes the ``usage.*`` values into a ``ModelUsage`` row's fields,
      or returns None when there was no call. ``ledger_link`` is the field
      of the table's model that points at that ledger row, if any.
    - ``keep_local``: field → guard field. When the existing row's guard is
      set, that field was last set here (a reviewer's mistake flag) and a
      re-import leaves it alone.
    """

    name: str
    model: type
    pk: str
    columns: dict[str, Col | Fk]
    updated_at: str | None = None
    optional: frozenset[str] = field(default_factory=frozenset)
    defining: frozenset[str] = field(default_factory=frozenset)
    validators: tuple[Callable[[dict], str | None], ...] = ()
    split: Callable[[str, dict], Any] | None = None
    ledger: Callable[[dict, dict], dict | None] | None = None
    ledger_link: str | None = None
    keep_local: dict[str, str] = field(default_factory=dict)

    @property
    def foreign_keys(self):
        return {column: spec for column, spec in self.columns.items() if isinstance(spec, Fk)}


@dataclass(frozen=True)
class Mapping:
    """Everything the engine needs to import one kind of application."""

    kind: str
    tables: tuple[Table, ...]
    # The tables that make a database of this kind: without one of them it
    # is refused before anything is written. Every other documented table is
    # optional (an older release may lack it).
    identifying: tuple[str, ...] = ()
    # Tables of the application's database that are not imported, and why.
    ignored: dict[str, str] = field(default_factory=dict)

    def table_of(self, model):
        """The table whose rows land in ``model`` (for "parent refused" reasons)."""
        return next((t.name for t in self.tables if t.model is model), None)
