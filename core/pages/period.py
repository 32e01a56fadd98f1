"""The period and scope every figure of a page is computed for, and where a
scope is found from one table (``Fields``), written once for every page."""

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import models
from django.utils import timezone

# The custom ranges a filter bar accepts: nothing of ours is older, and a
# date beyond a year from now is a typo (year 1 or 9999 would overflow the
# date arithmetic of the previous period and the local day bounds).
EARLIEST = date(2000, 1, 1)


def latest(today=None):
    """The last day a custom range may reach: a year after today."""
    today = today or timezone.localdate()
    try:
        return today.replace(year=today.year + 1)
    except ValueError:  # 29 February
        return today.replace(year=today.year + 1, day=28)


@dataclass(frozen=True)
class Period:
    """Local days ``start`` to ``end``, both included."""

    start: date
    end: date

    PRESETS = {
        "today": "Today",
        "7d": "Last 7 days",
        "30d": "Last 30 days",
        "90d": "Last 90 days",
        "mtd": "Month to date",
        "custom": "Custom range",
    }

    @classmethod
    def preset(cls, name, today=None):
        today = today or timezone.localdate()
        if name == "today":
            return cls(today, today)
        if name == "mtd":
            return cls(today.replace(day=1), today)
        days = {"7d": 7, "30d": 30, "90d": 90}[name]
        return cls(today - timedelta(days=days - 1), today)

    @property
    def days(self):
        return (self.end - self.start).days + 1

    def previous(self):
        """The period of the same length just before this one."""
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def same_hours_before(self, now):
        """The period before this one, its last day cut at the local time of
        day ``now`` is: the hours of yesterday that today so far is to be
        compared with (a PartialPeriod)."""
        before = self.previous()
        zone = timezone.get_current_timezone()
        until = timezone.make_aware(
            datetime.combine(before.end, timezone.localtime(now, zone).time()), zone
        )
        return PartialPeriod(before.start, before.end, until)

    def each_day(self):
        return [self.start + timedelta(days=n) for n in range(self.days)]

    def local_bounds(self):
        """Aware datetimes [start, end) of the period in the current zone."""
        zone = timezone.get_current_timezone()
        start = timezone.make_aware(datetime.combine(self.start, time.min), zone)
        end = timezone.make_aware(datetime.combine(self.end + timedelta(days=1), time.min), zone)
        return start, end

    def q(self, field="created_at"):
        """``field`` inside the period's local days."""
        start, end = self.local_bounds()
        return models.Q(**{f"{field}__gte": start, f"{field}__lt": end})


@dataclass(frozen=True)
class PartialPeriod(Period):
    """Local days ``start`` to ``end``, the last one only until ``until`` (an
    aware datetime on it, excluded). The roll-ups hold whole days, so its
    figures are read from the raw ledger (usage.metrics.LedgerReader, whose
    rows are bounded by ``local_bounds``)."""

    until: datetime | None = None

    def local_bounds(self):
        start, _ = super().local_bounds()
        return start, self.until


@dataclass(frozen=True)
class Scope:
    """Which slice of the data: any of organisation, app user, model,
    provider and source (None = all)."""

    organization_id: int | None = None
    user_id: int | None = None
    model_name: str | None = None
    provider: str | None = None
    source_id: int | None = None

    def lookups(self):
        """The set fields by their own names (the roll-ups' column names)."""
        return {
            name: value
            for name, value in (
                ("organization_id", self.organization_id),
                ("user_id", self.user_id),
                ("model_name", self.model_name),
                ("provider", self.provider),
                ("source_id", self.source_id),
            )
            if value not in (None, "")
        }

    def without(self, *names):
        """This scope with the named fields cleared (e.g. "model_name")."""
        return dataclasses.replace(self, **dict.fromkeys(names))

    def filters(self, fields):
        """The lookups narrowing one table (``fields``) to this scope; a field
        the table cannot answer (None in ``fields``) is not applied."""
        lookups = {}
        for name, value in (
            ("user", self.user_id),
            ("organization", self.organization_id),
            ("source", self.source_id),
            ("model", self.model_name),
            ("provider", self.provider),
        ):
            path = getattr(fields, name)
            if path and value not in (None, ""):
                lookups[path] = value
        return lookups


@dataclass(frozen=True)
class Fields:
    """Where a Scope's fields are found from one model (None: not applicable)."""

    user: str | None = None
    organization: str | None = None
    source: str | None = "source_id"
    model: str | None = None
    provider: str | None = None


def scoped(queryset, scope, fields):
    """``queryset`` narrowed by the Scope fields that apply to it."""
    return queryset.filter(**scope.filters(fields))


def in_period(period, field="created_at"):
    return period.q(field)


class PeriodQuerySet(models.QuerySet):
    """The vocabulary of a table whose rows a page counts: rows of a period,
    in a scope. ``scope_fields`` says where the scope is found; ``period_field``
    which time stamp places a row in a period."""

    scope_fields = Fields()
    period_field = "created_at"

    def in_period(self, period, field=None):
        return self.filter(period.q(field or self.period_field))

    def scoped(self, scope, fields=None):
        return scoped(self, scope, fields or self.scope_fields)
