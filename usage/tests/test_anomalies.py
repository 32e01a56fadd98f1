"""Anomalies (usage.anomalies) on planted data: spikes, weekly seasonality,
new models, quiet series; the same findings from the raw ledger; links to
the rows behind each."""

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client

from core.tests import factories as f
from usage import anomalies, ledger
from usage.anomalies import Rule
from usage.metrics import LedgerReader, reading_from
from usage.models import ModelUsage

pytestmark = pytest.mark.django_db

DAY = dt.date(2024, 3, 14)  # a Thursday
RULE = Rule(min_cost=Decimal("1.00"), min_requests=5)


def calls(day, cost, n=1, model=("gpt-4o", "openai"), user=None, hour=12, tz=dt.UTC):
    """``n`` calls on a local day costing ``cost`` in all (reported)."""
    each = Decimal(cost) / n
    return [
        ModelUsage(
            user=user,
            model_name=model[0],
            provider=model[1],
            prompt_tokens=100,
            completion_tokens=50,
            cost=each,
            timestamp=dt.datetime.combine(day, dt.time(hour, i % 60), tzinfo=tz),
        )
        for i in range(n)
    ]


def history(cost_of_day, days=28, end=DAY, **kwargs):
    rows = []
    for back in range(days, 0, -1):
        day = end - dt.timedelta(days=back)
        rows += calls(day, cost_of_day(day), **kwargs)
    return rows


def keys(found, measure="cost"):
    return {(a.dimension, a.key) for a in found if a.measure == measure}


def test_robust_baseline_is_median_and_scaled_mad_with_a_floor():
    days = {DAY - dt.timedelta(days=n): v for n, v in enumerate([10, 12, 8, 10, 50, 10, 11], 1)}

    baseline, median, weekday, spread = anomalies.robust_baseline(days, DAY)

    assert median == 10
    assert weekday is None  # one earlier Thursday only
    # |deviations| 0,2,2,0,40,0,1 → MAD 1 → 1.4826; the floor 0.2 × 10 = 2 wins
    assert baseline == 10
    assert spread == pytest.approx(2.0)


def test_a_planted_spike_is_found_with_its_size_and_baseline(time_zone):
    org = f.OrganizationFactory(name="Acme")
    ann = f.AppUserFactory(organization=org, email="ann@acme.test")
    ledger.add_usage(history(lambda d: "2.00", user=ann) + calls(DAY, "30.00", user=ann))

    found = anomalies.find(DAY, RULE)

    assert keys(found) == {
        ("model", ("gpt-4o", "openai")),
        ("provider", ("openai",)),
        ("organization", (org.pk,)),
        ("user", (ann.pk,)),
    }
    model = next(a for a in found if a.dimension == "model")
    assert model.value == Decimal("30.00")
    assert model.baseline == pytest.approx(2.0)
    assert model.size == pytest.approx(15.0)
    assert model.history_days == 28
    assert model.label == "model gpt-4o (openai)"
    assert next(a for a in found if a.dimension == "organization").label == "organisation Acme"
    # one call a day: requests did not move
    assert keys(found, "requests") == set()


def test_no_alarm_within_the_run_rate_or_on_a_day_before_the_spike(time_zone):
    # noisy but steady: 2–4 dollars a day, today 5 (< 3 + 5 × spread)
    ledger.add_usage(history(lambda d: str(2 + d.day % 3)) + calls(DAY, "5.00"))

    assert anomalies.find(DAY, RULE) == []


def test_weekly_seasonality_a_busy_weekday_is_its_own_baseline(time_zone):
    # Mondays cost 40, other days 4: a Monday at 42 is normal, 200 is not.
    monday = dt.date(2024, 3, 18)
    ledger.add_usage(
        history(lambda d: "40" if d.weekday() == 0 else "4", end=monday) + calls(monday, "42")
    )

    assert anomalies.find(monday, RULE) == []

    ledger.add_usage(calls(monday, "158", hour=13))
    found = anomalies.find(monday, RULE)
    model = next(a for a in found if a.dimension == "model")
    assert model.value == Decimal("200")
    assert model.median == pytest.approx(4.0)
    assert model.weekday_median == pytest.approx(40.0)
    assert model.baseline == pytest.approx(40.0)


def test_a_quiet_day_after_busy_mondays_is_not_measured_against_mondays(time_zone):
    # Weekdays other than Monday stay at 4; a Tuesday at 30 alarms.
    tuesday = dt.date(2024, 3, 19)
    ledger.add_usage(
        history(lambda d: "40" if d.weekday() == 0 else "4", end=tuesday) + calls(tuesday, "30")
    )

    found = anomalies.find(tuesday, RULE)

    assert ("model", ("gpt-4o", "openai")) in keys(found)


