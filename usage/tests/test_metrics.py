"""Every figure of usage.metrics equals the same figure computed another way:
plain SQL on the raw ledger (usage_modelusage) and chats' tables, with local
days cut in Python (zoneinfo) from the raw rows' timestamps.

The ledger is written through usage.ledger.add_usage (see conftest.awkward),
in UTC and again in America/New_York; the roll-ups the metrics read are cut
in the zone in force when the rows are written.
"""

import calendar
import datetime as dt
import io
import threading
from collections import defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection

from core.tests import factories as f
from usage import ledger, metrics, rollups
from usage.metrics import Period, Scope
from usage.models import DailyUsage, ModelUsage, latency_bucket

from .conftest import TODAY, C, G, utc

pytestmark = pytest.mark.django_db

EIGHT_PLACES = Decimal("0.00000001")


@pytest.fixture(params=["UTC", "America/New_York"])
def time_zone(request, settings):
    settings.TIME_ZONE = request.param
    return request.param


def money(value):
    """A cost as an 8-place Decimal (SQLite hands DECIMAL columns back as floats)."""
    return None if value is None else Decimal(str(value)).quantize(EIGHT_PLACES)


# SQLite sums DECIMAL columns as doubles, which cannot hold 7,800.078625 exactly:
# sum whole 10^-8 dollars instead (exact in a double below 2^53).
COST_SUM = "SUM(ROUND(u.cost * 100000000))"


def units(value):
    """A COST_SUM result (whole 10^-8 dollars) as dollars; NULL stays None."""
    return None if value is None else money(Decimal(int(value)) * EIGHT_PLACES)


def cost(value):
    """A row's cost where an unpriced row counts as $0 (the roll-up's convention)."""
    return money(value or 0)


def cost_sum(value):
    """A COST_SUM result where a sum of no priced row counts as $0."""
    return units(value) if value is not None else money(0)


def _aware(value):
    """A timestamp from a raw cursor (PostgreSQL: aware; SQLite: naive UTC)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _sql(query, params=()):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def nearest_rank(values, q=0.95):
    """The exact nearest-rank percentile of a list of numbers."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = -(-int(q * 100) * len(ordered) // 100)  # ceil(q·n) in integers
    return ordered[rank - 1]


SCOPE_COLUMNS = ("organization_id", "user_id", "model_name", "provider", "source_id")


