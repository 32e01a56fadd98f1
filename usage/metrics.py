"""Every figure the usage and cost pages show, in one place.

Views call these functions and render; they never aggregate themselves.
Figures come from the roll-ups (``usage.rollups``), never from the raw
ledger, so a page costs as much as the days and models it
shows, not as much as the ledger holds. Days are local days in
settings.TIME_ZONE, the zone the roll-ups are cut in.
"""

import calendar
import math
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import models
from django.db.models import (
    Case,
    Count,
    DecimalField,
    F,
    Func,
    Min,
    Q,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from chats import feedback_rollups
from chats import rollups as chat_rollups
from chats.models import Chat, MessageFeedback
from core.models import AppUser, Organization
from core.pages.figures import Figure, so_far_note
from core.pages.memo import memoized as page_memoized
from core.pages.period import PartialPeriod, Period, Scope

from .models import (
    LATENCY_BUCKETS_MS,
    Budget,
    DailyTotal,
    DailyUsage,
    ModelPrice,
    ModelUsage,
    UserUsage,
)
from .rollups import LEDGER_AGGREGATES, ROLLUPS, SUMMED, bucket_expression

THOUSAND = Decimal(1000)


# -- where figures come from ---------------------------------------------------


@dataclass(frozen=True)
class SpanPlan:
    """How UserUsage's day and month rows add up to a period: the months
    read whole, and the days added or (from those months) taken away."""

    added_days: tuple = ()  # ((first, last), …) ranges of day rows
    months: tuple = ()  # first days of the month rows
    removed_days: tuple = ()  # day rows inside ``months`` outside the period

    @staticmethod
    def _days(ranges):
        condition = Q()
        for first, last in ranges:
            condition |= Q(span=UserUsage.Span.DAY, day__gte=first, day__lte=last)
        return condition

    def rows(self):
        """The UserUsage rows to read."""
        condition = self._days(self.added_days + self.removed_days)
        if self.months:
            condition |= Q(span=UserUsage.Span.MONTH, day__in=self.months)
        return condition

    def signed(self, name):
        """A column's sum over ``rows()``: the removed days count negative."""
        if not self.removed_days:
            return Sum(name)
        field = UserUsage._meta.get_field(name)
        removed = self._days(self.removed_days)
        return Sum(Case(When(removed, then=-F(name)), default=F(name), output_field=field))


def span_plan(period, today=None):
    """The cheapest SpanPlan for a period: each month it touches is read as
    its days inside the period, or as its month row less its days outside
    the period, whichever reads fewer rows (days after today hold none)."""
    today = today or timezone.localdate()
    added, months, removed = [], [], []
    first = period.start.replace(day=1)
    while first <= period.end:
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        inside = (max(period.start, first), min(period.end, last))
        outside = [
            (a, b)
            for a, b in (
                (first, inside[0] - timedelta(days=1)),
                (inside[1] + timedelta(days=1), last),
            )
            if a <= b
        ]
        past = sum(max(0, (min(b, today) - a).days + 1) for a, b in outside)
        if 1 + past < (inside[1] - inside[0]).days + 1:
            months.append(first)
            removed.extend(outside)
        else:
            added.append(inside)
        first = last + timedelta(days=1)
    return SpanPlan(tuple(added), tuple(months), tuple(removed))


# The roll-ups with a model grain (and a latency histogram), fewest columns
# first: DailyTotal, DailyModelUsage, DailyUsage.
MODEL_GRAINS = sorted((r for r in ROLLUPS if r.latency), key=lambda r: len(r.grain))


class RollupReader:
    """Reads the roll-ups (the default): the smallest one that has every
    column the scope filters on and the figure groups by (``dims``)."""

    def usage(self, period, scope, *dims):
        return self._rows(self._grain(scope, dims).usage, period, scope)

    def latency(self, period, scope, *dims):
        return self._rows(self._grain(scope, dims).latency, period, scope)

    @staticmethod
    def _grain(scope, dims):
        needed = {*scope.lookups(), *dims}
        return next(r for r in MODEL_GRAINS if needed <= set(r.grain))

    def user_sums(self, period, scope, **columns):
        """Per app user (anonymous usage left out): ``{user_id, <name>: sum of
        <column>}`` rows for ``name=column`` pairs.

        From UserUsage's months and days when the scope names at most an
        organisation (or one app user); from DailyUsage's model grain when it
        names a model, provider or source.
        """
        return self.user_rows(period, scope, anonymous=False, **columns)

    def user_rows(self, period, scope, anonymous=True, **columns):
        """``user_sums`` with the anonymous usage as a row of its own
        (``user_id`` None) unless ``anonymous`` is False."""
        lookups = scope.lookups()
        if set(lookups) - {"organization_id", "user_id"}:
            rows = self._rows(DailyUsage, period, scope)
            sums = {name: Sum(column) for name, column in columns.items()}
        else:
            plan = span_plan(period)
            rows = UserUsage.objects.filter(plan.rows(), **lookups).order_by()
            sums = {name: plan.signed(column) for name, column in columns.items()}
        if not anonymous:
            rows = rows.filter(user_id__isnull=False)
        return rows.values("user_id").annotate(**sums)

    @staticmethod
    def _rows(model, period, scope):
        return model.objects.filter(
            day__gte=period.start, day__lte=period.end, **scope.lookups()
        ).order_by()

    @staticmethod
    def total(name):
        """A roll-up column summed over the rows grouped."""
        return Sum(name)


class LedgerReader:
    """Reads the raw ledger, shaped like the roll-ups (same column names), so
    every figure can be computed from it for comparison: tests and
    bench/pages_bench.py. Never used by the pages."""

    def _ledger(self, period, scope):
        start, end = period.local_bounds()
        return (
            ModelUsage.objects.filter(timestamp__gte=start, timestamp__lt=end, **scope.lookups())
            .order_by()
            .annotate(day=TruncDate("timestamp", tzinfo=timezone.get_current_timezone()))
        )

    def usage(self, period, scope, *dims):
        return self._ledger(period, scope)

    def user_sums(self, period, scope, **columns):
        return self.user_rows(period, scope, anonymous=False, **columns)

    def user_rows(self, period, scope, anonymous=True, **columns):
        rows = self._ledger(period, scope)
        if not anonymous:
            rows = rows.filter(user_id__isnull=False)
        return rows.values("user_id").annotate(
            **{name: self.total(column) for name, column in columns.items()}
        )

    def latency(self, period, scope, *dims):
        return (
            self._ledger(period, scope)
            .filter(request_time_ms__isnull=False)
            .annotate(bucket=bucket_expression())
        )

    @staticmethod
    def total(name):
        """A roll-up column's sum, computed from the ledger rows grouped.

        Sums of only NULLs count as 0, as in the roll-up's NOT NULL columns
        (unpriced calls are counted in ``unpriced_requests``)."""
        aggregate = LEDGER_AGGREGATES[name]
        if not isinstance(aggregate, Sum):
            return aggregate
        zero = Value(Decimal(0), output_field=DecimalField()) if name == "cost" else Value(0)
        return Coalesce(aggregate, zero)


# The reader figures are computed from: the roll-ups, or within
# ``reading_from`` another (LedgerReader). A ContextVar, so that one thread's
# or task's comparison never changes what another request reads.
ROLLUP_READER = RollupReader()
_reader = ContextVar("usage_metrics_reader", default=None)


def current_reader():
    """The reader in force (the roll-ups' unless within ``reading_from``)."""
    return _reader.get() or ROLLUP_READER


def __getattr__(name):
    # ``metrics.reader``: the reader in force, as before it was a ContextVar.
    if name == "reader":
        return current_reader()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def memoized(function):
    """Memoized within a page's request (core.pages.memo), per reader."""
    return page_memoized(function, key=lambda: (current_reader(),))


@contextmanager
def reading_from(source):
    """Compute figures from another reader within the block (LedgerReader)."""
    token = _reader.set(source)
    try:
        yield
    finally:
        _reader.reset(token)


# -- what the roll-ups know -------------------------------------------------------


@page_memoized
def rollup_distinct(field):
    """The distinct values of a key column of the smallest roll-up (days ×
    models), ordered: the filter bar's model and provider choices, and the
    models' one order the palette ranks them in (``model_names``). Once per
    request."""
    return list(DailyTotal.objects.order_by(field).values_list(field, flat=True).distinct())


def model_names():
    """Every model name the ledger holds, alphabetical (the palette's order:
    core.pages.palette)."""
    return rollup_distinct("model_name")


# -- latency percentiles from the histogram ---------------------------------


def percentile_from_histogram(counts, q):
    """The q-th percentile (0–1) of request times from bucket counts.

    Linear interpolation inside the bucket that holds the nearest-rank
    value; the open last bucket answers its lower bound. Exact to within
    one bucket of the raw ledger's value (tested).
    """
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(counts):
        in_bucket = counts[bucket]
        if in_bucket <= 0:
            continue
        if seen + in_bucket >= rank:
            lower = LATENCY_BUCKETS_MS[bucket - 1] if bucket > 0 else 0
            if bucket >= len(LATENCY_BUCKETS_MS):
                return float(lower)
            upper = LATENCY_BUCKETS_MS[bucket]
            # The middle of the nearest-rank value's slice of the bucket: never
            # ``upper``, which belongs to the next bucket.
            return lower + (upper - lower) * (math.ceil(rank) - seen - 0.5) / in_bucket
        seen += in_bucket
    return float(LATENCY_BUCKETS_MS[-1])


def _histograms(period, scope, *group_by):
    """{group key: {bucket: requests}} from DailyLatency."""
    reader = current_reader()
    result = {}
    rows = (
        current_reader()
        .latency(period, scope)
        .values(*group_by, "bucket")
        .annotate(n=reader.total("requests"))
        .values_list(*group_by, "bucket", "n")
    )
    for *key, bucket, n in rows:
        result.setdefault(tuple(key), {})[bucket] = n
    return result


# -- totals --------------------------------------------------------------------


def sums():
    """Every summed column as ``<name>_total``, aggregated as the current
    reader reads it (suffixed: the ledger's counts filter on columns such as
    ``cost`` that the sums would otherwise shadow)."""
    reader = current_reader()
    return {f"{name}_total": reader.total(name) for name in SUMMED}


def unsuffixed(row):
    """A row of ``sums()`` with the plain column names."""
    return {name.removesuffix("_total"): value for name, value in row.items()}


# Sums of token counts that not every source reports, and the number of
# requests that reported them.
PART_SUMS = {
    "cached_input_tokens": "cached_reported_requests",
    "reasoning_tokens": "reasoning_reported_requests",
}


def _derive(row):
    """Ratios of summed roll-up columns; missing sums become 0."""
    for name in SUMMED:
        row[name] = row.get(name) or (Decimal(0) if name == "cost" else 0)
    tokens = row["total_tokens"]
    # Unknown, not $0, when no request was priced.
    priced = row["unpriced_requests"] < row["requests"]
    row["cost_per_1k_tokens"] = row["cost"] * THOUSAND / tokens if tokens and priced else None
    row["avg_latency_ms"] = (
        row["request_time_ms_sum"] / row["timed_requests"] if row["timed_requests"] else None
    )
    row["streaming_share"] = (
        row["streaming_requests"] / row["requests"] if row["requests"] else None
    )
    # Summed where reported; unknown, not 0, when no request reported them.
    for name, reported in PART_SUMS.items():
        if not row[reported]:
            row[name] = None
    return row


@memoized
def period_sums(period, scope):
    """Every summed column over the period and scope (one query): the
    totals the overview's tables reconcile to."""
    return _derive(unsuffixed(current_reader().usage(period, scope).aggregate(**sums())))


def totals(period, scope, rank_users=False):
    """The overview's headline figures for one period. ``rank_users``: count
    the active app users with the query that ranks the top ones (which the
    page shows too), instead of a count alone."""
    row = dict(period_sums(period, scope))
    row["active_users"] = (
        app_users(period, scope, TOP_USERS)[0] if rank_users else active_users(period, scope)
    )
    row["p95_latency_ms"] = percentile_from_histogram(_histograms(period, scope).get((), {}), 0.95)
    return row


HEADLINE = [
    ("cost", "Total cost", "money"),
    ("prompt_tokens", "Input tokens", "number"),
    ("completion_tokens", "Output tokens", "number"),
    ("requests", "Requests", "number"),
    ("active_users", "Active app users", "number"),
    ("cost_per_1k_tokens", "Cost per 1,000 tokens", "money"),
    ("avg_latency_ms", "Average latency", "ms"),
    ("p95_latency_ms", "p95 latency", "ms"),
    ("streaming_share", "Streaming share", "share"),
]


# Reads yesterday's same hours: the roll-ups hold whole days only.
LEDGER_READER = LedgerReader()


def compared_with(period, now=None):
    """(the period a headline compares with, a note saying so or None).

    Today alone is so far: it is compared with yesterday up to the same
    local time (a PartialPeriod), not with the whole of yesterday, which
    would read as a fall of nearly 100 % each morning. A longer period that
    ends today is compared with the same number of whole days before, and
    the note says its last day is so far."""
    if period.days == 1 and period.end == timezone.localdate():
        before = period.same_hours_before(now or timezone.now())
        until = timezone.localtime(before.until)
        return before, f"Today so far, compared with yesterday until {until:%H:%M}."
    return period.previous(), so_far_note(period)


def headline(period, scope, now=None):
    """Headline figures with their change against the period before
    (``compared_with``: today so far against the same hours of yesterday,
    read from the raw ledger through its timestamp index, one day of rows:
    the roll-ups are per day)."""
    before_period, _ = compared_with(period, now)
    current = totals(period, scope, rank_users=True)
    if isinstance(before_period, PartialPeriod):
        with reading_from(LEDGER_READER):
            before = totals(before_period, scope)
    else:
        before = totals(before_period, scope)
    return [Figure(key, label, current[key], before[key], kind) for key, label, kind in HEADLINE]


# -- usage without a price ------------------------------------------------------


@memoized
def unpriced(period, scope):
    """The period's calls without a cost (no price in force, none
    reported), per model: [{model_name, provider, requests, tokens,
    first_seen}], the most calls first; ``first_seen`` is the first local
    day of the period with such a call. From the roll-ups (their
    ``unpriced_requests`` and ``unpriced_tokens``)."""
    reader = current_reader()
    return list(
        reader.usage(period, scope, "model_name", "provider")
        .values("model_name", "provider")
        .annotate(
            requests=reader.total("unpriced_requests"),
            tokens=reader.total("unpriced_tokens"),
            first_seen=Min("day", filter=_unpriced_rows(reader)),
        )
        .filter(requests__gt=0)
        .order_by("-requests", "model_name", "provider")
    )


def _unpriced_rows(reader):
    """The rows of a reader's ``usage`` that hold unpriced calls."""
    if isinstance(reader, LedgerReader):
        return Q(cost__isnull=True)
    return Q(unpriced_requests__gt=0)


def unpriced_summary(period, scope):
    """{requests, tokens, models} of the period's unpriced calls."""
    rows = unpriced(period, scope)
    return {
        "requests": sum(row["requests"] for row in rows),
        "tokens": sum(row["tokens"] for row in rows),
        "models": len(rows),
    }


# -- series for the charts -----------------------------------------------------


def cost_per_day_by_model(period, scope):
    """[(day, model_name, cost)] ordered by day."""
    reader = current_reader()
    return list(
        current_reader()
        .usage(period, scope)
        .values("day", "model_name")
        .annotate(cost=reader.total("cost"), requests=reader.total("requests"))
        .filter(requests__gt=0)
        .order_by("day", "model_name")
        .values_list("day", "model_name", "cost")
    )


def tokens_per_day(period, scope):
    """[(day, input tokens, output tokens)] for every day of the period."""
    reader = current_reader()
    found = {
        day: (prompt, completion)
        for day, prompt, completion in current_reader()
        .usage(period, scope)
        .values("day")
        .annotate(p=reader.total("prompt_tokens"), c=reader.total("completion_tokens"))
        .values_list("day", "p", "c")
    }
    return [(day, *found.get(day, (0, 0))) for day in period.each_day()]


@memoized
def provider_rows(period, scope):
    """[{provider, cost, requests, unpriced_requests}] most expensive first:
    the cost, and the calls without a price it leaves out."""
    reader = current_reader()
    return list(
        current_reader()
        .usage(period, scope)
        .values("provider")
        .annotate(
            cost_sum=reader.total("cost"),
            requests_sum=reader.total("requests"),
            unpriced_sum=reader.total("unpriced_requests"),
        )
        .filter(requests_sum__gt=0)
        .order_by("-cost_sum", "provider")
        .values(
            "provider",
            cost=F("cost_sum"),
            requests=F("requests_sum"),
            unpriced_requests=F("unpriced_sum"),
        )
    )


def cost_by_provider(period, scope):
    """[(provider, cost)] most expensive first (``provider_rows``)."""
    return [(row["provider"], row["cost"]) for row in provider_rows(period, scope)]


TOP_USERS = 10


@memoized
def active_users(period, scope):
    """App users with requests in the period (anonymous usage not counted)."""
    reader = current_reader()
    return reader.user_sums(period, scope, n="requests").filter(n__gt=0).count()


SPEND = ("cost", "tokens", "requests")


# The sums over every row a ranking query ranks (not only the top ones it
# answers): what the "others" row of a top-N table is made of.
class _SumOver(Func):
    """SUM(<an aggregate>) for a window over grouped rows (Django's Sum
    refuses an aggregate inside it)."""

    function = "SUM"
    window_compatible = True


_WINDOW_SUMS = {f"all_{name}": Window(_SumOver(F(name))) for name in SPEND}


def _all_sums(rows):
    """The window sums of a ranking's rows, taken off each row."""
    found = {name: (rows[0][f"all_{name}"] if rows else 0) or 0 for name in SPEND}
    for row in rows:
        for name in SPEND:
            del row[f"all_{name}"]
    return found


def reconciled(rows, ranked, total, others, missing, key):
    """``rows`` (the top ranked) and the rows that make them add up to the
    period's ``total``: ``others`` (the rest of the ranked, whose sums are
    ``ranked``) and ``missing`` (what no ranked row holds: anonymous usage,
    no organisation). A remainder row is left out when it holds no call
    (or, were the roll-ups to disagree, less than none)."""
    shown = {name: sum((row[name] or 0 for row in rows), 0) for name in SPEND}
    rest = {name: ranked[name] - shown[name] for name in SPEND}
    outside = {
        "cost": total["cost"] - ranked["cost"],
        "tokens": total["total_tokens"] - ranked["tokens"],
        "requests": total["requests"] - ranked["requests"],
    }
    extra = []
    for label, sums, kind in ((others, rest, "others"), (missing, outside, "missing")):
        if sums["requests"] > 0:
            extra.append({key: None, "label": label, **sums, "remainder": kind})
    return rows + extra


@memoized
def app_users(period, scope, limit):
    """(active app users, the ``limit`` who cost most) in one query: the
    users with requests in the period are counted by a window over the
    same per-user sums that rank them."""
    rows = list(
        current_reader()
        .user_sums(period, scope, cost="cost", tokens="total_tokens", requests="requests")
        .filter(requests__gt=0)
        .annotate(active=Window(Count("*")), **_WINDOW_SUMS)
        .order_by(F("cost").desc(nulls_last=True), "user_id")[:limit]
    )
    active = rows[0]["active"] if rows else 0
    for row in rows:
        del row["active"]
    return active, rows


def top_users(period, scope, limit=TOP_USERS):
    """The app users who cost most: [{user_id, label, cost, tokens,
    requests}], then the other app users and the anonymous usage (rows with
    ``user_id`` None and a ``remainder``), which add up to the period's total."""
    active, found = app_users(period, scope, limit)
    found = [dict(row) for row in found]
    ranked = _all_sums(found)
    labels = {u.pk: str(u) for u in AppUser.objects.filter(pk__in=[r["user_id"] for r in found])}
    rows = [
        {**row, "label": labels.get(row["user_id"], f"deleted app user {row['user_id']}")}
        for row in found
    ]
    others = active - len(rows)
    return reconciled(
        rows,
        ranked,
        period_sums(period, scope),
        f"{others:,} other app user{'s' if others != 1 else ''}",
        "Anonymous (no app user)",
        "user_id",
    )


def top_organizations(period, scope, limit=10):
    """The organisations that cost most: [{organization_id, label, cost, …}],
    then the other organisations and the usage of no organisation (rows with
    ``organization_id`` None and a ``remainder``): they add up to the total."""
    reader = current_reader()
    rows = list(
        current_reader()
        .usage(period, scope, "organization_id")
        .filter(organization_id__isnull=False)
        .values("organization_id")
        .annotate(
            cost=reader.total("cost"),
            tokens=reader.total("total_tokens"),
            requests=reader.total("requests"),
        )
        .filter(requests__gt=0)
        .annotate(found=Window(Count("*")), **_WINDOW_SUMS)
        .order_by(F("cost").desc(nulls_last=True), "organization_id")[:limit]
    )
    found = rows[0]["found"] if rows else 0
    ranked = _all_sums(rows)
    labels = dict(
        Organization.objects.filter(pk__in=[r["organization_id"] for r in rows]).values_list(
            "pk", "name"
        )
    )
    for row in rows:
        del row["found"]
        row["label"] = labels.get(row["organization_id"], f"organisation {row['organization_id']}")
    others = found - len(rows)
    return reconciled(
        rows,
        ranked,
        period_sums(period, scope),
        f"{others:,} other organisation{'s' if others != 1 else ''}",
        "No organisation",
        "organization_id",
    )


# -- the models table ------------------------------------------------------


MODEL_COLUMNS = {
    "model": ("model_name", "provider"),
    "requests": ("requests",),
    "input": ("prompt_tokens",),
    "output": ("completion_tokens",),
    "cached": ("cached_input_tokens",),
    "reasoning": ("reasoning_tokens",),
    "cost": ("cost",),
    "cost_per_1k": ("cost_per_1k_tokens",),
    "latency": ("avg_latency_ms",),
    "p95": ("p95_latency_ms",),
    "rating": ("avg_rating",),
    "code_success": ("code_success_rate",),
    "mistakes": ("mistake_share",),
}


def _quality_by_model(period, scope):
    """Feedback, code-execution and mistake figures per model name.

    These live on chats' tables, which carry a model name (and for feedback
    and executions a provider); they are matched to the ledger by model name.
    """
    # Grouped by model name below: the model and provider of the scope are
    # the ledger rows', not filters of these tables.
    scope = scope.without("model_name", "provider")
    # Ratings, code success and mistakes from the quality roll-ups
    # (chats.feedback_rollups, chats.rollups): rows per day and model, not
    # every rating, code run or message of the period.
    executions = chat_rollups.rows_in(period, scope, "day").filter(model_name__isnull=False)
    ratings = {
        name: stars / n
        for name, stars, n in feedback_rollups.rows_in(period, scope, "rating")
        .values("model_name")
        .annotate(stars=Sum(F("rating") * F("ratings")), n=Sum("ratings"))
        .values_list("model_name", "stars", "n")
        if n
    }
    success = {
        name: ok / n
        for name, ok, n in executions.values("model_name")
        .annotate(ok=Sum("successes"), n=Sum("executions"))
        .values_list("model_name", "ok", "n")
        if n
    }
    mistakes = {
        name: bad / n
        for name, bad, n in feedback_rollups.rows_in(period, scope, "answer")
        .filter(model_name__isnull=False)
        .values("model_name")
        .annotate(bad=Sum("mistakes"), n=Sum("answers"))
        .values_list("model_name", "bad", "n")
        if n
    }
    return ratings, success, mistakes


def models_table(period, scope, sort="-cost"):
    """One row per model and provider with usage, cost, latency and quality."""
    rows = [
        _derive(unsuffixed(row))
        for row in current_reader()
        .usage(period, scope)
        .values("model_name", "provider")
        .annotate(**sums())
        .filter(requests_total__gt=0)
        .order_by("model_name", "provider")  # ties keep one order on page and CSV
    ]
    histograms = _histograms(period, scope, "model_name", "provider")
    ratings, success, mistakes = _quality_by_model(period, scope)
    for row in rows:
        name = row["model_name"]
        row["p95_latency_ms"] = percentile_from_histogram(
            histograms.get((name, row["provider"]), {}), 0.95
        )
        row["avg_rating"] = ratings.get(name)
        row["code_success_rate"] = success.get(name)
        row["mistake_share"] = mistakes.get(name)
    return sort_rows(rows, sort)


def sort_rows(rows, sort):
    """Sort by a MODEL_COLUMNS key, '-' for descending; None values last."""
    descending = sort.startswith("-")
    keys = MODEL_COLUMNS.get(sort.lstrip("-"), MODEL_COLUMNS["cost"])

    def key(row):
        values = tuple(row[k] for k in keys)
        missing = any(v is None for v in values)
        return (missing, values if not missing else ())

    present = sorted((r for r in rows if not key(r)[0]), key=key, reverse=descending)
    return present + [r for r in rows if key(r)[0]]


# -- what if: the period at another model's prices ------------------------------


def price_key(price):
    """A price's model as the what-if form names it: "provider/model"."""
    return f"{price.provider}/{price.model_name}"


@memoized
def prices_in_force(day):
    """{price_key: ModelPrice} of every model priced on ``day``."""
    prices = ModelPrice.objects.in_force(day).order_by("provider", "model_name")
    return {price_key(price): price for price in prices}


WHAT_IF_SUMS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost",
    "unpriced_requests",
)
WHAT_IF_GROUPS = {
    "organization_id": (Organization, "No organisation"),
    "user_id": (AppUser, "Anonymous"),
}