def test_a_new_models_first_small_day_does_not_alarm(time_zone):
    ledger.add_usage(history(lambda d: "5") + calls(DAY, "5"))
    ledger.add_usage(calls(DAY, "0.40", n=3, model=("o1", "openai")))

    assert anomalies.find(DAY, RULE) == []


def test_a_new_models_first_big_day_is_reported_as_new(time_zone):
    ledger.add_usage(calls(DAY, "25", n=10, model=("o1", "openai")))

    found = anomalies.find(DAY, RULE)

    o1 = {a.measure: a for a in found if a.dimension == "model"}
    assert set(o1) == {"cost", "requests"}
    assert o1["cost"].is_new and o1["cost"].size is None and o1["cost"].baseline == 0


def test_a_model_new_last_week_is_measured_from_its_first_day(time_zone):
    # o1 appeared five days ago at $3/day; zeros before that are not its run rate.
    ledger.add_usage(
        history(lambda d: "3", days=5, model=("o1", "openai"))
        + calls(DAY, "3.5", model=("o1", "openai"))
    )

    assert anomalies.find(DAY, RULE) == []


def test_quiet_series_under_the_minimum_volume_never_alarm(time_zone):
    ledger.add_usage(history(lambda d: "0.01") + calls(DAY, "0.90"))

    assert anomalies.find(DAY, RULE) == []
    # the same series with a lower minimum does
    assert keys(anomalies.find(DAY, Rule(min_cost=Decimal("0.50"), min_requests=5)))


def test_request_spikes_count_calls(time_zone):
    ledger.add_usage(history(lambda d: "0.10", n=2) + calls(DAY, "0.10", n=40))

    found = anomalies.find(DAY, RULE)

    assert keys(found, "cost") == set()  # 10 cents: under the minimum
    model = next(a for a in found if a.dimension == "model" and a.measure == "requests")
    assert model.value == 40 and model.baseline == 2


@pytest.mark.parametrize("time_zone", ["America/New_York"], indirect=True)
def test_days_are_local_days_and_the_ledger_agrees(time_zone):
    """A spike at 02:00 UTC on the 15th is on the 14th in New York; the raw
    ledger (LedgerReader) finds the same anomalies as the roll-ups."""
    ann = f.AppUserFactory(organization=f.OrganizationFactory())
    zone = dt.timezone(dt.timedelta(hours=-4))  # EDT
    ledger.add_usage(history(lambda d: "2", user=ann, tz=zone))
    ledger.add_usage(
        [
            ModelUsage(
                user=ann,
                model_name="gpt-4o",
                provider="openai",
                prompt_tokens=1,
                completion_tokens=1,
                cost=Decimal("40"),
                timestamp=dt.datetime(2024, 3, 15, 2, tzinfo=dt.UTC),
            )
        ]
    )

    rollups = anomalies.find(DAY, RULE)
    with reading_from(LedgerReader()):
        raw = anomalies.find(DAY, RULE)

    assert len(keys(rollups)) == 4
    assert [(a.dimension, a.key, a.measure, a.value, a.baseline) for a in rollups] == [
        (a.dimension, a.key, a.measure, a.value, a.baseline) for a in raw
    ]
    assert anomalies.find(DAY + dt.timedelta(days=1), RULE) == []


def test_each_anomaly_links_to_the_ledger_rows_behind_it(time_zone, manager):
    org = f.OrganizationFactory(name="Acme")
    ann = f.AppUserFactory(organization=org, email="ann@acme.test")
    bob = f.AppUserFactory(organization=org, email="bob@acme.test")
    ledger.add_usage(history(lambda d: "2", user=ann) + calls(DAY, "30", n=3, user=ann))
    # the day before and another model: not behind the model's anomaly
    ledger.add_usage(calls(DAY, "0.5", user=bob, model=("o1", "openai")))
    client = Client()
    client.force_login(manager)

    found = {a.dimension: a for a in anomalies.find(DAY, RULE) if a.measure == "cost"}

    expected = {"model": 3, "provider": 4, "organization": 4, "user": 3}
    for dimension, rows in expected.items():
        response = client.get(found[dimension].links["rows"])
        assert response.status_code == 200, dimension
        assert response.context["cl"].result_count == rows, dimension
        assert client.get(found[dimension].links["dashboard"]).status_code == 200


def test_find_reads_one_query_per_dimension_whatever_the_series(
    time_zone, django_assert_num_queries
):
    orgs = [f.OrganizationFactory() for _ in range(3)]
    users = [f.AppUserFactory(organization=org) for org in orgs]
    for n, user in enumerate(users):
        model = (f"model-{n}", "openai")
        ledger.add_usage(
            history(lambda d: "2", user=user, model=model)
            + calls(DAY, "40", user=user, model=model)
        )

    # four roll-up reads (model, provider, organisation, app user) and the
    # organisations' and app users' names
    with django_assert_num_queries(6):
        found = anomalies.find(DAY, RULE)

    assert len(keys(found)) == 3 + 1 + 3 + 3
