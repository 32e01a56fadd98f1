"""What a row must satisfy before it is written, read off the model itself.

Per field (``field_cleaner``): NULL only where the field allows it (else its
default, when it has one), the choices, max_length, the integer range (the
32-bit one for IntegerField on every database, so SQLite refuses what
PostgreSQL would), decimal digits, finite floats, no NUL characters, and the
field's own validators (e-mail, URL, slug, IP address, MinValueValidator…).
Per row (``constraint_checker``): the model's CheckConstraints, evaluated in
Python with SQL's three-valued logic. Per batch (``UniqueChecker``): the
model's unique fields and UniqueConstraints (including ``Lower("email")``),
one query per key and batch, naming the row that already holds the value.
"""

import json
import operator
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower

from core.bounds import cost_problem, time_problem, tokens_problem
from ingest.upsert import DEFAULTED  # a NULL for a field whose default is computed

from .converters import utf8_problem

INT_RANGES = {
    "SmallIntegerField": (-(2**15), 2**15 - 1),
    "IntegerField": (-(2**31), 2**31 - 1),
    "BigIntegerField": (-(2**63), 2**63 - 1),
    "PositiveSmallIntegerField": (0, 2**15 - 1),
    "PositiveIntegerField": (0, 2**31 - 1),
    "PositiveBigIntegerField": (0, 2**63 - 1),
}


def _reason(error):
    if isinstance(error, ValidationError):
        return "; ".join(str(m) for m in error.messages)
    return str(error)


def field_cleaner(field):
    """``clean(value)`` → the value to store, or ``ValueError(reason)``.

    Built once per field with only the steps that field needs: the import
    calls it for every value of every row.
    """
    internal = field.get_internal_type()
    nullable = field.null
    has_default = field.has_default()
    default = field.get_default() if has_default and not callable(field.default) else DEFAULTED
    steps = []
    bound = bound_of(field)
    if bound is not None:  # first: an impossible quantity is said as such
        steps.append(_bound_step(bound))
    if isinstance(field, models.CharField | models.TextField):
        steps.append(
            _text_step(getattr(field, "max_length", None) if internal != "TextField" else None)
        )
    if field.choices:
        steps.append(_choices_step({str(value) for value, _ in field.flatchoices}))
    if internal in INT_RANGES:
        steps.append(_range_step(internal, *INT_RANGES[internal]))
    if internal == "DecimalField":
        steps.append(lambda value: _fit_decimal(value, field))
    if internal == "GenericIPAddressField":
        steps.append(_django_step(field.to_python))
    if internal == "JSONField":
        steps.append(_json_step)
    # The field's own validators (e-mail, URL, slug, IP, declared ones); the
    # max_length and NUL validators Django adds are the text step above.
    steps += [_django_step(v) for v in [*field.default_validators, *field._validators]]

    def clean(value):
        if value is None:
            if nullable:
                return None
            if has_default:
                return default
            raise ValueError("NULL where a value is required")
        for step in steps:
            value = step(value)
        return value

    return clean


def _text_step(max_length):
    def step(value):
        if "\x00" in value:
            raise ValueError("contains a NUL character")
        if problem := utf8_problem(value):
            raise ValueError(problem)
        if max_length is not None and len(value) > max_length:
            raise ValueError(f"longer than {max_length} characters ({len(value)})")
        return value

    return step


def _choices_step(choices):
    def step(value):
        if str(value) not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(sorted(choices))}")
        return value

    return step


def _range_step(internal, low, high):
    def step(value):
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range for {internal} [{low}, {high}]")
        return value

    return step


def _django_step(function):
    """A Django validator or to_python: ValidationError becomes our ValueError."""

    def step(value):
        try:
            result = function(value)
        except ValidationError as error:
            raise ValueError(_reason(error)) from None
        return value if result is None else result

    return step


def _json_step(value):
    if isinstance(value, str | list | dict):
        try:
            encoded = json.dumps(value, allow_nan=False)
        except RecursionError:
            raise ValueError("JSON nested too deep to store") from None
        except ValueError:
            raise ValueError("JSON with NaN or Infinity, which JSON cannot hold") from None
        if "\\u0000" in encoded:
            raise ValueError("contains a NUL character")
    return value