def _priced_at(row, price):
    """A row of token sums with its cost at ``price`` and the difference."""
    # Linear in each count, so the cost of summed calls is the sum of their
    # costs (a call that reported no cached or reasoning tokens adds 0 to them).
    row["what_if_cost"] = price.cost_of(
        row["prompt_tokens"],
        row["completion_tokens"],
        row["cached_input_tokens"],
        row["reasoning_tokens"],
    )
    row["difference"] = row["what_if_cost"] - row["cost"]
    row["change"] = row["difference"] / row["cost"] if row["cost"] else None
    return row


@memoized
def what_if(period, scope, price, by):
    """What the period's calls would have cost at ``price`` (a ModelPrice),
    per organisation (``by`` "organization_id") or app user ("user_id"):
    [{<by>, label, requests, prompt_tokens, completion_tokens, cost,
    unpriced_requests, what_if_cost, difference, change}], dearest on
    ``price`` first. Usage without an organisation, or anonymous, is a row
    of its own (``<by>`` None).

    ``cost`` is the ledger's (calls without a price count $0, as on every
    page); ``what_if_cost`` is ``price.cost_of`` the row's summed input,
    output, cached-input and reasoning tokens, exact (no rounding), so the
    rows add up to the period's.
    Per app user from the app-user roll-up (UserUsage), per organisation
    from the smallest roll-up that has it.
    """
    reader = current_reader()
    # Suffixed, as in ``sums()``: the ledger's counts filter on ``cost``.
    if by == "user_id":
        rows = reader.user_rows(period, scope, **{f"{name}_sum": name for name in WHAT_IF_SUMS})
    else:
        rows = (
            reader.usage(period, scope, by)
            .values(by)
            .annotate(**{f"{name}_sum": reader.total(name) for name in WHAT_IF_SUMS})
        )
    rows = [_priced_at(_zeroed(row, by), price) for row in rows.filter(requests_sum__gt=0)]
    model, nobody = WHAT_IF_GROUPS[by]
    ids = [row[by] for row in rows if row[by] is not None]
    found = model.objects.filter(pk__in=ids) if ids else []
    labels = {subject.pk: str(subject) for subject in found}
    for row in rows:
        key = row[by]
        row["label"] = nobody if key is None else labels.get(key, f"deleted, id {key}")
    rows.sort(key=lambda r: (-r["what_if_cost"], -r["cost"], r[by] is None, r[by] or 0))
    return rows


