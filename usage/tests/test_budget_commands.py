"""manage.py check_budgets (for cron) and manage.py recompute_costs."""

import datetime as dt
import os
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from core.tests import factories as f
from usage import ledger, metrics
from usage.metrics import Period, Scope
from usage.models import DailyUsage, ModelPrice, ModelUsage

from .conftest import utc

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
HEADER = f"{'budget for':<40} {'limit':>12} {'spent':>12} {'used':>7} {'projected':>12}  state"


def _row(user, cost, when, model="gpt-4o", provider="openai", **extra):
    return ModelUsage(
        user=user,
        model_name=model,
        provider=provider,
        prompt_tokens=extra.pop("prompt_tokens", 1000),
        completion_tokens=extra.pop("completion_tokens", 500),
        cost=None if cost is None else Decimal(cost),
        timestamp=when,
        **extra,
    )


def check_budgets():
    """(output lines, CommandError or None) of ``check_budgets``."""
    out = StringIO()
    try:
        call_command("check_budgets", stdout=out, no_color=True)
    except CommandError as error:
        return out.getvalue().splitlines(), error
    return out.getvalue().splitlines(), None


# -- check_budgets ---------------------------------------------------------------


@pytest.fixture
def budgets(time_zone, fixed_today):
    """Acme ($100, alert at 80%) spent 23 by bob and ann; ann ($5, alert at 50%) 3."""
    acme = f.OrganizationFactory(name="Acme")
    ann = f.AppUserFactory(organization=acme, email="ann@acme.test")
    bob = f.AppUserFactory(organization=acme, email="bob@acme.test")
    ledger.add_usage(
        [
            _row(bob, "20", utc(2024, 3, 2, 9)),
            _row(ann, "1", utc(2024, 3, 1, 0, 0, 0)),
            _row(ann, "2", utc(2024, 3, 14, 23, 59, 59)),
            # Outside the month to date: last day of February, and tomorrow.
            _row(ann, "50", utc(2024, 2, 29, 23, 59, 59)),
            _row(ann, "50", utc(2024, 3, 15, 0, 0, 0)),
        ]
    )
    f.BudgetFactory(organization=acme, monthly_limit=Decimal("100.00"))
    f.BudgetFactory(
        organization=None, user=ann, monthly_limit=Decimal("5.00"), alert_threshold=Decimal("0.5")
    )
    return ann


def test_check_budgets_without_budgets_says_so():
    assert check_budgets() == (["No budgets."], None)


def test_check_budgets_prints_spend_and_projection_and_exits_0(budgets):
    lines, error = check_budgets()

    assert error is None
    # 14 of 31 days: projected = spent / 14 × 31. Worst first: ann is at risk
    # (projected 6.64 > 5), Acme on track.
    assert lines == [
        HEADER,
        f"{'ann@acme.test':<40} {'5.00':>12} {'3.00':>12} {'60.0':>6}% {'6.64':>12}  at risk",
        f"{'Acme':<40} {'100.00':>12} {'23.00':>12} {'23.0':>6}% {'50.93':>12}  on track",
    ]
    statuses = metrics.budget_statuses()
    assert [(s.spent, s.state) for s in statuses] == [(3, "at risk"), (23, "on track")]


def test_check_budgets_exits_1_when_a_budget_is_exceeded(budgets):
    ledger.add_usage([_row(budgets, "2.01", utc(2024, 3, 10, 12))])

    lines, error = check_budgets()

    assert isinstance(error, CommandError)
    assert error.returncode == 1
    assert str(error) == "1 budget(s) exceeded."
    assert lines[1] == (
        f"{'ann@acme.test':<40} {'5.00':>12} {'5.01':>12} {'100.2':>6}% {'11.09':>12}  over"
    )
    assert lines[2].endswith(" 25.01   25.0%        55.38  on track")


def test_check_budgets_spent_equal_to_the_limit_is_not_exceeded(budgets):
    ledger.add_usage([_row(budgets, "2", utc(2024, 3, 10, 12))])

    lines, error = check_budgets()

    assert error is None
    assert lines[1].endswith("        5.00         5.00  100.0%        11.07  at risk")


