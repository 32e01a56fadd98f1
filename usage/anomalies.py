"""Days of unusual spend or requests, each against its own run rate.

For one local day (TIME_ZONE) and each model, provider, organisation and app
user, the day's cost and requests are compared with a robust baseline of the
trailing days before it (28 by default):

- the baseline is the larger of the median of those days and the median of
  the same weekday in them (so a busy Monday is measured against Mondays,
  and a series busy at weekends does not alarm every Saturday);
- the spread is the median absolute deviation (MAD, scaled by 1.4826 to
  read as a standard deviation), floored at a share of the baseline, so a
  flat series does not alarm on a small wobble;
- a day is an anomaly when it is above ``baseline + k × spread`` and at
  least the minimum volume (a cost or a number of requests), so quiet
  series and a new model's first small day never alarm.

A series' history starts on its first day with requests inside the window:
the days before a model existed are not zeros of its run rate. A series
with no history at all (its first day) has baseline 0 and alarms only above
the minimum volume.

Figures come from the roll-ups through ``usage.metrics.reader`` (or, for
app users, UserUsage's day rows), never from the raw ledger.
"""

import statistics
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from core.admin_tools import admin_changelist_url
from core.models import AppUser, Organization

from . import metrics
from .metrics import Period, Scope
from .models import ModelUsage, UserUsage

MAD_SCALE = 1.4826

# dimension: the roll-up columns that name one series
DIMENSIONS = {
    "model": ("model_name", "provider"),
    "provider": ("provider",),
    "organization": ("organization_id",),
    "user": ("user_id",),
}
MEASURES = ("cost", "requests")


@dataclass(frozen=True)
class Rule:
    """How far above its run rate a day must be to be reported."""

    window_days: int = 28
    k: float = 5.0
    # the spread is at least this share of the baseline
    floor: float = 0.2
    min_cost: Decimal = Decimal("1.00")
    min_requests: int = 50

    def minimum(self, measure):
        return float(self.min_cost) if measure == "cost" else self.min_requests


DEFAULT_RULE = Rule()


@dataclass
class Anomaly:
    day: object
    dimension: str
    key: tuple
    measure: str
    value: object  # Decimal for cost, int for requests
    baseline: float
    median: float
    weekday_median: float | None
    spread: float
    threshold: float
    history_days: int
    label: str = ""
    links: dict = field(default_factory=dict)

    @property
    def size(self):
        """How many times the baseline the day is (None without a baseline)."""
        return float(self.value) / self.baseline if self.baseline else None

    @property
    def is_new(self):
        return self.history_days == 0

    @property
    def notification_key(self):
        return f"{self.dimension}:{'/'.join(str(part) for part in self.key)}"


def robust_baseline(history, day, rule=DEFAULT_RULE):
    """(baseline, median, weekday median or None, spread) of ``history``
    ({day: value}, every day of the series' history) for ``day``."""
    values = [float(v) for v in history.values()]
    if not values:
        return 0.0, 0.0, None, 0.0
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    same_weekday = [float(v) for d, v in history.items() if d.weekday() == day.weekday()]
    weekday_median = statistics.median(same_weekday) if len(same_weekday) >= 2 else None
    baseline = max(median, weekday_median or 0.0)
    spread = max(MAD_SCALE * mad, rule.floor * baseline)
    return baseline, median, weekday_median, spread


def _series(dimension, period):
    """{key: {day: {"cost": …, "requests": …}}} of one dimension over the
    period, from the roll-ups (the current reader)."""
    columns = DIMENSIONS[dimension]
    reader = metrics.reader
    if dimension == "user" and isinstance(reader, metrics.RollupReader):
        rows = UserUsage.objects.filter(
            span=UserUsage.Span.DAY, day__gte=period.start, day__lte=period.end
        ).order_by()
        total = Sum
    else:
        rows = reader.usage(period, Scope(), *columns)
        total = reader.total
    rows = (
        rows.filter(**{f"{column}__isnull": False for column in columns if column.endswith("_id")})
        .values("day", *columns)
        .annotate(cost=total("cost"), requests=total("requests"))
        .values_list("day", *columns, "cost", "requests")
    )
    series = {}
    for day, *key, cost, requests in rows:
        series.setdefault(tuple(key), {})[day] = {"cost": cost or Decimal(0), "requests": requests}
    return series