def _zeroed(row, by):
    """A row of suffixed sums with the plain names; missing sums are 0."""
    sums = {
        name: row[f"{name}_sum"] or (Decimal(0) if name == "cost" else 0) for name in WHAT_IF_SUMS
    }
    return {by: row[by], **sums}


def what_if_total(rows, price):
    """The sum of ``what_if`` rows, priced as they are."""
    total = {name: sum(row[name] for row in rows) for name in WHAT_IF_SUMS}
    total["cost"] = Decimal(total["cost"])
    return _priced_at(total, price)


# -- one app user or organisation --------------------------------------------


def cost_per_day(period, scope):
    """[(day, cost)] for every day of the period (0 on empty days)."""
    reader = current_reader()
    found = dict(
        current_reader()
        .usage(period, scope)
        .values("day")
        .annotate(cost=reader.total("cost"))
        .values_list("day", "cost")
    )
    return [(day, found.get(day) or Decimal(0)) for day in period.each_day()]


MODEL_SPEND = ("model_name", "provider", "cost", "tokens", "requests", "unpriced_requests")


@memoized
def model_rows(period, scope):
    """[{model_name, provider, cost, tokens, requests, unpriced_requests}]
    most expensive first: each model's spend and the calls without a price
    its cost leaves out."""
    reader = current_reader()
    return list(
        current_reader()
        .usage(period, scope)
        .values("model_name", "provider")
        .annotate(
            cost_sum=reader.total("cost"),
            tokens_sum=reader.total("total_tokens"),
            requests_sum=reader.total("requests"),
            unpriced_sum=reader.total("unpriced_requests"),
        )
        .filter(requests_sum__gt=0)
        .order_by(F("cost_sum").desc(nulls_last=True), "model_name")
        .values(
            "model_name",
            "provider",
            cost=F("cost_sum"),
            tokens=F("tokens_sum"),
            requests=F("requests_sum"),
            unpriced_requests=F("unpriced_sum"),
        )
    )


