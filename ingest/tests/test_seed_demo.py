"""``manage.py seed_demo``: every model filled, deterministic, never twice.

Determinism is checked inside one test: each run happens in a savepoint that
is rolled back, so the second run starts from the same empty database as the
first. Primary keys are left out of the comparison (PostgreSQL sequences do
not roll back); counts, sums and natural keys are compared.
"""

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command, get_commands
from django.core.management.base import CommandError
from django.db import transaction
from django.db.models import Count, Sum

from chats.models import Chat, Message
from core.models import AppUser, Source, User
from core.tests.factories import AppUserFactory
from usage.models import DailyUsage, ModelUsage

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