class Raw:
    """Figures straight from the raw tables, for periods of local days."""

    def __init__(self, zone):
        self.zone = ZoneInfo(zone)

    def bounds(self, period):
        """[start, end) of the period's local days as database parameters."""
        start = dt.datetime.combine(period.start, dt.time(), self.zone)
        end = dt.datetime.combine(period.end + dt.timedelta(days=1), dt.time(), self.zone)
        adapt = connection.ops.adapt_datetimefield_value
        return adapt(start.astimezone(dt.UTC)), adapt(end.astimezone(dt.UTC))

    def local_day(self, timestamp):
        return _aware(timestamp).astimezone(self.zone).date()

    def where(self, period, scope, alias="u"):
        clauses = [f"{alias}.timestamp >= %s", f"{alias}.timestamp < %s"]
        params = list(self.bounds(period))
        for column in SCOPE_COLUMNS:
            value = getattr(scope, column)
            if value is not None:
                clauses.append(f"{alias}.{column} = %s")
                params.append(value)
        return " AND ".join(clauses), params

    # -- totals and the headline ------------------------------------------

    def totals(self, period, scope):
        where, params = self.where(period, scope)
        (row,) = _sql(
            f"""
            SELECT COUNT(*), SUM(u.prompt_tokens), SUM(u.completion_tokens),
                   SUM(u.total_tokens), {COST_SUM}, COUNT(*) - COUNT(u.cost),
                   SUM(CASE WHEN u.is_streaming THEN 1 ELSE 0 END),
                   COUNT(u.request_time_ms), SUM(u.request_time_ms),
                   COUNT(DISTINCT u.user_id)
            FROM usage_modelusage u WHERE {where}
            """,
            params,
        )
        n, prompt, completion, tokens, total_cost, unpriced, streaming, timed, ms, users = row
        times = [
            ms_
            for (ms_,) in _sql(
                f"SELECT u.request_time_ms FROM usage_modelusage u "
                f"WHERE {where} AND u.request_time_ms IS NOT NULL",
                params,
            )
        ]
        return {
            "requests": n,
            "prompt_tokens": prompt or 0,
            "completion_tokens": completion or 0,
            "total_tokens": tokens or 0,
            "cost": cost_sum(total_cost),
            "unpriced_requests": unpriced,
            "streaming_requests": streaming or 0,
            "timed_requests": timed,
            "request_time_ms_sum": ms or 0,
            "active_users": users,
            # Unknown when no row in the period was priced (SQL SUM is NULL).
            "cost_per_1k_tokens": (
                units(total_cost) * 1000 / tokens if tokens and total_cost is not None else None
            ),
            "avg_latency_ms": ms / timed if timed else None,
            "streaming_share": streaming / n if n else None,
            "p95_exact_ms": nearest_rank(times),
        }

    # -- the charts ---------------------------------------------------------

    def raw_rows(self, period, scope, *columns):
        where, params = self.where(period, scope)
        select = ", ".join(f"u.{c}" for c in ("timestamp", *columns))
        return _sql(f"SELECT {select} FROM usage_modelusage u WHERE {where}", params)

    def cost_per_day_by_model(self, period, scope):
        found = defaultdict(Decimal)
        for timestamp, model_name, value in self.raw_rows(period, scope, "model_name", "cost"):
            found[(self.local_day(timestamp), model_name)] += cost(value)
        return sorted((day, model, total) for (day, model), total in found.items())

    def tokens_per_day(self, period, scope):
        found = defaultdict(lambda: [0, 0])
        rows = self.raw_rows(period, scope, "prompt_tokens", "completion_tokens")
        for timestamp, prompt, completion in rows:
            day = found[self.local_day(timestamp)]
            day[0] += prompt
            day[1] += completion
        return [(day, *found.get(day, (0, 0))) for day in period.each_day()]

    def cost_per_day(self, period, scope):
        found = defaultdict(Decimal)
        for timestamp, value in self.raw_rows(period, scope, "cost"):
            found[self.local_day(timestamp)] += cost(value)
        return [(day, found.get(day, Decimal(0))) for day in period.each_day()]

    # -- tables ---------------------------------------------------------------

    def cost_by_provider(self, period, scope):
        where, params = self.where(period, scope)
        rows = _sql(
            f"SELECT u.provider, {COST_SUM} FROM usage_modelusage u WHERE {where} "
            f"GROUP BY u.provider ORDER BY COALESCE({COST_SUM}, 0) DESC, u.provider",
            params,
        )
        return [(provider, cost_sum(total)) for provider, total in rows]

    def top(self, period, scope, column, table, label, limit=10):
        where, params = self.where(period, scope)
        rows = _sql(
            f"""
            SELECT u.{column}, t.{label}, {COST_SUM}, SUM(u.total_tokens), COUNT(*)
            FROM usage_modelusage u JOIN {table} t ON t.id = u.{column}
            WHERE {where}
            GROUP BY u.{column}, t.{label}
            ORDER BY COALESCE({COST_SUM}, 0) DESC, u.{column}
            LIMIT {limit}
            """,
            params,
        )
        return [
            {column: pk, "label": name, "cost": cost_sum(c), "tokens": t, "requests": n}
            for pk, name, c, t, n in rows
        ]

    def cost_by_model(self, period, scope):
        where, params = self.where(period, scope)
        rows = _sql(
            f"""
            SELECT u.model_name, u.provider, {COST_SUM}, SUM(u.total_tokens), COUNT(*)
            FROM usage_modelusage u WHERE {where}
            GROUP BY u.model_name, u.provider
            ORDER BY COALESCE({COST_SUM}, 0) DESC, u.model_name, u.provider
            """,
            params,
        )
        return [(m, p, cost_sum(c), t, n) for m, p, c, t, n in rows]

    def quality(self, period, scope):
        """({model: avg rating}, {model: success rate}, {model: mistake share})."""
        start, end = self.bounds(period)

        def chat_scope(alias, chat_alias="c"):
            clauses, params = [], []
            for column, value in (
                ("user_id", scope.user_id),
                ("organization_id", scope.organization_id),
            ):
                if value is not None:
                    clauses.append(f"{chat_alias}.{column} = %s")
                    params.append(value)
            if scope.source_id is not None:
                clauses.append(f"{alias}.source_id = %s")
                params.append(scope.source_id)
            return "".join(f" AND {c}" for c in clauses), params

        extra, params = chat_scope("fb")
        ratings = {
            model: float(avg)
            for model, avg in _sql(
                f"""
                SELECT fb.model_name, AVG(fb.rating)
                FROM chats_messagefeedback fb
                JOIN chats_message m ON m.id = fb.message_id
                JOIN chats_chat c ON c.id = m.chat_id
                WHERE fb.rating IS NOT NULL AND fb.created_at >= %s AND fb.created_at < %s
                {extra} GROUP BY fb.model_name
                """,
                [start, end, *params],
            )
        }
        extra, params = chat_scope("e")
        success = {
            model: ok / n
            for model, ok, n in _sql(
                f"""
                SELECT e.model_name, SUM(CASE WHEN e.is_successful THEN 1 ELSE 0 END), COUNT(*)
                FROM chats_codeexecution e LEFT JOIN chats_chat c ON c.id = e.chat_id
                WHERE e.model_name IS NOT NULL AND e.created_at >= %s AND e.created_at < %s
                {extra} GROUP BY e.model_name
                """,
                [start, end, *params],
            )
        }
        extra, params = chat_scope("m")
        mistakes = {
            model: bad / n
            for model, bad, n in _sql(
                f"""
                SELECT m.model_name, SUM(CASE WHEN m.is_mistake THEN 1 ELSE 0 END), COUNT(*)
                FROM chats_message m JOIN chats_chat c ON c.id = m.chat_id
                WHERE m.role = 'assistant' AND m.model_name IS NOT NULL
                  AND m.created_at >= %s AND m.created_at < %s
                {extra} GROUP BY m.model_name
                """,
                [start, end, *params],
            )
        }
        return ratings, success, mistakes

    def models_table(self, period, scope):
        where, params = self.where(period, scope)
        rows = _sql(
            f"""
            SELECT u.model_name, u.provider, COUNT(*), SUM(u.prompt_tokens),
                   SUM(u.completion_tokens), SUM(u.total_tokens), {COST_SUM},
                   COUNT(u.request_time_ms), SUM(u.request_time_ms),
                   SUM(u.cached_input_tokens), SUM(u.reasoning_tokens)
            FROM usage_modelusage u WHERE {where}
            GROUP BY u.model_name, u.provider ORDER BY u.model_name, u.provider
            """,
            params,
        )
        ratings, success, mistakes = self.quality(period, scope)
        table = []
        for model, provider, n, prompt, completion, tokens, total, timed, ms, *parts in rows:
            times = [
                ms_
                for (ms_,) in _sql(
                    f"SELECT u.request_time_ms FROM usage_modelusage u WHERE {where} "
                    "AND u.model_name = %s AND u.provider = %s "
                    "AND u.request_time_ms IS NOT NULL",
                    [*params, model, provider],
                )
            ]
            table.append(
                {
                    "model_name": model,
                    "provider": provider,
                    "requests": n,
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    # SQL's SUM of only NULLs is NULL: none reported them
                    "cached_input_tokens": parts[0],
                    "reasoning_tokens": parts[1],
                    "cost": cost_sum(total),
                    "cost_per_1k_tokens": (
                        units(total) * 1000 / tokens if tokens and total is not None else None
                    ),
                    "avg_latency_ms": ms / timed if timed else None,
                    "p95_exact_ms": nearest_rank(times),
                    "avg_rating": ratings.get(model),
                    "code_success_rate": success.get(model),
                    "mistake_share": mistakes.get(model),
                }
            )
        return table

    def budgets(self, today):
        month = Period(today.replace(day=1), today)
        where, params = self.where(month, Scope())
        by_org = dict(
            _sql(
                f"SELECT u.organization_id, {COST_SUM} FROM usage_modelusage u WHERE {where} "
                "AND u.organization_id IS NOT NULL GROUP BY u.organization_id",
                params,
            )
        )
        by_user = dict(
            _sql(
                f"SELECT u.user_id, {COST_SUM} FROM usage_modelusage u WHERE {where} "
                "AND u.user_id IS NOT NULL GROUP BY u.user_id",
                params,
            )
        )
        days_in_month = calendar.monthrange(today.year, today.month)[1]
        result = {}
        for budget_id, org_id, user_id, limit in _sql(
            "SELECT id, organization_id, user_id, monthly_limit FROM usage_budget"
        ):
            spent = cost_sum(by_org.get(org_id) if org_id else by_user.get(user_id))
            result[budget_id] = {
                "spent": spent,
                "projected": spent / today.day * days_in_month,
                "share": float(spent / money(limit)),
            }
        return result