def bound_of(field):
    """The ``core.bounds`` check a field's values must pass, or None.

    Token counts of one call (``*_tokens``), costs (``cost``, ``*_cost``) and
    times (every date-time but an expiry, which may lie far ahead)."""
    name, internal = field.name, field.get_internal_type()
    if internal.endswith("IntegerField") and name.endswith("_tokens"):
        return tokens_problem
    if internal == "DecimalField" and (name == "cost" or name.endswith("_cost")):
        return cost_problem
    if internal == "DateTimeField" and not name.startswith("expires"):
        return time_problem
    return None


def _bound_step(problem_of):
    def step(value):
        if problem := problem_of(value):
            raise ValueError(f"impossible {problem}")
        return value

    return step


def _fit_decimal(value, field):
    quantum = Decimal(1).scaleb(-field.decimal_places)
    value = Decimal(value).quantize(quantum)
    if value.adjusted() >= field.max_digits - field.decimal_places:
        raise ValueError(f"{value} has too many digits for this field")
    return value


# --- CheckConstraints, in Python -------------------------------------------------

LOOKUPS = {
    "exact": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "in": lambda value, options: value in options,
}


class Unsupported(Exception):
    pass


def _compile(q, model):
    """A Q tree → f(values) returning True, False or None (SQL's unknown)."""
    parts = []
    for child in q.children:
        if isinstance(child, models.Q):
            parts.append(_compile(child, model))
            continue
        path, expected = child
        name, _, lookup = path.partition("__")
        if lookup not in LOOKUPS and lookup not in ("", "isnull"):
            raise Unsupported(path)
        if isinstance(expected, models.Expression | models.F):
            raise Unsupported(path)
        field = model._meta.get_field(name)
        default = (
            field.get_default() if field.has_default() and not callable(field.default) else None
        )
        parts.append(_leaf(field.attname, lookup or "exact", expected, default))

    def combine(values):
        results = [part(values) for part in parts]
        if q.connector == models.Q.AND:
            result = False if False in results else (None if None in results else True)
        else:
            result = True if True in results else (None if None in results else False)
        return (None if result is None else not result) if q.negated else result

    return combine


def _leaf(attname, lookup, expected, default):
    def test(values):
        value = values.get(attname, default)
        if value is DEFAULTED:
            return None
        if lookup == "isnull":
            return (value is None) == bool(expected)
        if value is None:
            return None
        return LOOKUPS[lookup](value, expected)

    return test


def _names(q):
    for child in q.children:
        if isinstance(child, models.Q):
            yield from _names(child)
        else:
            yield child[0].partition("__")[0]


def constraint_violation(model):
    """``violation(values)`` → (reason, attnames) of the first violated
    CheckConstraint, or None.

    Constraints this evaluator cannot read (expressions, other lookups) are
    left to the database; the engine's row-by-row retry catches them.
    """
    tests = []
    for constraint in model._meta.constraints:
        if not isinstance(constraint, models.CheckConstraint):
            continue
        try:
            test = _compile(constraint.condition, model)
        except Unsupported:
            continue
        attnames = dict.fromkeys(
            model._meta.get_field(n).attname for n in _names(constraint.condition)
        )
        tests.append((test, constraint, tuple(attnames)))

    def violation(values):
        for test, constraint, attnames in tests:
            if test(values) is False:
                given = ", ".join(f"{a}={values.get(a)!r}" for a in attnames)
                reason = f"{given} violates {constraint.name}"
                if constraint.violation_error_message != constraint.default_violation_error_message:
                    reason += f" ({constraint.get_violation_error_message()})"
                return reason, attnames
        return None

    return violation


def constraint_checker(model):
    """``check(values)`` → the reason of the first violated CheckConstraint, or None."""
    violation = constraint_violation(model)

    def check(values):
        found = violation(values)
        return found and found[0]

    return check


# --- unique keys, per batch --------------------------------------------------------