def cost_by_model(period, scope):
    """[(model_name, provider, cost, tokens, requests)] most expensive first
    (``model_rows``)."""
    return [tuple(row[key] for key in MODEL_SPEND[:5]) for row in model_rows(period, scope)]


# -- budgets ---------------------------------------------------------------


class BudgetState(models.TextChoices):
    """Where a budget stands this month (worst first)."""

    OVER = "over", "Over"
    AT_RISK = "at risk", "At risk"
    ON_TRACK = "on track", "On track"


STATE_RANK = {state: rank for rank, state in enumerate(BudgetState.values)}


def budget_month(today):
    """The budget month to ``today`` (a local date): its first day to today."""
    return Period(today.replace(day=1), today)


def run_rate_projection(spent, today):
    """Month-end spend at the run rate: spend so far ÷ days elapsed (today
    included) × days in the month. The one projection of the pages, the
    admin, ``check_budgets`` and ``watch_spend``; on the last day it is the
    spend."""
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    return spent * days_in_month / today.day


def budget_state(spent, projected, limit):
    """Over (spent > limit), at risk (projected > limit) or on track."""
    if spent > limit:
        return BudgetState.OVER
    if projected > limit:
        return BudgetState.AT_RISK
    return BudgetState.ON_TRACK


@dataclass
class BudgetStatus:
    budget: Budget
    spent: Decimal
    projected: Decimal
    share: float  # of the limit spent (inf for spend on a zero limit)

    @property
    def state(self):
        return budget_state(self.spent, self.projected, self.budget.monthly_limit)

    @property
    def label(self):
        return BudgetState(self.state).label

    @property
    def target(self):
        return self.budget.organization or self.budget.user


