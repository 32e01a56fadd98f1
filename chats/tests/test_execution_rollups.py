"""The code execution roll-ups (chats.rollups) stay equal to the raw rows
through every kind of write — instance saves, bulk inserts and updates, the
importers' upsert, queryset updates, deletes and the deletes they cascade
from (messages, chats, app users), an organisation deleted (its chats' SET
NULL), a chat given to another app user — and the figures the code
execution page reads from them equal plain SQL on the raw rows.

Awkward on purpose: anonymous chats, executions without a chat, NULL models
and providers, no source, rows at local midnight in New York (days cut in
America/New_York), a very long error message, error messages as a map, a
list, a string and NULL.
"""

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from analytics import metrics as quality
from chats import rollups
from chats.models import Chat, CodeExecution, ExecutionRollup, Message
from core.models import AppUser, Organization
from core.pages.period import Period, Scope
from core.tests import factories as f
from ingest.upsert import upsert_by_source

pytestmark = pytest.mark.django_db
ZONE = "America/New_York"
PERIOD = Period(dt.date(2024, 3, 1), dt.date(2024, 3, 20))


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.fixture
def world(settings):
    settings.TIME_ZONE = ZONE
    acme = f.OrganizationFactory(name="Acme", slug="acme")
    aa = f.SourceFactory(name="auto-analyst", kind="auto_analyst")
    ann = f.AppUserFactory(username="ann", organization=acme, source=aa, source_pk="ann")
    bob = f.AppUserFactory(username="bob", organization=None, source=aa, source_pk="bob")
    chats = {
        "ann": f.ChatFactory(title="ann", user=ann, organization=acme, source=aa, source_pk="c1"),
        "bob": f.ChatFactory(title="bob", user=bob, organization=None, source=aa, source_pk="c2"),
        "anon": f.ChatFactory(
            title="anon", user=None, organization=None, source=aa, source_pk="c3"
        ),
    }
    numbers = iter(range(1, 10_000))

    def run(chat, when, ok=True, model="gpt-4o", provider="openai", source=aa, **extra):
        message = f.MessageFactory(chat=chat, role="assistant", created_at=when, source=None)
        return f.CodeExecutionFactory(
            message=message,
            chat=chat,
            user=chat.user,
            created_at=when,
            is_successful=ok,
            model_name=model,
            model_provider=provider,
            source=source,
            source_pk=f"e{next(numbers)}" if source else "",
            **extra,
        )

    # 2 March 04:59:59 UTC is 1 March 23:59:59 in New York; 05:00 is 2 March.
    run(chats["ann"], utc(2024, 3, 2, 4, 59, 59))
    run(
        chats["ann"],
        utc(2024, 3, 2, 5, 0, 0),
        ok=False,
        error_messages={"planner": "KeyError: 'x'"},
    )
    run(
        chats["bob"],
        utc(2024, 3, 3, 12),
        ok=False,
        model=None,
        provider=None,
        failed_agents=["coder", "planner"],
        error_messages=["Traceback\n" + "ValueError: " + "v" * 50_000],
    )
    run(chats["anon"], utc(2024, 3, 3, 13), ok=False, error_messages="boom")
    run(chats["anon"], utc(2024, 3, 10, 6), ok=False, error_messages=None, source=None)
    run(chats["ann"], utc(2024, 3, 10, 7), latest_code="changed", initial_code="first")
    CodeExecution.objects.create(  # no chat, no message, no source
        created_at=utc(2024, 3, 15, 4), is_successful=False, model_name="claude"
    )
    return {"source": aa, "acme": acme, "ann": ann, "bob": bob, "chats": chats, "run": run}