class UniqueKey:
    def __init__(self, model, names, lower=False):
        self.model = model
        self.names = names
        self.attnames = tuple(model._meta.get_field(n).attname for n in names)
        self.lower = lower
        self.label = "/".join(names)

    def of(self, values):
        if any(a not in values for a in self.attnames):
            return None
        key = tuple(values[a] for a in self.attnames)
        if any(part is None or part is DEFAULTED for part in key):
            return None  # NULLs never collide (and the partial constraints skip them)
        return tuple(str(p).lower() for p in key) if self.lower else key

    def given(self, values):
        return tuple(values[a] for a in self.attnames)

    def owners(self, keys):
        """{key: (id, source_id, source_pk, stored value)} of existing rows."""
        queryset = self.model._default_manager.order_by()
        if self.lower:
            queryset = queryset.annotate(_key=Lower(self.names[0])).filter(
                _key__in=[k[0] for k in keys]
            )
            rows = queryset.values_list("id", "source_id", "source_pk", "_key", self.attnames[0])
            return {(key,): (pk, sid, spk, stored) for pk, sid, spk, key, stored in rows}
        for index, attname in enumerate(self.attnames):
            queryset = queryset.filter(**{f"{attname}__in": {k[index] for k in keys}})
        rows = queryset.values_list("id", "source_id", "source_pk", *self.attnames)
        return {tuple(row[3:]): (*row[:3], row[3:]) for row in rows}


def unique_keys(model):
    keys = [
        UniqueKey(model, (f.name,))
        for f in model._meta.concrete_fields
        if f.unique and not f.primary_key
    ]
    for constraint in model._meta.constraints:
        if not isinstance(constraint, models.UniqueConstraint):
            continue
        if constraint.fields and set(constraint.fields) != {"source", "source_pk"}:
            keys.append(UniqueKey(model, tuple(constraint.fields)))
        elif len(constraint.expressions) == 1 and isinstance(constraint.expressions[0], Lower):
            (inner,) = constraint.expressions[0].get_source_expressions()
            keys.append(UniqueKey(model, (inner.name,), lower=True))
    return keys


class UniqueChecker:
    """Refuses rows whose unique values another row already holds."""

    def __init__(self, model):
        self.keys = unique_keys(model)
        self.model = model

    def conflicts(self, source, records):
        """{record index: reason} for ``records`` = [(source_pk, values)]."""
        reasons = {}
        for key in self.keys:
            wanted, seen = {}, {}
            for index, (source_pk, values) in enumerate(records):
                value = key.of(values)
                if value is None or index in reasons:
                    continue
                given = key.given(values)
                if value in seen:
                    other_pk, other = seen[value]
                    relation = (
                        f"differs only in case from {_show(other)} of"
                        if other != given
                        else "is also that of"
                    )
                    reasons[index] = (
                        f"{key.label} {_show(given)} {relation} source pk {other_pk!r} (same batch)"
                    )
                    continue
                seen[value] = (source_pk, given)
                wanted[index] = value
            if not wanted:
                continue
            owners = key.owners(set(wanted.values()))
            for index, value in wanted.items():
                owner = owners.get(value)
                source_pk = records[index][0]
                if owner is None or (owner[1] == source.pk and owner[2] == source_pk):
                    continue
                reasons[index] = self._reason(key, records[index][1], owner)
        return reasons

    def _reason(self, key, values, owner):
        from core.models import Source

        pk, source_id, source_pk, stored = owner
        given = key.given(values)
        if key.lower and stored != given[0]:
            relation = f"differs only in case from {stored!r} of"
        else:
            relation = "already belongs to"
        if source_id is None:
            origin = "created here"
        else:
            name = Source.objects.filter(pk=source_id).values_list("name", flat=True).first()
            origin = f"source {name!r}, source pk {source_pk!r}"
        return (
            f"{key.label} {_show(given)} {relation} "
            f"{self.model._meta.verbose_name} #{pk} ({origin})"
        )


def _show(value):
    return repr(value[0]) if len(value) == 1 else repr(value)