def month_spend(today, organization_ids=None, user_ids=None):
    """({organisation id: cost}, {app user id: cost}) of the budget month to
    ``today``, for the ids given (None: every one with usage; an empty list
    runs no query). One query each."""
    reader = current_reader()
    month = budget_month(today)
    by_org = {}
    if organization_ids is None or organization_ids:
        rows = reader.usage(month, Scope(), "organization_id").filter(organization_id__isnull=False)
        if organization_ids is not None:
            rows = rows.filter(organization_id__in=organization_ids)
        by_org = dict(
            rows.values("organization_id")
            .annotate(c=reader.total("cost"))
            .values_list("organization_id", "c")
        )
    by_user = {}
    if user_ids is None or user_ids:
        rows = reader.user_sums(month, Scope(), c="cost")
        if user_ids is not None:
            rows = rows.filter(user_id__in=user_ids)
        by_user = dict(rows.values_list("user_id", "c"))
    return by_org, by_user


def budget_statuses(today=None, scope=None, budgets=None):
    """Every budget's month-to-date spend, run-rate projection and state
    (of ``budgets`` when given: the budget admin's page). Worst first: over,
    at risk, on track, then by share of the limit spent."""
    today = today or timezone.localdate()
    if budgets is None:
        budgets = Budget.objects.select_related("organization", "user")
        if scope and scope.organization_id:
            budgets = budgets.filter(organization_id=scope.organization_id)
        if scope and scope.user_id:
            budgets = budgets.filter(user_id=scope.user_id)
    budgets = list(budgets)
    by_org, by_user = month_spend(
        today,
        [b.organization_id for b in budgets if b.organization_id],
        [b.user_id for b in budgets if b.user_id],
    )
    statuses = []
    for budget in budgets:
        spent = (
            by_org.get(budget.organization_id)
            if budget.organization_id
            else by_user.get(budget.user_id)
        ) or Decimal(0)
        limit = budget.monthly_limit
        share = float(spent / limit) if limit else (float("inf") if spent else 0.0)
        statuses.append(BudgetStatus(budget, spent, run_rate_projection(spent, today), share))
    statuses.sort(key=lambda s: (STATE_RANK[s.state], -s.share, s.budget.pk))
    return statuses


