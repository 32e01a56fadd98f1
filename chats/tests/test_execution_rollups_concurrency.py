"""Exact under concurrent writers (PostgreSQL): eight threads, each with its
own connection, insert code executions (the importers' upsert), update and
delete the same executions, and give the same chats to other app users, on
the same two days at once; afterwards the roll-ups equal a recomputation
from the raw rows and the page's figures equal plain SQL, and no writer hit
a deadlock."""

import datetime as dt
import random
import threading

import pytest
from django.db import connection, connections

from analytics import metrics as quality
from chats import rollups
from chats.models import Chat, CodeExecution
from chats.tests.test_execution_rollups import PERIOD, expected
from core.models import AppUser, Source
from core.pages.period import Scope
from core.tests import factories as f
from ingest.upsert import upsert_by_source

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="locks: PostgreSQL"),
]

WRITERS = 8
ROUNDS = 20
START = dt.datetime(2024, 3, 5, 3, tzinfo=dt.UTC)  # New York: the 4th and the 5th


def _when(rng):
    return START + dt.timedelta(minutes=rng.randrange(4 * 60))


def _writer(seed, source_pk, chat_pks, user_pks, errors, barrier):
    rng = random.Random(seed)
    source = Source.objects.get(pk=source_pk)
    try:
        barrier.wait()
        for round_ in range(ROUNDS):
            action = rng.random()
            if action < 0.45:  # an import batch / API request: new rows
                rows = {
                    f"w{seed}-{round_}-{n}": {
                        "chat_id": rng.choice(chat_pks),
                        "is_successful": rng.random() < 0.5,
                        "model_name": rng.choice(["gpt-4o", None]),
                        "error_messages": {"planner": "KeyError: 'x'"},
                        "created_at": _when(rng),
                    }
                    for n in range(rng.randrange(1, 6))
                }
                upsert_by_source(CodeExecution, source, rows)
            elif action < 0.65:  # the same shared rows updated by several writers
                CodeExecution.objects.filter(source_pk__startswith="shared").filter(
                    pk__in=list(
                        CodeExecution.objects.filter(source_pk__startswith="shared")
                        .order_by("?")
                        .values_list("pk", flat=True)[:3]
                    )
                ).update(is_successful=rng.random() < 0.5, created_at=_when(rng))
            elif action < 0.8:  # deletes
                pks = list(CodeExecution.objects.order_by("?").values_list("pk", flat=True)[:2])
                CodeExecution.objects.filter(pk__in=pks).delete()
            else:  # a chat given to another app user
                chat = Chat.objects.get(pk=rng.choice(chat_pks))
                chat.user_id = rng.choice(user_pks)
                chat.save()
    except Exception as error:  # noqa: BLE001 (reported by the test)
        errors.append(repr(error))
    finally:
        connections.close_all()


def test_concurrent_writers_leave_the_rollups_exact(settings):
    settings.TIME_ZONE = "America/New_York"
    source = f.SourceFactory(name="auto-analyst", kind="auto_analyst")
    users = [f.AppUserFactory(source=None) for _ in range(3)]
    chats = [f.ChatFactory(user=u, source=None) for u in users] + [
        f.ChatFactory(user=None, source=None)
    ]
    rng = random.Random(1)
    for n in range(12):
        CodeExecution.objects.create(
            chat=rng.choice(chats),
            source=source,
            source_pk=f"shared{n}",
            created_at=_when(rng),
            is_successful=n % 2 == 0,
            model_name="gpt-4o",
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
    assert rollups.differences() == []
    for scope in (Scope(), Scope(user_id=users[0].pk), Scope(model_name="gpt-4o")):
        want = expected(PERIOD, scope)
        totals = quality.execution_totals(PERIOD, scope)
        assert (totals["executions"], totals["successes"], totals["chats"]) == (
            want["executions"],
            want["successes"],
            want["chats"],
        )
        assert [r[:3] for r in quality.success_per_day(PERIOD, scope)] == want["per_day"]