# -- the periods and scopes every figure is checked for -----------------------


def periods():
    presets = [Period.preset(name, today=TODAY) for name in ("today", "7d", "30d", "90d", "mtd")]
    return [
        *presets,
        Period(dt.date(2024, 3, 1), dt.date(2024, 3, 1)),
        Period(dt.date(2024, 3, 9), dt.date(2024, 3, 10)),  # New York's short day
        Period(dt.date(2024, 2, 1), dt.date(2024, 3, 31)),
    ]


def scopes(data):
    return [
        Scope(),
        Scope(organization_id=data.acme.pk),
        Scope(organization_id=data.globex.pk),
        Scope(user_id=data.ann.pk),
        Scope(user_id=data.cat.pk),
        Scope(model_name="gpt-4o"),
        Scope(provider="azure"),
        Scope(provider="anthropic"),
        Scope(source_id=data.tts.pk),
        Scope(organization_id=data.globex.pk, model_name="claude-3-5-sonnet"),
        Scope(user_id=data.bob.pk, source_id=data.aa.pk),
    ]


def combinations(data):
    return [(period, scope) for period in periods() for scope in scopes(data)]


SUMMED = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "unpriced_requests",
    "streaming_requests",
    "timed_requests",
    "request_time_ms_sum",
    "active_users",
    "cost_per_1k_tokens",
    "avg_latency_ms",
    "streaming_share",
)


def assert_totals(got, expected, where):
    assert money(got["cost"]) == expected["cost"], where
    for key in SUMMED:
        assert got[key] == expected[key], (where, key, got[key], expected[key])
    assert_same_bucket(got["p95_latency_ms"], expected["p95_exact_ms"], where)


def assert_same_bucket(p95, exact, where):
    """The histogram's p95 lies in the bucket of the exact nearest-rank p95."""
    if exact is None:
        assert p95 is None, where
    else:
        assert p95 is not None, where
        assert latency_bucket(p95) == latency_bucket(exact), (where, p95, exact)


# -- totals and headline ------------------------------------------------------