@memoized
def organizations_without_budget(limit=3, today=None):
    """(organisations with spend this budget month and no budget, the
    ``limit`` costliest of them as [{organization_id, label, cost}]) in one
    query: a window counts the rows it ranks."""
    reader = current_reader()
    month = budget_month(today or timezone.localdate())
    rows = list(
        reader.usage(month, Scope(), "organization_id")
        .filter(organization_id__isnull=False)
        .exclude(
            organization_id__in=Budget.objects.filter(organization__isnull=False).values(
                "organization_id"
            )
        )
        .values("organization_id", label=F("organization__name"))
        .annotate(cost=reader.total("cost"), requests=reader.total("requests"))
        .filter(requests__gt=0)
        .annotate(found=Window(Count("*")))
        .order_by(F("cost").desc(), "organization_id")[:limit]
    )
    for row in rows:
        row["label"] = row["label"] or f"organisation {row['organization_id']}"
    return (rows[0]["found"] if rows else 0), rows


# -- one app user's or organisation's latest rows --------------------------------


def latest_chats(scope_field, pk, limit=20):
    """The latest chats of an app user or organisation (``scope_field``:
    "user_id" or "organization_id"), with what the page shows of them."""
    return Chat.objects.select_related("user", "organization").filter(**{scope_field: pk})[:limit]


