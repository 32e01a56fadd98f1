"""Headline figures: a value with its change against the period before."""

from dataclasses import dataclass, field
from decimal import Decimal

from django.utils import timezone


def ratio(part, whole):
    return part / whole if whole else None


@dataclass
class Figure:
    key: str
    label: str
    value: object
    previous: object
    kind: str = "number"  # number | money | ms | share | duration | decimal | rating
    change: float | None = field(init=False)

    def __post_init__(self):
        if self.value is None or self.previous in (None, 0):
            self.change = None
        else:
            self.change = float(
                (Decimal(self.value) - Decimal(self.previous)) / Decimal(self.previous)
            )


def headline(totals, period, scope, items, **extra):
    """A Figure per (key, label, kind) of ``totals(period, scope)``, against
    the same totals of the period before."""
    now, before = totals(period, scope, **extra), totals(period.previous(), scope, **extra)
    return [Figure(key, label, now[key], before[key], kind) for key, label, kind in items]


def so_far_note(period, today=None):
    """What a page says above figures whose period ends today, which is only
    so far, when they are compared with whole days before (None otherwise)."""
    if period.end != (today or timezone.localdate()):
        return None
    if period.days == 1:
        return "Today so far, compared with the whole of yesterday."
    return (
        f"The last day, today, is so far; changes compare with the {period.days} whole days before."
    )
