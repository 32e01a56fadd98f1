"""``manage.py seed_demo``: every model filled, deterministic, never twice.

Determinism is checked inside one test: each run happens in a savepoint that
is rolled back, so the second run starts from the same empty database as the
first. Primary keys are left out of the comparison (PostgreSQL sequences do
not roll back); counts, sums and natural keys are compared.
"""

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command, get_commands
from django.core.management.base import CommandError
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from chats.models import Chat, Message
from core.models import AppUser, Organization, Source, User
from core.tests.factories import AppUserFactory
from ingest.demo import reference
from ingest.demo.builder import start_of_today
from ingest.demo.context import Context
from usage import metrics
from usage.metrics import BudgetState, budget_state
from usage.models import Budget, DailyUsage, ModelUsage

pytestmark = pytest.mark.django_db

PROJECT_APPS = ("core", "chats", "usage", "reports")
SEED_KINDS = ("auto_analyst", "ds_ml_agent", "text_to_sql", "ai_chat_v2")


def _models():
    return [m for label in PROJECT_APPS for m in apps.get_app_config(label).get_models()]


def _seed(seed=7, scale=0.02):
    out = StringIO()
    call_command("seed_demo", seed=seed, scale=scale, stdout=out, stderr=out)
    return out.getvalue()


def _counts():
    return {m._meta.label: m._default_manager.count() for m in _models()}


def _fingerprint():
    usage = ModelUsage.objects.aggregate(
        cost=Sum("cost"),
        prompt=Sum("prompt_tokens"),
        completion=Sum("completion_tokens"),
        total=Sum("total_tokens"),
    )
    return {
        "counts": _counts(),
        "usage": usage,
        "usernames": sorted(AppUser.objects.values_list("username", flat=True), key=str),
        "sources": sorted(Source.objects.values_list("name", "kind")),
        "rollup_cost": DailyUsage.objects.aggregate(cost=Sum("cost"))["cost"],
    }


def _seed_and_roll_back():
    with transaction.atomic():
        _seed()
        fingerprint = _fingerprint()
        transaction.set_rollback(True)
    return fingerprint


@pytest.fixture(autouse=True)
def _command_exists():
    # Otherwise "Unknown command" would satisfy the CommandError tests.
    assert "seed_demo" in get_commands(), "manage.py seed_demo does not exist"


@pytest.fixture
def seeded():
    _seed()


def test_seed_demo_fills_every_model_of_the_four_apps(seeded):
    # Staff accounts come from demo_logins, not from the demo data, and so do
    # the reviews they make; notifications, their deliveries and the channels
    # they go to come from running watch_spend with channels an Admin set up.
    made_by_use = {User._meta.label, "chats.Review"} | {
        f"usage.{name}" for name in ("NotificationChannel", "Notification", "Delivery")
    }
    empty = [label for label, count in _counts().items() if count == 0 and label not in made_by_use]

    assert empty == []
    assert DailyUsage.objects.count() > 0


def test_seed_demo_has_rows_from_all_four_applications(seeded):
    chats = dict(
        Chat.objects.filter(source__isnull=False)
        .values_list("source__kind")
        .annotate(n=Count("id"))
    )
    messages = dict(
        Message.objects.filter(source__isnull=False)
        .values_list("source__kind")
        .annotate(n=Count("id"))
    )

    assert set(SEED_KINDS) <= set(Source.objects.values_list("kind", flat=True))
    assert {kind: chats.get(kind, 0) > 0 for kind in SEED_KINDS} == dict.fromkeys(SEED_KINDS, True)
    assert {kind: messages.get(kind, 0) > 0 for kind in SEED_KINDS} == dict.fromkeys(
        SEED_KINDS, True
    )