def latest_feedback(scope_field, pk, limit=20):
    """The latest ratings given in the chats of an app user or organisation."""
    return (
        MessageFeedback.objects.select_related("message__chat")
        .filter(**{f"message__chat__{scope_field}": pk}, rating__isnull=False)
        .order_by("-created_at")[:limit]
    )


# -- one model's page and the rows behind a day ------------------------------


@memoized
def per_day(period, scope):
    """[(day, cost, requests, total tokens, unpriced requests)] for every day
    of the period (zeros on empty days)."""
    reader = current_reader()
    found = {
        day: rest
        for day, *rest in current_reader()
        .usage(period, scope)
        .values("day")
        .annotate(
            cost_sum=reader.total("cost"),
            requests_sum=reader.total("requests"),
            tokens_sum=reader.total("total_tokens"),
            unpriced_sum=reader.total("unpriced_requests"),
        )
        .values_list("day", "cost_sum", "requests_sum", "tokens_sum", "unpriced_sum")
    }
    zero = (Decimal(0), 0, 0, 0)
    return [
        (day, *(value or zero[n] for n, value in enumerate(found.get(day, zero))))
        for day in period.each_day()
    ]


def model_summary(period, scope):
    """The models table's row of the scope's one model and provider (usage,
    cost, latency, rating, code success, flagged mistakes), or None when it
    has no calls in the period."""
    rows = models_table(period, scope)
    return rows[0] if rows else None


