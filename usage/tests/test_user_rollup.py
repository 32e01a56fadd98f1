"""UserUsage: the per-app-user roll-up by day and by month, and how the
figures that rank and count app users add its rows up to a period."""

import datetime as dt
import functools
import itertools
from decimal import Decimal

import pytest

from core.tests import factories as f
from usage import ledger, metrics, rollups
from usage.metrics import LedgerReader, Period, RollupReader, Scope, SpanPlan, span_plan
from usage.models import ModelUsage, UserUsage

from .conftest import TODAY, utc

pytestmark = pytest.mark.django_db

D = dt.date
MARCH, FEBRUARY = D(2024, 3, 1), D(2024, 2, 1)


# -- the plan ---------------------------------------------------------------------


def test_a_short_period_reads_its_days():
    plan = span_plan(Period(D(2024, 3, 8), D(2024, 3, 14)), today=TODAY)
    assert plan == SpanPlan(added_days=((D(2024, 3, 8), D(2024, 3, 14)),))


def test_a_whole_month_reads_the_month_row_alone():
    plan = span_plan(Period(FEBRUARY, D(2024, 2, 29)), today=TODAY)
    assert plan == SpanPlan(months=(FEBRUARY,))


def test_month_to_date_reads_the_month_less_the_days_after_today():
    # 14 days inside; outside, 15–31 March, which hold no rows yet.
    plan = span_plan(Period(MARCH, TODAY), today=TODAY)
    assert plan == SpanPlan(months=(MARCH,), removed_days=((D(2024, 3, 15), D(2024, 3, 31)),))


def test_thirty_days_read_each_month_the_cheaper_way():
    plan = span_plan(Period(D(2024, 2, 14), TODAY), today=TODAY)
    # February: 16 days inside, 13 outside, so the month less 1–13 Feb;
    # March: the month less the days after today.
    assert plan == SpanPlan(
        months=(FEBRUARY, MARCH),
        removed_days=((FEBRUARY, D(2024, 2, 13)), (D(2024, 3, 15), D(2024, 3, 31))),
    )
    # Seen from the end of March, the days after 14 March hold rows: read days.
    plan = span_plan(Period(D(2024, 2, 14), TODAY), today=D(2024, 3, 31))
    assert plan.added_days == ((D(2024, 3, 1), TODAY),)
    assert plan.months == (FEBRUARY,)


def test_a_period_across_a_year_end():
    plan = span_plan(Period(D(2023, 12, 20), D(2024, 1, 31)), today=TODAY)
    assert plan == SpanPlan(
        added_days=((D(2023, 12, 20), D(2023, 12, 31)),), months=(D(2024, 1, 1),)
    )


# -- the writers keep it, a rebuild gives the same rows --------------------------


def rows(span):
    return sorted(
        (
            row.day,
            row.user_id or 0,
            row.organization_id or 0,
            row.requests,
            row.total_tokens,
            row.cost,
        )
        for row in UserUsage.objects.filter(span=span)
        if row.requests
    )


def merged(span):
    """The roll-up's rows summed per key (writers append delta rows)."""
    totals = {}
    for row in UserUsage.objects.filter(span=span):
        key = (row.day, row.user_id or 0, row.organization_id or 0)  # None sorts as 0
        n, tokens, cost = totals.get(key, (0, 0, Decimal(0)))
        totals[key] = (n + row.requests, tokens + row.total_tokens, cost + row.cost)
    return sorted((*key, *value) for key, value in totals.items() if value[0])


