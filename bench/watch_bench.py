"""Spend-watch benchmark: time of one day's anomaly search and of the budget
thresholds, over roll-ups of a given size.

Fills a throwaway SQLite file (migrated) with 29 days of roll-up rows —
DailyTotal (days × models), DailyModelUsage (days × organisations × models
per organisation) and UserUsage day rows (days × app users) — plants a spike
on the last day, adds a budget per organisation, then prints the wall time
and query count of ``anomalies.find`` and ``watch.budget_findings``:

    .venv/bin/python bench/watch_bench.py --orgs 200 --users 5000

Nothing here touches the project's own database.
"""

import argparse
import datetime as dt
import os
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402, F401  (DEBUG off, a throwaway SECRET_KEY)

sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--orgs", type=int, default=200)
    parser.add_argument("--models-per-org", type=int, default=5)
    parser.add_argument("--users", type=int, default=5000)
    args = parser.parse_args()

    path = Path(tempfile.mkdtemp()) / "watch_bench.sqlite3"
    os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analyst_admin.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from core.models import AppUser, Organization
    from usage import anomalies, ledger, watch
    from usage.models import Budget, DailyModelUsage, DailyTotal, UserUsage

    call_command("migrate", verbosity=0)
    rng = random.Random(20)
    today = dt.date(2024, 3, 14)
    days = [today - dt.timedelta(days=n) for n in range(29)]
    models = [(f"model-{n}", f"provider-{n % 6}") for n in range(args.models)]
    orgs = Organization.objects.bulk_create(
        Organization(name=f"Org {n}", slug=f"org-{n}") for n in range(args.orgs)
    )
    users = AppUser.objects.bulk_create(
        AppUser(username=f"u{n}", email=f"u{n}@x.test", organization=orgs[n % len(orgs)])
        for n in range(args.users)
    )
    Budget.objects.bulk_create(Budget(organization=o, monthly_limit=Decimal(100)) for o in orgs)

    def cost(day):
        spike = 20 if day == today and rng.random() < 0.01 else 1
        return Decimal(rng.randint(100, 400)) / 100 * spike

    totals, by_org, by_user = [], [], []
    for day in days:
        for model, provider in models:
            totals.append(
                DailyTotal(
                    day=day, model_name=model, provider=provider, requests=60, cost=cost(day)
                )
            )
        for org in orgs:
            for model, provider in rng.sample(models, args.models_per_org):
                by_org.append(
                    DailyModelUsage(
                        day=day,
                        model_name=model,
                        provider=provider,
                        organization=org,
                        requests=12,
                        cost=cost(day),
                    )
                )
        by_user.extend(
            UserUsage(
                span="day",
                day=day,
                user=user,
                organization_id=user.organization_id,
                requests=3,
                cost=cost(day),
            )
            for user in users
        )
    started = time.perf_counter()
    # roll-up rows planted without ledger rows behind them: the anomaly finder
    # reads only the roll-ups, and a million ledger rows would take far longer
    with ledger.unchecked():
        DailyTotal.objects.bulk_create(totals, batch_size=5000)
        DailyModelUsage.objects.bulk_create(by_org, batch_size=5000)
        UserUsage.objects.bulk_create(by_user, batch_size=5000)
    print(
        f"roll-up rows: DailyTotal {len(totals):,}, DailyModelUsage {len(by_org):,}, "
        f"UserUsage days {len(by_user):,} (written in {time.perf_counter() - started:.1f} s)"
    )

    for name, call in (
        ("anomalies.find(today)", lambda: anomalies.find(today)),
        ("watch.budget_findings(today)", lambda: watch.budget_findings(today)),
    ):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            result = call()
            elapsed = time.perf_counter() - started
        print(f"{name}: {elapsed * 1000:,.0f} ms, {len(queries)} queries, {len(result)} found")


if __name__ == "__main__":
    main()
