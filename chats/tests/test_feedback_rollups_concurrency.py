"""Exact under concurrent writers (PostgreSQL): eight threads, each with its
own connection, rate answers (the importers' upsert), change and delete the
same ratings, flag and move the same answers, write code executions that
fail on rated answers, and give the same chats to other app users, on the
same two days at once; afterwards both quality roll-ups equal a
recomputation from the raw rows, the feedback figures equal plain SQL, and
no writer hit a deadlock."""

import contextlib
import datetime as dt
import random
import threading

import pytest
from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, connection, connections

from analytics import metrics as quality
from analytics.tests.test_quality_metrics import Raw, approx_rows
from chats import feedback_rollups, rollups
from chats.models import Chat, CodeExecution, Message, MessageFeedback
from core.models import AppUser, Source
from core.pages.period import Period, Scope
from core.tests import factories as f
from ingest.upsert import upsert_by_source

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="locks: PostgreSQL"),
]

WRITERS = 8
ROUNDS = 20
ZONE = "America/New_York"
START = dt.datetime(2024, 3, 5, 3, tzinfo=dt.UTC)  # New York: the 4th and the 5th
PERIOD = Period(dt.date(2024, 3, 1), dt.date(2024, 3, 20))


def _when(rng):
    return START + dt.timedelta(minutes=rng.randrange(4 * 60))


def _some(queryset, n, rng):
    pks = list(queryset.values_list("pk", flat=True))
    return rng.sample(pks, min(n, len(pks)))


def _writer(seed, source_pk, chat_pks, user_pks, errors, barrier):
    rng = random.Random(seed)
    source = Source.objects.get(pk=source_pk)
    answers = Message.objects.filter(role="assistant")
    try:
        barrier.wait()
        for round_ in range(ROUNDS):
            # A row another writer deleted meanwhile: that write failed whole.
            with contextlib.suppress(IntegrityError, ObjectDoesNotExist):
                _act(rng, seed, round_, source, chat_pks, user_pks, answers)
    except Exception as error:  # noqa: BLE001 (reported by the test: deadlocks, anything)
        errors.append(repr(error))
    finally:
        connections.close_all()


def _act(rng, seed, round_, source, chat_pks, user_pks, answers):  # noqa: PLR0913
    action = rng.random()
    if action < 0.25:  # an import batch: new answers, rated
        made = Message.objects.bulk_create(
            [
                Message(
                    chat_id=rng.choice(chat_pks),
                    role="assistant",
                    content="a",
                    created_at=_when(rng),
                    model_name=rng.choice(["gpt-4o", None]),
                    source=source,
                    source_pk=f"w{seed}-{round_}-{n}",
                )
                for n in range(rng.randrange(1, 4))
            ]
        )
        upsert_by_source(
            MessageFeedback,
            source,
            {
                f"wf{seed}-{round_}-{n}": {
                    "message_id": m.pk,
                    "rating": rng.choice([1, 2, 5, None]),
                    "model_name": "gpt-4o",
                    "created_at": _when(rng),
                }
                for n, m in enumerate(made)
            },
        )
    elif action < 0.45:  # the same shared ratings changed by several writers
        MessageFeedback.objects.filter(
            pk__in=_some(MessageFeedback.objects.filter(source_pk__startswith="s"), 3, rng)
        ).update(rating=rng.choice([1, 3, 4, None]), created_at=_when(rng))
    elif action < 0.6:  # code that fails on a rated answer
        rated = _some(answers.filter(feedback__isnull=False), 2, rng)
        upsert_by_source(
            CodeExecution,
            source,
            {
                f"we{seed}-{round_}-{pk}": {
                    "message_id": pk,
                    "is_successful": rng.random() < 0.3,
                    "failed_agents": [rng.choice(["planner", "coder"])],
                    "created_at": _when(rng),
                }
                for pk in rated
            },
        )
    elif action < 0.7:  # reviewers flag the same answers
        answers.filter(pk__in=_some(answers, 2, rng)).update(is_mistake=rng.random() < 0.5)
    elif action < 0.8:  # an answer moved to another chat
        for pk in _some(answers, 1, rng):
            message = Message.objects.get(pk=pk)
            message.chat_id = rng.choice(chat_pks)
            message.save()
    elif action < 0.9:  # deletes of ratings and of answers
        MessageFeedback.objects.filter(pk__in=_some(MessageFeedback.objects.all(), 1, rng)).delete()
        answers.filter(pk__in=_some(answers, 1, rng)).delete()
    else:  # a chat given to another app user
        chat = Chat.objects.get(pk=rng.choice(chat_pks))
        chat.user_id = rng.choice(user_pks)
        chat.save()


def test_concurrent_writers_leave_the_rollups_exact(settings):
    settings.TIME_ZONE = ZONE
    source = f.SourceFactory(name="auto-analyst", kind="auto_analyst")
    org = f.OrganizationFactory()
    users = [f.AppUserFactory(source=None, organization=org) for _ in range(2)]
    users.append(f.AppUserFactory(source=None, organization=None))
    chats = [f.ChatFactory(user=u, organization=u.organization, source=None) for u in users] + [
        f.ChatFactory(user=None, organization=None, source=None)
    ]
    rng = random.Random(1)
    for n in range(16):
        message = Message.objects.create(
            chat=rng.choice(chats),
            role="assistant",
            content="shared",
            created_at=_when(rng),
            model_name="gpt-4o",
            source=source,
            source_pk=f"shared{n}",
        )
        if n % 4:
            MessageFeedback.objects.create(
                message=message,
                rating=1 + n % 5,
                created_at=_when(rng),
                source=source,
                source_pk=f"s{n}",
            )
    errors, barrier = [], threading.Barrier(WRITERS)
    threads = [
        threading.Thread(
            target=_writer,
            args=(
                seed,
                source.pk,
                [c.pk for c in chats],
                [u.pk for u in AppUser.objects.all()],
                errors,
                barrier,
            ),
        )
        for seed in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert feedback_rollups.differences() == []
    assert rollups.differences() == []
    raw = Raw(ZONE)
    for scope in (Scope(), Scope(user_id=users[0].pk), Scope(model_name="gpt-4o")):
        assert quality.feedback_totals(PERIOD, scope) == pytest.approx(
            raw.feedback_totals(PERIOD, scope)
        )
        assert quality.rating_by_agent(PERIOD, scope) == approx_rows(
            raw.rating_by_agent(PERIOD, scope)
        )
        assert quality.mistakes_per_day(PERIOD, scope) == raw.mistakes_per_day(PERIOD, scope)