def test_writers_and_rebuild_agree_on_days_and_months(awkward):
    # Move cat's February call into March: deltas of both signs, two months.
    moved = ModelUsage(
        user=awkward.cat,
        model_name="claude-3-5-sonnet",
        provider="anthropic",
        prompt_tokens=2000,
        completion_tokens=400,
        cost=Decimal("0.02"),
        timestamp=utc(2024, 3, 3, 12),
        source_pk="r13",
    )
    assert len(ledger.upsert_usage(awkward.tts, [moved])["updated"]) == 1
    # Moved in place: no negative delta rows, one row per key.
    assert not UserUsage.objects.filter(requests__lt=0).exists()
    keys = UserUsage.objects.values_list("span", "day", "user_id", "organization_id")
    assert len(keys) == len(set(keys))
    by_writers = {span: merged(span) for span in ("day", "month")}

    ledger.rebuild()

    assert {span: rows(span) for span in ("day", "month")} == {
        span: [(d, u, o, n, t, Decimal(c)) for d, u, o, n, t, c in by_writers[span]]
        for span in ("day", "month")
    }
    months = {row[0] for row in by_writers["month"]}
    assert months == {FEBRUARY, MARCH}


def test_month_rows_sum_the_day_rows(awkward):
    ledger.rebuild()
    by_month = {}
    for day, user, org, n, tokens, cost in rows("day"):
        key = (day.replace(day=1), user, org)
        total = by_month.get(key, (0, 0, Decimal(0)))
        by_month[key] = (total[0] + n, total[1] + tokens, total[2] + Decimal(cost))
    assert sorted((*k, *v) for k, v in by_month.items()) == [
        (d, u, o, n, t, Decimal(c)) for d, u, o, n, t, c in rows("month")
    ]


def test_deleting_an_app_user_forgets_them_in_every_span(awkward):
    ann = awkward.ann.pk
    assert UserUsage.objects.filter(user_id=ann, span="month").exists()
    awkward.ann.delete()
    assert not UserUsage.objects.filter(user_id=ann).exists()


# -- per-user sums equal the ledger's for any period and any today ------------------


def as_dict(queryset):
    return {
        row["user_id"]: (
            row["n"],
            row["tokens"],
            Decimal(str(row["cost"])).quantize(Decimal("1e-8")),
        )
        for row in queryset
        if row["n"]
    }


def sums(reader, period, scope):
    return as_dict(
        reader.user_sums(period, scope, n="requests", tokens="total_tokens", cost="cost")
    )


EDGES = [
    D(2024, 1, 31),
    D(2024, 2, 1),
    D(2024, 2, 2),
    D(2024, 2, 14),
    D(2024, 2, 29),
    D(2024, 3, 1),
    D(2024, 3, 9),
    D(2024, 3, 14),
    D(2024, 3, 15),
    D(2024, 3, 31),
]


@pytest.mark.parametrize("today", [D(2024, 2, 20), TODAY, D(2024, 4, 30)])
def test_user_sums_equal_the_ledger_for_every_period(awkward, monkeypatch, today):
    """Every period between month edges, seen from three 'todays' (so each
    month is read both ways), for all app users, one organisation and one
    user; the ledger holds a row dated after TODAY (15 March) and rows on
    both sides of each month edge."""
    f.AppUserFactory()  # a user without usage is never listed
    monkeypatch.setattr(metrics, "span_plan", functools.partial(span_plan, today=today))
    scopes = [Scope(), Scope(organization_id=awkward.acme.pk), Scope(user_id=awkward.ann.pk)]
    plans = set()
    for start, end in itertools.combinations_with_replacement(EDGES, 2):
        period = Period(start, end)
        plans.add(bool(metrics.span_plan(period).removed_days))
        for scope in scopes:
            expected = sums(LedgerReader(), period, scope)
            assert sums(RollupReader(), period, scope) == expected, (period, scope)
    assert plans == {True, False}  # both ways were taken


def test_active_and_top_users_read_the_user_roll_up_unless_a_model_is_chosen(awkward):
    period = Period(D(2024, 2, 14), TODAY)
    reader = RollupReader()
    assert reader.user_sums(period, Scope(), n="requests").model is UserUsage
    scope = Scope(organization_id=awkward.acme.pk)
    assert reader.user_sums(period, scope, n="requests").model is UserUsage
    for scope in (Scope(model_name="gpt-4o"), Scope(provider="azure"), Scope(source_id=1)):
        assert reader.user_sums(period, scope, n="requests").model is rollups.DailyUsage