def find(day=None, rule=DEFAULT_RULE, dimensions=tuple(DIMENSIONS)):
    """The anomalies of one local day (today by default), largest first."""
    day = day or timezone.localdate()
    window = Period(day - timedelta(days=rule.window_days), day)
    found = []
    for dimension in dimensions:
        for key, days in _series(dimension, window).items():
            today = days.get(day)
            if not today:
                continue
            active = sorted(d for d, v in days.items() if d < day and v["requests"])
            first = active[0] if active else day
            for measure in MEASURES:
                value = today[measure]
                if float(value) < rule.minimum(measure):
                    continue
                zero = Decimal(0) if measure == "cost" else 0
                history = {
                    first + timedelta(days=n): days.get(first + timedelta(days=n), {}).get(
                        measure, zero
                    )
                    for n in range((day - first).days)
                }
                baseline, median, weekday, spread = robust_baseline(history, day, rule)
                threshold = baseline + rule.k * spread
                if float(value) > threshold:
                    found.append(
                        Anomaly(
                            day,
                            dimension,
                            key,
                            measure,
                            value,
                            baseline,
                            median,
                            weekday,
                            spread,
                            threshold,
                            len(history),
                        )
                    )
    _label(found)
    for anomaly in found:
        anomaly.links = links(anomaly)
    found.sort(key=lambda a: (-(a.size or float("inf")), a.dimension, a.key, a.measure))
    return found


def _label(anomalies):
    orgs = dict(
        Organization.objects.filter(
            pk__in={a.key[0] for a in anomalies if a.dimension == "organization"}
        ).values_list("pk", "name")
    )
    users = {
        u.pk: str(u)
        for u in AppUser.objects.filter(
            pk__in={a.key[0] for a in anomalies if a.dimension == "user"}
        )
    }
    for anomaly in anomalies:
        if anomaly.dimension == "model":
            anomaly.label = f"model {anomaly.key[0]} ({anomaly.key[1]})"
        elif anomaly.dimension == "provider":
            anomaly.label = f"provider {anomaly.key[0]}"
        elif anomaly.dimension == "organization":
            name = orgs.get(anomaly.key[0], f"#{anomaly.key[0]} (deleted)")
            anomaly.label = f"organisation {name}"
        else:
            anomaly.label = f"app user {users.get(anomaly.key[0], f'#{anomaly.key[0]} (deleted)')}"


def ledger_filters(dimension, key):
    """The ledger changelist's query parameters naming one series."""
    if dimension == "model":
        return {"model_name": key[0], "provider": key[1]}
    if dimension == "provider":
        return {"provider": key[0]}
    if dimension == "organization":
        return {"organization__id__exact": key[0]}
    return {"user__id__exact": key[0]}


def ledger_url(period, **filters):
    """The usage ledger's admin changelist: the rows of the local days of
    ``period`` matching ``filters``."""
    start, end = period.local_bounds()
    return admin_changelist_url(
        ModelUsage, timestamp__gte=start.isoformat(), timestamp__lt=end.isoformat(), **filters
    )


def dashboard_url(period, dimension, key):
    """The dashboard page of the series over ``period``."""
    query = {"period": "custom", "start": period.start.isoformat(), "end": period.end.isoformat()}
    if dimension == "organization":
        return f"{reverse('dashboards:organization', args=[key[0]])}?{urlencode(query)}"
    if dimension == "user":
        return f"{reverse('dashboards:user', args=[key[0]])}?{urlencode(query)}"
    query.update({"model": key[0], "provider": key[1]} if dimension == "model" else {})
    query.update({"provider": key[0]} if dimension == "provider" else {})
    return f"{reverse('dashboards:overview')}?{urlencode(query)}"


def links(anomaly):
    day = Period(anomaly.day, anomaly.day)
    return {
        "rows": ledger_url(day, **ledger_filters(anomaly.dimension, anomaly.key)),
        "dashboard": dashboard_url(day, anomaly.dimension, anomaly.key),
    }