def _manage(database, *args):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    return subprocess.run(  # noqa: S603 — our own manage.py with fixed arguments
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.django_db(False)
def test_check_budgets_exit_code_for_cron(tmp_path):
    """As cron runs it: a process of its own, on a database of its own."""
    database = tmp_path / "cron.sqlite3"
    assert _manage(database, "migrate", "--verbosity", "0").returncode == 0
    setup = (
        "from decimal import Decimal\n"
        "from django.utils import timezone\n"
        "from core.models import Organization\n"
        "from usage.ledger import add_usage\n"
        "from usage.models import Budget, ModelUsage\n"
        "org, _ = Organization.objects.get_or_create(slug='acme', name='Acme')\n"
        "Budget.objects.get_or_create(organization=org, monthly_limit=Decimal('10.00'))\n"
        "add_usage([ModelUsage(organization=org, model_name='gpt-4o', provider='openai',\n"
        "                      cost=Decimal('{cost}'), timestamp=timezone.now())])\n"
    )
    assert _manage(database, "shell", "-c", setup.format(cost="4")).returncode == 0

    fine = _manage(database, "check_budgets")

    assert fine.returncode == 0, fine.stderr
    assert fine.stdout.splitlines()[0] == HEADER
    assert fine.stdout.splitlines()[1].startswith(f"{'Acme':<40} {'10.00':>12} {'4.00':>12}")
    assert _manage(database, "shell", "-c", setup.format(cost="6.5")).returncode == 0

    exceeded = _manage(database, "check_budgets")

    assert exceeded.returncode == 1
    assert "10.50" in exceeded.stdout
    assert exceeded.stdout.rstrip().endswith("over")
    assert exceeded.stderr.strip() == "CommandError: 1 budget(s) exceeded."


# -- recompute_costs ---------------------------------------------------------


def _ledger_sql():
    """{(model, provider, cost_source): (rows, cost in 10^-8 $)} from the raw ledger."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT model_name, provider, cost_source, COUNT(*), "
            "SUM(ROUND(cost * 100000000)) FROM usage_modelusage "
            "GROUP BY model_name, provider, cost_source"
        )
        return {(m, p, s): (n, int(c) if c is not None else None) for m, p, s, n, c in cursor}


def _rollup_equals_ledger():
    """DailyUsage per day, model and provider equals the raw ledger (UTC days)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT timestamp, model_name, provider, cost FROM usage_modelusage")
        ledger_rows = cursor.fetchall()
        cursor.execute(
            "SELECT day, model_name, provider, SUM(requests), SUM(ROUND(cost * 100000000)), "
            "SUM(unpriced_requests) FROM usage_dailyusage GROUP BY day, model_name, provider"
        )
        rollup = {(str(day), m, p): (n, int(c), u) for day, m, p, n, c, u in cursor.fetchall() if n}
    expected = defaultdict(lambda: [0, 0, 0])
    for timestamp, model, provider, cost in ledger_rows:
        if isinstance(timestamp, str):
            timestamp = dt.datetime.fromisoformat(timestamp)
        key = (str(timestamp.date()), model, provider)
        expected[key][0] += 1
        if cost is None:
            expected[key][2] += 1
        else:
            expected[key][1] += int(Decimal(str(cost)) * 10**8)
    assert rollup == {key: tuple(value) for key, value in expected.items()}
    return rollup


@pytest.fixture
def priced(time_zone):
    """gpt-4o at $2.50/$10 per million from 1 Jan 2024; llama has no price."""
    f.ModelPriceFactory(
        model_name="gpt-4o",
        provider="openai",
        input_per_million=Decimal("2.5"),
        output_per_million=Decimal("10"),
        effective_from=dt.date(2024, 1, 1),
    )
    user = f.AppUserFactory()
    rows = ledger.add_usage(
        [
            _row(user, None, utc(2024, 3, 9, 23, 59, 59)),  # computed 0.0075
            _row(user, None, utc(2024, 3, 10, 0, 0, 0)),  # computed 0.0075
            _row(
                user,
                None,
                utc(2024, 3, 12, 8),
                prompt_tokens=6 * 10**8,
                completion_tokens=4 * 10**8,
            ),  # computed 5,500
            _row(user, "0.5", utc(2024, 3, 11, 8)),  # reported
            _row(user, "0", utc(2024, 3, 11, 9)),  # reported, free
            _row(None, None, utc(2024, 3, 11, 10), model="llama-3-70b", provider="groq"),
            _row(None, None, utc(2024, 3, 11, 11), model="gpt-4o", provider="azure"),
        ]
    )
    return rows


def _costs(rows):
    return [
        (usage.cost, usage.cost_source)
        for usage in ModelUsage.objects.filter(pk__in=[r.pk for r in rows]).order_by("pk")
    ]


C, R, U = (
    ModelUsage.CostSource.COMPUTED,
    ModelUsage.CostSource.REPORTED,
    ModelUsage.CostSource.UNPRICED,
)


def test_rows_are_priced_on_the_way_in(priced):
    assert _costs(priced) == [
        (Decimal("0.0075"), C),
        (Decimal("0.0075"), C),
        (Decimal("5500"), C),
        (Decimal("0.5"), R),
        (Decimal("0"), R),
        (None, U),
        (None, U),
    ]
    _rollup_equals_ledger()


def _recompute(*args):
    out = StringIO()
    call_command("recompute_costs", *args, stdout=out, no_color=True)
    return out.getvalue().strip()


def test_recompute_after_a_price_change(priced):
    # Halved from 10 March; and llama gets a price from 1 January.
    ModelPrice.objects.create(
        model_name="gpt-4o",
        provider="openai",
        input_per_million=Decimal("1.25"),
        output_per_million=Decimal("5"),
        effective_from=dt.date(2024, 3, 10),
    )
    ModelPrice.objects.create(
        model_name="llama-3-70b",
        provider="groq",
        input_per_million=Decimal("0.6"),
        output_per_million=Decimal("0.8"),
        effective_from=dt.date(2024, 1, 1),
    )

    # Computed and unpriced rows are checked (5); the three after 10 March
    # that have a new price, and llama, change.
    assert _recompute() == "Checked 5 priced rows; changed 3."

    assert _costs(priced) == [
        (Decimal("0.0075"), C),  # 9 March 23:59:59 keeps the old price
        (Decimal("0.00375"), C),  # 10 March 00:00:00 takes the new one
        (Decimal("2750"), C),
        (Decimal("0.5"), R),  # reported costs are never touched
        (Decimal("0"), R),
        (Decimal("0.001"), C),  # 1000 × 0.6 + 500 × 0.8 per million
        (None, U),  # azure's gpt-4o still has no price
    ]
    assert _ledger_sql() == {
        ("gpt-4o", "openai", "computed"): (3, 275000000000 + 750000 + 375000),
        ("gpt-4o", "openai", "reported"): (2, 50000000),
        ("llama-3-70b", "groq", "computed"): (1, 100000),
        ("gpt-4o", "azure", "unpriced"): (1, None),
    }
    rollup = _rollup_equals_ledger()
    assert rollup[("2024-03-11", "llama-3-70b", "groq")] == (1, 100000, 0)
    totals = metrics.totals(Period(dt.date(2024, 3, 1), dt.date(2024, 3, 31)), Scope())
    assert Decimal(str(totals["cost"])).quantize(Decimal("1e-8")) == Decimal("2750.51225")
    assert totals["unpriced_requests"] == 1
    # Nothing left to do.
    assert _recompute() == "Checked 5 priced rows; changed 0."


def test_recompute_after_editing_a_price_in_place(priced):
    ModelPrice.objects.filter(model_name="gpt-4o").update(input_per_million=Decimal("5"))

    assert _recompute("--model", "gpt-4o") == "Checked 4 priced rows; changed 3."

    assert [cost for cost, _ in _costs(priced)[:3]] == [
        Decimal("0.01"),
        Decimal("0.01"),
        Decimal("7000"),
    ]
    _rollup_equals_ledger()


def test_recompute_since_a_date(priced):
    ModelPrice.objects.filter(model_name="gpt-4o").update(output_per_million=Decimal("20"))

    assert _recompute("--since", "2024-03-10") == "Checked 4 priced rows; changed 2."

    assert [cost for cost, _ in _costs(priced)[:3]] == [
        Decimal("0.0075"),  # before --since: left alone
        Decimal("0.0125"),
        Decimal("9500"),
    ]
    _rollup_equals_ledger()


def test_recompute_dry_run_changes_nothing(priced):
    ModelPrice.objects.filter(model_name="gpt-4o").update(input_per_million=Decimal("5"))
    costs = _costs(priced)
    rollup = sorted(DailyUsage.objects.values_list("day", "model_name", "cost", "requests"))
    count = DailyUsage.objects.count()

    assert _recompute("--dry-run") == "Checked 5 priced rows; would change 3."

    assert _costs(priced) == costs
    assert DailyUsage.objects.count() == count
    assert sorted(DailyUsage.objects.values_list("day", "model_name", "cost", "requests")) == rollup
    _rollup_equals_ledger()