def raw_rows():
    """Every code execution with its chat's app user and organisation, plain SQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.created_at, e.source_id, c.organization_id, c.user_id, e.model_name, "
            "e.model_provider, e.is_successful, e.chat_id, e.initial_code, e.latest_code "
            "FROM chats_codeexecution e LEFT JOIN chats_chat c ON c.id = e.chat_id"
        )
        rows = cursor.fetchall()
    zone = ZoneInfo(ZONE)
    found = []
    for created, source, org, user, model, provider, ok, chat, initial, latest in rows:
        if isinstance(created, str):  # SQLite without converters
            created = dt.datetime.fromisoformat(created)
        if created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)
        found.append(
            {
                "day": created.astimezone(zone).date(),
                "source_id": source,
                "organization_id": org,
                "user_id": user,
                "model_name": model,
                "model_provider": provider,
                "ok": bool(ok),
                "chat_id": chat,
                "changed": initial is not None and latest is not None and initial != latest,
            }
        )
    return found


def in_scope(row, period, scope):
    if not period.start <= row["day"] <= period.end:
        return False
    for name, value in scope.lookups().items():
        column = "model_provider" if name == "provider" else name
        if row[column] != value:
            return False
    return True


def expected(period, scope):
    rows = [r for r in raw_rows() if in_scope(r, period, scope)]
    per_day = defaultdict(lambda: [0, 0])
    per_model = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        per_day[row["day"]][0] += 1
        per_day[row["day"]][1] += row["ok"]
        model = per_model[(row["model_name"], row["model_provider"])]
        model[0] += 1
        model[1] += row["ok"]
        model[2] += row["changed"]
    chats = {r["chat_id"] for r in rows if r["chat_id"] is not None}
    return {
        "executions": len(rows),
        "successes": sum(r["ok"] for r in rows),
        "retried": sum(r["changed"] for r in rows),
        "chats": len(chats),
        "per_day": [(day, *per_day.get(day, [0, 0])) for day in period.each_day()],
        "per_model": sorted(
            ((m, p, n, ok, ch) for (m, p), (n, ok, ch) in per_model.items()),
            key=lambda r: (-r[2], r[0] is None, r[0] or "", r[1] or ""),
        ),
    }


def scopes(world):
    return [
        Scope(),
        Scope(organization_id=world["acme"].pk),
        Scope(user_id=world["ann"].pk),
        Scope(user_id=world["bob"].pk),
        Scope(source_id=world["source"].pk),
        Scope(model_name="gpt-4o"),
        Scope(provider="openai"),
    ]


def assert_exact(world):
    """The roll-ups equal a recomputation, and the figures equal plain SQL."""
    assert rollups.differences() == []
    for period in (PERIOD, Period(dt.date(2024, 3, 2), dt.date(2024, 3, 2))):
        for scope in scopes(world):
            want = expected(period, scope)
            totals = quality.execution_totals(period, scope)
            got = {k: totals[k] for k in ("executions", "successes", "retried", "chats")}
            assert got == {k: want[k] for k in got}, (period, scope)
            days = [row[:3] for row in quality.success_per_day(period, scope)]
            assert days == want["per_day"], (period, scope)
            models = [
                (
                    r["model_name"],
                    r["model_provider"],
                    r["executions"],
                    r["successes"],
                    r["retried"],
                )
                for r in quality.success_by_model(period, scope)
            ]
            assert models == want["per_model"], (period, scope)


def test_created_rows(world):
    assert ExecutionRollup.objects.filter(kind="day").exists()
    assert_exact(world)
    errors = {r["error_type"]: r for r in quality.failures_by_error_type(PERIOD, Scope())}
    assert errors["KeyError"]["executions"] == 1
    assert errors["ValueError"]["example"] == "ValueError: " + "v" * 50_000
    assert errors["(no error message)"]["executions"] == 2


def test_bulk_create_and_bulk_update(world):
    chat = world["chats"]["bob"]
    made = CodeExecution.objects.bulk_create(
        [
            CodeExecution(
                chat=chat,
                created_at=utc(2024, 3, 5 + n % 3, 4, 59),
                is_successful=n % 2 == 0,
                model_name="gpt-4o",
                source=world["source"],
                source_pk=f"bulk{n}",
            )
            for n in range(6)
        ]
    )
    assert_exact(world)
    for execution in made:
        execution.created_at += dt.timedelta(days=4)  # moves to other days
        execution.is_successful = not execution.is_successful
    CodeExecution.objects.bulk_update(made, ["created_at", "is_successful"])
    assert_exact(world)


def test_queryset_update_and_instance_save(world):
    CodeExecution.objects.filter(model_name="gpt-4o").update(
        model_name="gpt-4.1", created_at=utc(2024, 3, 12, 4, 59, 59)
    )
    assert_exact(world)
    execution = CodeExecution.objects.filter(model_name__isnull=True).get()
    execution.is_successful = True
    execution.created_at = utc(2024, 3, 19, 23)
    execution.save()
    assert_exact(world)


def test_upsert_by_source_as_the_importers_and_the_api(world):
    source = world["source"]
    chat = world["chats"]["ann"]
    rows = {
        "e1": {"chat_id": chat.pk, "is_successful": False, "created_at": utc(2024, 3, 4, 1)},
        "new": {"chat_id": chat.pk, "is_successful": True, "created_at": utc(2024, 3, 6, 1)},
    }
    states = upsert_by_source(CodeExecution, source, rows)
    assert {state for state, _ in states.values()} == {"updated", "created"}
    assert_exact(world)


def test_deletes_and_what_they_cascade_from(world):
    CodeExecution.objects.filter(is_successful=True).first().delete()
    assert_exact(world)
    CodeExecution.objects.filter(model_name="claude").delete()
    assert_exact(world)
    Message.objects.filter(code_executions__chat=world["chats"]["anon"]).first().delete()
    assert_exact(world)
    world["chats"]["anon"].delete()
    assert_exact(world)
    AppUser.objects.filter(pk=world["bob"].pk).delete()  # cascades to bob's chat
    assert not Chat.objects.filter(title="bob").exists()
    assert_exact(world)


def test_organisation_deleted_and_chat_given_to_another_user(world):
    Organization.objects.get(pk=world["acme"].pk).delete()  # its chats: SET NULL
    assert Chat.objects.get(title="ann").organization_id is None
    assert_exact(world)
    chat = Chat.objects.get(title="ann")
    chat.user = world["bob"]
    chat.save()
    assert_exact(world)
    initech = f.OrganizationFactory(name="Initech", slug="initech")
    Chat.objects.filter(title="bob").update(user=world["ann"], organization=initech)
    assert_exact(world)
    Chat.objects.bulk_update([Chat(pk=chat.pk, user=None)], ["user"])
    assert_exact(world)


def test_message_moved_between_chats_leaves_executions_with_their_chat(world):
    message = Message.objects.filter(code_executions__chat=world["chats"]["ann"]).first()
    message.chat = world["chats"]["bob"]
    message.save()
    assert_exact(world)


@pytest.mark.rollups_unchecked
def test_a_bypassing_write_is_found_and_rebuild_repairs_it(world):
    with connection.cursor() as cursor:  # a writer around the querysets
        cursor.execute("UPDATE chats_codeexecution SET is_successful = %s", [True])
    assert rollups.differences() != []
    rollups.rebuild()
    assert_exact(world)


def test_rebuild_gives_what_the_writes_left(world):
    before = sorted(ExecutionRollup.objects.values_list("kind", "day", "executions", "successes"))
    rollups.rebuild()
    after = sorted(ExecutionRollup.objects.values_list("kind", "day", "executions", "successes"))
    assert before == after


@pytest.mark.rollups_unchecked
def test_rebuild_command_checks_and_repairs(world):
    from django.core.management import CommandError, call_command

    call_command("rebuild_quality_rollups", "--check")
    ExecutionRollup.objects.filter(kind="day").delete()
    with pytest.raises(CommandError):
        call_command("rebuild_quality_rollups", "--check")
    call_command("rebuild_quality_rollups")
    assert_exact(world)