# Suffixed, as in ``sums()``: the ledger reader's sums would shadow its columns.
SPEND_SUMS = {"cost_sum": "cost", "tokens_sum": "total_tokens", "requests_sum": "requests"}
TOP_SHOWN = 10


def spend_of(row):
    """{cost, tokens, requests} of a row of SPEND_SUMS (missing sums: 0)."""
    return {
        "cost": row.get("cost_sum") or Decimal(0),
        "tokens": row.get("tokens_sum") or 0,
        "requests": row.get("requests_sum") or 0,
    }


def _top_and_rest(rows, key, labels, nobody, others, limit):
    """Rows dearest first: the ``limit`` dearest with an id, then the others
    summed in one row (``others``: its noun, singular and plural), then the
    row without an id (``nobody``), so the rows add up to the total. Each
    row: {key, label, cost, tokens, requests}."""
    known = sorted(
        (r for r in rows if r[key] is not None), key=lambda r: (-r["cost"], -r["requests"], r[key])
    )
    shown = [{**r, "label": labels.get(r[key], f"deleted, id {r[key]}")} for r in known[:limit]]
    rest = known[limit:]
    if rest:
        shown.append(
            {
                key: None,
                "label": f"{len(rest):,} other {others[len(rest) > 1]}",
                **{name: sum(r[name] for r in rest) for name in ("cost", "tokens", "requests")},
            }
        )
    shown.extend({**r, "label": nobody} for r in rows if r[key] is None)
    return shown


@memoized
def users_of(period, scope, limit=TOP_SHOWN):
    """The scope's app users dearest first (top ``limit``, "N other app
    users", "Anonymous"): their rows add up to the scope's totals."""
    rows = [
        {"user_id": r["user_id"], **spend_of(r)}
        for r in current_reader().user_rows(period, scope, **SPEND_SUMS).filter(requests_sum__gt=0)
    ]
    ids = [r["user_id"] for r in rows if r["user_id"] is not None]
    labels = {u.pk: str(u) for u in AppUser.objects.filter(pk__in=ids)} if ids else {}
    return _top_and_rest(rows, "user_id", labels, "Anonymous", ("app user", "app users"), limit)


@memoized
def organizations_of(period, scope, limit=TOP_SHOWN):
    """The scope's organisations dearest first (top ``limit``, "N other
    organisations", "No organisation"): their rows add up to the totals."""
    reader = current_reader()
    rows = [
        {"organization_id": r["organization_id"], **spend_of(r)}
        for r in reader.usage(period, scope, "organization_id")
        .values("organization_id")
        .annotate(**{name: reader.total(column) for name, column in SPEND_SUMS.items()})
        .filter(requests_sum__gt=0)
    ]
    ids = [r["organization_id"] for r in rows if r["organization_id"] is not None]
    labels = dict(Organization.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
    return _top_and_rest(rows, "organization_id", labels, "No organisation", "organisations", limit)


def ledger_params(scope):
    """The usage ledger changelist's query parameters of a Scope (its list
    filters: usage.admin.ModelUsageAdmin)."""
    params = {
        "model_name": scope.model_name,
        "provider": scope.provider,
        "organization__id__exact": scope.organization_id,
        "user__id__exact": scope.user_id,
        "source__id__exact": scope.source_id,
    }
    return {name: value for name, value in params.items() if value not in (None, "")}


def chat_params(scope):
    """The chat changelist's query parameters of a Scope (what a chat has:
    its organisation, app user and source)."""
    params = {
        "organization__id__exact": scope.organization_id,
        "user__id__exact": scope.user_id,
        "source__id__exact": scope.source_id,
    }
    return {name: value for name, value in params.items() if value is not None}