def test_seed_demo_rollup_agrees_with_ledger(seeded):
    ledger = ModelUsage.objects.aggregate(
        requests=Count("id"), tokens=Sum("total_tokens"), cost=Sum("cost")
    )
    rollup = DailyUsage.objects.aggregate(
        requests=Sum("requests"), tokens=Sum("total_tokens"), cost=Sum("cost")
    )

    assert rollup == ledger
    assert ledger["requests"] > 0


def test_seed_demo_same_seed_gives_same_content_in_fresh_databases():
    first = _seed_and_roll_back()
    assert Chat.objects.count() == 0, "the savepoint should have left the database empty"
    second = _seed_and_roll_back()

    assert second == first
    assert first["counts"]["chats.Chat"] > 0
    assert first["usage"]["total"] > 0


def test_seed_demo_refuses_non_empty_database_and_writes_nothing(seeded):
    before = _fingerprint()

    with pytest.raises(CommandError):
        _seed()

    assert _fingerprint() == before


def test_seed_demo_refuses_database_with_one_app_user_and_writes_nothing():
    AppUserFactory(username="already-here")
    before = _counts()

    with pytest.raises(CommandError):
        _seed(seed=8)

    assert _counts() == before
    assert list(AppUser.objects.values_list("username", flat=True)) == ["already-here"]


# -- budgets ------------------------------------------------------------------


def _budget_states(today):
    """{state: [budget target]} of the demo's budgets on ``today``."""
    states = {}
    for status in metrics.budget_statuses(today=today):
        states.setdefault(status.state, []).append(str(status.target))
    return states


def test_demo_budgets_are_over_at_risk_and_on_track_by_the_pages_projection():
    """The budgets are set from the month's spend in the roll-ups: on the day
    they are set (here the 2nd and the 20th of last month, which the 90 days
    of demo data cover, whenever the test runs) one organisation is over,
    some budgets are at risk and the rest on track, by the pages' states."""
    _seed(scale=0.5)
    last_month = timezone.localdate().replace(day=1) - dt.timedelta(days=1)
    for day in (2, 20):
        Budget.objects.all().delete()
        today = last_month.replace(day=day)
        ctx = Context(seed=7, scale=0.5, days=90, anchor=start_of_today(), progress=None)
        ctx.organizations = list(Organization.objects.order_by("pk"))
        reference.make_budgets(ctx, list(AppUser.objects.order_by("pk")), today=today)
        ctx.writer.flush()

        states = _budget_states(today)
        by_org = metrics.month_spend(today)[0]
        costliest = max(by_org, key=lambda pk: (by_org[pk], -pk))
        assert states["over"] == [Organization.objects.get(pk=costliest).name], day
        assert len(states["at risk"]) >= 2, day
        assert len(states["on track"]) >= 2, day
        assert Budget.objects.count() == sum(len(v) for v in states.values())
        # Round limits: at most three significant digits.
        for budget in Budget.objects.all():
            assert len(budget.monthly_limit.normalize().as_tuple().digits) <= 3, budget


@pytest.mark.parametrize(
    ("spent", "projected"),
    [
        ("0", "0"),
        ("0.004", "0.12"),
        ("0.53", "8.14"),
        ("1.95", "2.01"),
        ("7", "7"),  # the last day of a month
        ("123.45", "3826.95"),
        ("99999.99", "100000.01"),
    ],
)
def test_limit_for_puts_a_budget_in_its_state_or_says_it_cannot(spent, projected):
    spent, projected = Decimal(spent), Decimal(projected)
    for state in BudgetState.values:
        for ratio in (Decimal("1.15"), Decimal("2.2")):
            limit = reference.limit_for(state, spent, projected, ratio)
            if limit is None:
                # Over needs spend; at risk room between the spend and the
                # projection above $1.
                assert (
                    state == "over"
                    and spent <= Decimal("0.01")
                    or state == "at risk"
                    and projected <= max(spent, reference.SMALLEST_LIMIT)
                ), (state, ratio)
                continue
            assert budget_state(spent, projected, limit) == state, (state, ratio, limit)
            assert limit == limit.quantize(Decimal("0.01"))