def test_totals_equal_plain_sql_for_every_period_and_scope(awkward, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(awkward):
        assert_totals(metrics.totals(period, scope), raw.totals(period, scope), (period, scope))


def test_totals_concrete_values_move_with_the_zone(awkward, time_zone):
    today = metrics.totals(Period.preset("today", TODAY), Scope())
    week = metrics.totals(Period.preset("7d", TODAY), Scope())

    if time_zone == "UTC":
        # 14 Mar 00:00:00 (two rows), 03:00, 12:00, 20:00 UTC; 13 Mar 23:59:59 is yesterday.
        assert (today["requests"], money(today["cost"])) == (5, Decimal("0.030625"))
        assert (today["prompt_tokens"], today["completion_tokens"]) == (3510, 1760)
        assert today["active_users"] == 1  # ann; the others are anonymous
        assert money(week["cost"]) == Decimal("7800.078625")
    else:
        # 14 Mar in New York (EDT) is 04:00 UTC to 04:00 UTC: 12:00, 20:00, and
        # 15 Mar 02:00 UTC; 00:00 and 03:00 UTC belong to 13 Mar.
        assert (today["requests"], money(today["cost"])) == (3, Decimal("0.00475"))
        assert (today["prompt_tokens"], today["completion_tokens"]) == (1200, 550)
        assert today["active_users"] == 1
        # 8 Mar 00:00 UTC (0.002) is 7 Mar in New York; 15 Mar 02:00 (0.00475) is 14 Mar.
        assert money(week["cost"]) == Decimal("7800.081375")
    assert week["requests"] == 24
    assert week["unpriced_requests"] == 2
    # 8 Mar 00:00 UTC (1,200 tokens) in UTC; 15 Mar 02:00 UTC (1,000) in New York.
    assert week["total_tokens"] == 10**9 + (22680 if time_zone == "UTC" else 22480)
    # 125 s is in the open last bucket, answered by its lower bound.
    assert (
        metrics.totals(
            Period(dt.date(2024, 3, 11), dt.date(2024, 3, 11)), Scope(user_id=awkward.cat.pk)
        )["p95_latency_ms"]
        == 120_000
    )


def test_headline_changes_equal_plain_sql(awkward, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(awkward):
        now, before = raw.totals(period, scope), raw.totals(period.previous(), scope)
        figures = {figure.key: figure for figure in metrics.headline(period, scope)}
        assert list(figures) == [key for key, _, _ in metrics.HEADLINE]
        for key, figure in figures.items():
            where = (period, scope, key)
            if key == "p95_latency_ms":
                assert_same_bucket(figure.value, now["p95_exact_ms"], where)
                assert_same_bucket(figure.previous, before["p95_exact_ms"], where)
                value, previous = figure.value, figure.previous
            else:
                value, previous = now[key], before[key]
                if key == "cost":
                    assert money(figure.value) == value and money(figure.previous) == previous
                else:
                    assert (figure.value, figure.previous) == (value, previous), where
            if value is None or not previous:
                assert figure.change is None, where
            else:
                expected = (float(value) - float(previous)) / float(previous)
                assert figure.change == pytest.approx(expected, rel=1e-9), where


def test_headline_change_concrete(awkward, time_zone):
    figures = {
        f.key: f
        for f in metrics.headline(Period.preset("today", TODAY), Scope(model_name="gpt-4o"))
    }

    if time_zone == "UTC":
        # today: 0.0125 + 0.000125 + 0 (anonymous, free); 13 Mar: 0.006.
        assert money(figures["cost"].value) == Decimal("0.012625")
        assert money(figures["cost"].previous) == Decimal("0.006")
        assert figures["cost"].change == pytest.approx(0.012625 / 0.006 - 1)
        assert (figures["requests"].value, figures["requests"].previous) == (3, 1)
    else:
        # today: 0 (20:00 UTC) + 0.00475 (15 Mar 02:00 UTC); 13 Mar: 0.006 + 0.0125 + 0.000125.
        assert money(figures["cost"].value) == Decimal("0.00475")
        assert money(figures["cost"].previous) == Decimal("0.018625")
        assert (figures["requests"].value, figures["requests"].previous) == (2, 3)
    week = {f.key: f for f in metrics.headline(Period.preset("7d", TODAY), Scope())}
    if time_zone == "UTC":
        # 1–7 Mar: no streaming call at all, so no change is claimed.
        assert week["streaming_share"].previous == 0
        assert week["streaming_share"].change is None
    else:
        # 8 Mar 00:00 UTC (streaming) is 7 Mar in New York; 1 Mar 00:00 UTC is 29 Feb.
        assert week["streaming_share"].previous == pytest.approx(1 / 3)
        assert week["streaming_share"].change == pytest.approx(8 / 24 * 3 - 1)


# -- charts ------------------------------------------------------------------


def test_chart_series_equal_raw_rows_bucketed_in_python(awkward, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(awkward):
        where = (period, scope)
        got = [(d, m, money(c)) for d, m, c in metrics.cost_per_day_by_model(period, scope)]
        assert got == raw.cost_per_day_by_model(period, scope), where
        assert metrics.tokens_per_day(period, scope) == raw.tokens_per_day(period, scope), where
        got = [(d, money(c)) for d, c in metrics.cost_per_day(period, scope)]
        assert got == raw.cost_per_day(period, scope), where


def test_day_boundaries_concrete(awkward, time_zone):
    period = Period(dt.date(2024, 3, 13), dt.date(2024, 3, 14))
    series = dict(metrics.cost_per_day(period, Scope(user_id=awkward.ann.pk)))
    tokens = metrics.tokens_per_day(Period(dt.date(2024, 3, 9), dt.date(2024, 3, 10)), Scope())

    if time_zone == "UTC":
        # 23:59:59 stays on 13 Mar; 00:00:00 (0.0125 + 0.000125) starts 14 Mar.
        assert money(series[dt.date(2024, 3, 13)]) == Decimal("0.006")
        assert money(series[dt.date(2024, 3, 14)]) == Decimal("0.012625")
        # bob's twelve calls on 9 Mar; dan's two on 10 Mar (04:59:59 and 06:30).
        assert tokens == [(dt.date(2024, 3, 9), 7800, 1560), (dt.date(2024, 3, 10), 900, 250)]
    else:
        # All three are on 13 Mar in New York; 15 Mar 02:00 UTC is 14 Mar 22:00.
        assert money(series[dt.date(2024, 3, 13)]) == Decimal("0.018625")
        assert money(series[dt.date(2024, 3, 14)]) == Decimal("0.00475")
        # bob's 00:00–04:00 UTC calls are 8 Mar in New York (EST, UTC-5), and
        # dan's 04:59:59 UTC call is 9 Mar 23:59:59.
        assert tokens == [
            (dt.date(2024, 3, 9), 7800 - 1500 + 100, 1560 - 300 + 50),
            (dt.date(2024, 3, 10), 800, 200),
        ]


# -- tables ---------------------------------------------------------------------


def test_cost_by_provider_equals_plain_sql(awkward, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(awkward):
        got = [(p, money(c)) for p, c in metrics.cost_by_provider(period, scope)]
        assert got == raw.cost_by_provider(period, scope), (period, scope)
    got = metrics.cost_by_provider(Period.preset("30d", TODAY), Scope())
    assert [p for p, _ in got] == ["anthropic", "openai", "azure", "mistral", "groq"]


def _money_rows(rows):
    return [{**row, "cost": money(row["cost"])} for row in rows]


def _ranked(rows):
    """The ranked rows of a top-N table (not its remainder rows)."""
    return [row for row in rows if "remainder" not in row]


def test_top_users_and_organizations_equal_plain_sql(awkward, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(awkward):
        where = (period, scope)
        expected = raw.top(period, scope, "user_id", "core_appuser", "email")
        assert _money_rows(_ranked(metrics.top_users(period, scope))) == expected, where
        expected = raw.top(period, scope, "organization_id", "core_organization", "name")
        assert _money_rows(_ranked(metrics.top_organizations(period, scope))) == expected, where
    top = _ranked(metrics.top_users(Period.preset("30d", TODAY), Scope()))
    assert [row["label"] for row in top] == [
        "cat@globex.test",  # 7,800
        "bob@acme.test",  # 0.0381
        "ann@acme.test",  # 0.027375 (UTC), 0.032125 (New York)
        "dan@solo.test",
    ]


def test_top_users_stops_at_ten(awkward, time_zone):
    users = f.AppUserFactory.create_batch(11)
    ledger.add_usage(
        ModelUsage(
            user=user,
            model_name="gpt-4o",
            provider="openai",
            prompt_tokens=1,
            cost=Decimal(n),
            timestamp=utc(2024, 3, 12, 12),
        )
        for n, user in enumerate(users, start=1)
    )

    top = _ranked(metrics.top_users(Period.preset("7d", TODAY), Scope()))

    # cat ($18M), then the new users from $11 down to $3.
    assert [row["user_id"] for row in top] == [awkward.cat.pk] + [u.pk for u in users[::-1]][:9]
    assert money(top[1]["cost"]) == 11


def _sort_expected(rows, sort):
    """Sort like the page: by the column, ties by model and provider, None last."""
    descending = sort.startswith("-")
    keys = metrics.MODEL_COLUMNS[sort.lstrip("-")]
    rows = sorted(rows, key=lambda r: (r["model_name"], r["provider"]))
    present = [r for r in rows if all(r[k] is not None for k in keys)]
    missing = [r for r in rows if any(r[k] is None for k in keys)]
    present.sort(key=lambda r: tuple(r[k] for k in keys), reverse=descending)
    return present + missing


MODEL_KEYS = (
    "model_name",
    "provider",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost_per_1k_tokens",
    "avg_latency_ms",
    "avg_rating",
    "code_success_rate",
    "mistake_share",
)


def _comparable(row):
    return {**{k: row[k] for k in MODEL_KEYS}, "cost": money(row["cost"])}


ALL_SORTS = (*metrics.MODEL_COLUMNS, *(f"-{key}" for key in metrics.MODEL_COLUMNS))


def assert_models_table(period, scope, sort, raw_rows):
    where = (period, scope, sort)
    got = metrics.models_table(period, scope, sort)
    expected = _sort_expected(
        # the p95 column sorts on the page's (histogram) value
        [{**e, "p95_latency_ms": g["p95_latency_ms"]} for e, g in _pair(raw_rows, got)],
        sort,
    )
    assert [_comparable(r) for r in got] == [_comparable(r) for r in expected], where
    for row, exact in zip(got, expected, strict=True):
        assert_same_bucket(row["p95_latency_ms"], exact["p95_exact_ms"], where)


def test_models_table_equals_plain_sql(awkward, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(awkward):
        assert_models_table(period, scope, "-cost", raw.models_table(period, scope))


def test_models_table_every_sort_equals_plain_sql(awkward, time_zone):
    raw = Raw(time_zone)
    for period, scope in [
        (Period.preset("30d", TODAY), Scope()),
        (Period.preset("90d", TODAY), Scope(user_id=awkward.bob.pk)),  # ties at $0
        (Period.preset("7d", TODAY), Scope(source_id=awkward.tts.pk)),
    ]:
        raw_rows = raw.models_table(period, scope)
        for sort in ALL_SORTS:
            assert_models_table(period, scope, sort, raw_rows)


def _pair(expected_rows, got):
    by_key = {(r["model_name"], r["provider"]): r for r in got}
    assert set(by_key) == {(r["model_name"], r["provider"]) for r in expected_rows}
    return [(e, by_key[(e["model_name"], e["provider"])]) for e in expected_rows]


def test_models_table_concrete(awkward, time_zone):
    rows = metrics.models_table(Period.preset("30d", TODAY), Scope(), "model")
    by_key = {(r["model_name"], r["provider"]): r for r in rows}

    assert [(r["model_name"], r["provider"]) for r in rows] == [
        ("claude-3-5-sonnet", "anthropic"),
        ("gpt-4o", "azure"),
        ("gpt-4o", "openai"),
        ("llama-3-70b", "groq"),
        ("mistral-large", "mistral"),
    ]
    claude = by_key[C]
    assert claude["prompt_tokens"] == 6 * 10**8 + 1000
    # 6·10^8 and a reported 0; the 2 February row is outside the 30 days
    assert claude["cached_input_tokens"] == 6 * 10**8
    assert claude["reasoning_tokens"] == 4 * 10**8
    # ann's 1,000 of 1,200 and bob's 50 on 9 March (three of twelve calls)
    assert by_key[G]["cached_input_tokens"] == 1000 + 3 * 50
    assert by_key[G]["reasoning_tokens"] == 0  # reported, and 0
    # reported by no call: unknown, not 0
    assert by_key[("gpt-4o", "azure")]["cached_input_tokens"] is None
    assert by_key[("gpt-4o", "azure")]["reasoning_tokens"] is None
    assert claude["cost_per_1k_tokens"] == Decimal("7800.018") * 1000 / Decimal(1_000_002_000)
    # ratings 5, 2, 1 (the 1 is 14 Mar 03:30 UTC, 13 Mar in New York: both in 30 days)
    assert by_key[G]["avg_rating"] == pytest.approx(8 / 3)
    assert by_key[G]["code_success_rate"] == pytest.approx(2 / 3)
    assert by_key[G]["mistake_share"] == 0.5
    # matched by model name: azure's gpt-4o shows openai's quality figures
    assert by_key[("gpt-4o", "azure")]["avg_rating"] == pytest.approx(8 / 3)
    llama = by_key[("llama-3-70b", "groq")]
    assert (llama["requests"], llama["unpriced_requests"], llama["cost"]) == (2, 2, 0)
    assert (llama["cached_input_tokens"], llama["reasoning_tokens"]) == (None, 700)
    # Never priced: the cost per 1,000 tokens is unknown, not $0.
    assert llama["cost_per_1k_tokens"] is None
    assert llama["avg_latency_ms"] == 4000  # the NULL request time is not a 0
    assert by_key[("mistral-large", "mistral")]["avg_rating"] is None
    by_cost = metrics.models_table(Period.preset("30d", TODAY), Scope(), "-cost")
    assert by_cost[-1]["model_name"] == "llama-3-70b"  # unpriced: $0, last


def test_cost_by_model_equals_plain_sql(awkward, time_zone):
    raw = Raw(time_zone)
    for period, scope in combinations(awkward):
        got = [(m, p, money(c), t, n) for m, p, c, t, n in metrics.cost_by_model(period, scope)]
        assert got == raw.cost_by_model(period, scope), (period, scope)


# -- budgets --------------------------------------------------------------------


def test_budget_statuses_equal_plain_sql(awkward, time_zone):
    raw = Raw(time_zone)
    expected = raw.budgets(TODAY)

    statuses = metrics.budget_statuses(today=TODAY)

    assert len(statuses) == 4
    for status in statuses:
        want = expected[status.budget.pk]
        assert money(status.spent) == want["spent"], status
        assert status.projected == pytest.approx(want["projected"], rel=Decimal("1e-12"))
        assert status.share == pytest.approx(want["share"], rel=1e-12)
    # Worst first: over, at risk, on track; within a state by share spent.
    ranks = [metrics.STATE_RANK[s.state] for s in statuses]
    assert ranks == sorted(ranks)
    for state in metrics.BudgetState.values:
        shares = [s.share for s in statuses if s.state == state]
        assert shares == sorted(shares, reverse=True)
    states = {str(s.budget.organization or s.budget.user): s.state for s in statuses}
    assert (
        states
        == {
            "Globex": "over",  # 7,800.0455 > 5,000
            "ann@acme.test": "at risk",  # 0.019875 of 0.02, projected 0.044
            "Acme": "on track",  # 0.058 of $1, projected 0.128
            "dan@solo.test": "on track",
        }
        if time_zone == "UTC"
        else {
            "Globex": "over",
            "ann@acme.test": "over",  # New York: 0.023375 > 0.02
            "Acme": "on track",
            "dan@solo.test": "on track",
        }
    )
    for status in statuses:
        want = expected[status.budget.pk]
        limit = status.budget.monthly_limit
        assert status.state == (
            "over"
            if want["spent"] > limit
            else "at risk"
            if want["projected"] > limit
            else "on track"
        )


def test_budget_statuses_concrete_and_scoped(awkward, time_zone):
    ann = metrics.budget_statuses(today=TODAY, scope=Scope(user_id=awkward.ann.pk))

    assert [s.budget for s in ann] == [awkward.budgets.ann]
    (status,) = ann
    if time_zone == "UTC":
        # 1 Mar 00:00:00 (0.00125) + 13 Mar 0.006 + 14 Mar 0.0125 + 0.000125;
        # 15 Mar 02:00 UTC is after today.
        assert money(status.spent) == Decimal("0.019875")
    else:
        # 1 Mar 00:00 UTC is 29 Feb in New York; 15 Mar 02:00 UTC is 14 Mar.
        assert money(status.spent) == Decimal("0.023375")
    assert status.projected == status.spent * 31 / 14
    orgs = metrics.budget_statuses(today=TODAY, scope=Scope(organization_id=awkward.globex.pk))
    assert [s.budget for s in orgs] == [awkward.budgets.globex]


# -- p95 from the histogram --------------------------------------------------


def test_p95_stays_in_the_bucket_when_the_rank_ends_a_bucket(time_zone):
    # 19 calls under 50 ms and one of 5 s: the 19th of 20 (the p95) is < 50 ms.
    times = [10 + i for i in range(19)] + [5000]
    ledger.add_usage(
        ModelUsage(
            model_name="gpt-4o",
            provider="openai",
            cost=Decimal("0.001"),
            timestamp=utc(2024, 3, 14, 12),
            request_time_ms=ms,
        )
        for ms in times
    )

    p95 = metrics.totals(Period(TODAY, TODAY), Scope())["p95_latency_ms"]

    assert nearest_rank(times) == 28
    assert latency_bucket(p95) == 0
    assert 0 <= p95 < 50


def test_percentile_from_histogram_in_bucket_for_every_rank():
    for counts in ({0: 1}, {0: 19, 1: 1}, {3: 5, 4: 95}, {2: 100}, {17: 1, 18: 2}, {1: 3, 5: 7}):
        values = [b for b, n in counts.items() for _ in range(n)]
        exact_bucket = nearest_rank(values)
        p95 = metrics.percentile_from_histogram(counts, 0.95)
        assert latency_bucket(p95) == exact_bucket, (counts, p95)


# -- roll-up maintenance changes no figure ----------------------------------


def snapshot(data):
    """Every figure for every period and most scopes, plus the budgets."""
    figures = []
    for period, scope in combinations(data)[::2]:
        figures.append(
            (
                metrics.totals(period, scope),
                [(f.key, f.value, f.previous, f.change) for f in metrics.headline(period, scope)],
                metrics.cost_per_day_by_model(period, scope),
                metrics.tokens_per_day(period, scope),
                metrics.cost_by_provider(period, scope),
                metrics.top_users(period, scope),
                metrics.top_organizations(period, scope),
                metrics.models_table(period, scope),
                metrics.cost_per_day(period, scope),
                metrics.cost_by_model(period, scope),
            )
        )
    budgets = [
        (s.budget.pk, s.spent, s.projected, s.share, s.state)
        for s in metrics.budget_statuses(today=TODAY)
    ]
    return _normalised(figures), _normalised(budgets)


def _normalised(value):
    """Decimals compared as 8-place money (SQLite's float sums)."""
    if isinstance(value, Decimal):
        return value.quantize(Decimal("1e-12"))
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalised(v) for v in value]
    if isinstance(value, float):
        return round(value, 9)
    return value


def test_one_row_per_key_and_rebuild_change_no_figure(awkward, time_zone):
    before = snapshot(awkward)
    keys = DailyUsage.objects.values_list(
        "day", "model_name", "provider", "organization_id", "source_id", "user_id"
    )
    assert len(keys) == len(set(keys))  # writers upsert by key: nothing to merge
    ledger.rebuild()
    assert snapshot(awkward) == before


def test_rebuild_after_changing_the_zone_cuts_days_in_the_new_zone(awkward, settings, time_zone):
    other = "UTC" if time_zone != "UTC" else "America/New_York"
    settings.TIME_ZONE = other
    period, ann = Period(dt.date(2024, 3, 13), dt.date(2024, 3, 14)), awkward.ann.pk
    stale = dict(metrics.cost_per_day(period, Scope(user_id=ann)))

    # After a change of TIME_ZONE both kinds of roll-up are rebuilt (DEPLOY.md).
    ledger.rebuild()
    call_command("rebuild_quality_rollups", stdout=io.StringIO())

    raw = Raw(other)
    fresh = dict(metrics.cost_per_day(period, Scope(user_id=ann)))
    assert fresh != stale  # the roll-up is cut in the zone in force when written
    for period, scope in combinations(awkward):
        assert_totals(metrics.totals(period, scope), raw.totals(period, scope), (period, scope))
        got = [(d, m, money(c)) for d, m, c in metrics.cost_per_day_by_model(period, scope)]
        assert got == raw.cost_per_day_by_model(period, scope)
        assert metrics.tokens_per_day(period, scope) == raw.tokens_per_day(period, scope)


def test_moved_rows_leave_no_zero_provider_or_model(awkward, time_zone):
    """upsert_usage moving rows to another model and provider empties the
    old key (its roll-up rows are deleted); no figure may show it."""
    moved = [
        ModelUsage(
            user=awkward.dan,
            model_name="mistral-large",
            provider="mistral",
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost=usage.cost,
            timestamp=usage.timestamp,
            is_streaming=usage.is_streaming,
            request_time_ms=usage.request_time_ms,
            source_pk=usage.source_pk,
        )
        for usage in ModelUsage.objects.filter(provider="azure")
    ]
    assert len(moved) == 2
    assert len(ledger.upsert_usage(awkward.aa, moved)["updated"]) == 2
    # The emptied key is gone from the roll-ups.
    assert not DailyUsage.objects.filter(provider="azure").exists()
    raw = Raw(time_zone)
    period = Period.preset("7d", TODAY)

    providers = [p for p, _ in metrics.cost_by_provider(period, Scope(user_id=awkward.dan.pk))]
    days = [(d, m) for d, m, _ in metrics.cost_per_day_by_model(period, Scope(provider="azure"))]

    assert providers == ["mistral"]
    assert days == []
    for period, scope in combinations(awkward):
        got = [(p, money(c)) for p, c in metrics.cost_by_provider(period, scope)]
        assert got == raw.cost_by_provider(period, scope), (period, scope)
        got = [(d, m, money(c)) for d, m, c in metrics.cost_per_day_by_model(period, scope)]
        assert got == raw.cost_per_day_by_model(period, scope), (period, scope)
        assert_totals(metrics.totals(period, scope), raw.totals(period, scope), (period, scope))


def test_every_figure_from_the_raw_ledger_equals_the_rollups(awkward, time_zone):
    # LedgerReader computes the same figures straight from usage_modelusage:
    # the roll-ups (both grains) must agree with it on every period and scope.
    from_rollups = snapshot(awkward)

    with metrics.reading_from(metrics.LedgerReader()):
        from_ledger = snapshot(awkward)

    for ledger_part, rollup_part in zip(from_ledger, from_rollups, strict=True):
        for index, (ledger_value, rollup_value) in enumerate(
            zip(ledger_part, rollup_part, strict=True)
        ):
            assert ledger_value == rollup_value, index


def test_pages_read_the_smallest_roll_up_with_the_columns_they_need(awkward, time_zone):
    period = Period(dt.date(2024, 3, 1), dt.date(2024, 3, 14))
    reader = metrics.RollupReader()

    assert reader.usage(period, Scope()).model is rollups.DailyTotal
    assert reader.latency(period, Scope()).model is rollups.DailyTotalLatency
    org = Scope(organization_id=awkward.acme.pk)
    assert reader.usage(period, org).model is rollups.DailyModelUsage
    assert reader.latency(period, Scope(source_id=awkward.aa.pk)).model is rollups.DailyModelLatency
    assert reader.usage(period, Scope(), "organization_id").model is rollups.DailyModelUsage
    assert reader.usage(period, Scope(user_id=awkward.ann.pk)).model is DailyUsage
    assert reader.latency(period, Scope(user_id=awkward.ann.pk)).model is rollups.DailyLatency
    assert reader.user_sums(period, Scope(), n="requests").model is rollups.UserUsage


def test_the_reader_in_force_is_local_to_its_context():
    """``reading_from`` is a ContextVar: a comparison in one thread (or task)
    never changes what another request reads."""
    ledger_reader = metrics.LedgerReader()
    seen = {}

    def other_request():
        seen["reader"] = metrics.current_reader()

    with metrics.reading_from(ledger_reader):
        assert metrics.current_reader() is metrics.reader is ledger_reader
        thread = threading.Thread(target=other_request)
        thread.start()
        thread.join()
    assert seen["reader"] is metrics.ROLLUP_READER
    assert metrics.current_reader() is metrics.ROLLUP_READER
