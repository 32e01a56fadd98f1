"""The feedback roll-ups (chats.feedback_rollups) stay equal to the raw rows
through every kind of write — of ratings, of messages, of the code
executions whose failed agents a rating is counted under, of chats and
organisations, instance saves, bulk inserts and updates, the importers'
upsert, queryset updates, deletes and the deletes they cascade from — and
the feedback page's figures read from them equal plain SQL on the raw rows
(analytics.tests.test_quality_metrics.Raw).

The data is that module's ``world``, awkward on purpose (anonymous chats,
chats without an organisation, NULL ratings, models, temperatures and max
tokens, rows at 23:59:59 / 00:00:00 UTC and at New York midnight, error
messages as a map, a list, a string, NULL, {}), in UTC and in New York; the
writes below add ratings given a day after their answer, huge values and a
rating of an answer whose code failed later.
"""

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from analytics import metrics as quality
from analytics.tests import test_quality_metrics as plain
from chats import feedback_rollups
from chats.models import (
    Chat,
    CodeExecution,
    FeedbackRollup,
    Message,
    MessageFeedback,
)
from core.models import AppUser, Organization
from core.pages.period import Period, Scope
from core.tests import factories as f
from ingest.upsert import upsert_by_source
from usage import metrics as usage_metrics
from usage.tests.conftest import utc

pytestmark = pytest.mark.django_db

# The awkward world and its plain-SQL figures (fixtures: each test runs with
# days cut in UTC and again in America/New_York).
world = plain.world
time_zone = plain.time_zone
Raw = plain.Raw
scopes = plain.scopes
approx_rows, approx_tuples = plain.approx_rows, plain.approx_tuples
TEMPERATURE_TESTS, MAX_TOKENS_TESTS = plain.TEMPERATURE_TESTS, plain.MAX_TOKENS_TESTS

PERIODS = [
    Period(dt.date(2024, 2, 1), dt.date(2024, 3, 31)),
    Period(dt.date(2024, 3, 13), dt.date(2024, 3, 14)),
    Period(dt.date(2024, 3, 8), dt.date(2024, 3, 8)),  # nothing at all that day
]


def assert_exact(world, time_zone):
    """The roll-ups equal a recomputation, and every feedback figure equals
    plain SQL on the raw rows."""
    assert feedback_rollups.differences() == []
    raw = Raw(time_zone)
    for period in PERIODS:
        for scope in scopes(world):
            where = (period, scope)
            assert quality.feedback_totals(period, scope) == pytest.approx(
                raw.feedback_totals(period, scope)
            ), where
            given = raw.feedback(period, scope)
            assert quality.rating_distribution(period, scope) == [
                (n, sum(r["rating"] == n for r in given)) for n in range(1, 6)
            ], where
            assert quality.rating_per_day(period, scope) == approx_tuples(
                raw.rating_per_day(period, scope)
            ), where
            assert quality.rating_by_model(period, scope) == approx_rows(
                raw.rating_by_model(period, scope)
            ), where
            assert quality.rating_by_agent(period, scope) == approx_rows(
                raw.rating_by_agent(period, scope)
            ), where
            assert quality.rating_by_temperature(period, scope) == approx_rows(
                raw.rating_by_band(period, scope, "temperature", TEMPERATURE_TESTS)
            ), where
            assert quality.rating_by_max_tokens(period, scope) == approx_rows(
                raw.rating_by_band(period, scope, "max_tokens", MAX_TOKENS_TESTS)
            ), where
            assert quality.mistakes_per_day(period, scope) == raw.mistakes_per_day(period, scope), (
                where
            )
            assert quality.mistakes_by_model(period, scope) == approx_rows(
                raw.mistakes_by_model(period, scope)
            ), where


def _answer(title):
    return Message.objects.filter(chat__title=title, role="assistant").order_by("created_at")


def test_created_rows(world, time_zone):
    assert set(FeedbackRollup.objects.values_list("kind", flat=True)) == {
        "rating",
        "agent",
        "answer",
    }
    assert_exact(world, time_zone)


def test_zero_rows():
    period = PERIODS[0]
    assert feedback_rollups.differences() == []
    totals = quality.feedback_totals(period, Scope())
    assert (totals["ratings"], totals["average"], totals["rated_share"]) == (0, None, None)
    assert quality.rating_distribution(period, Scope()) == [(n, 0) for n in range(1, 6)]
    assert quality.mistakes_by_model(period, Scope()) == []
    assert all(n == 0 for _, n, _ in quality.rating_per_day(period, Scope()))


def test_feedback_saves_bulk_writes_and_upsert(world, time_zone):
    a2 = world.a2
    rating = MessageFeedback.objects.get(message=a2)
    rating.rating = None  # a rating taken back
    rating.save()
    assert_exact(world, time_zone)
    rating.rating, rating.created_at = 4, utc(2024, 3, 14, 4, 59, 59)  # NY: 13th 23:59:59
    rating.save(update_fields=["rating", "created_at"])
    assert_exact(world, time_zone)
    unrated = list(Message.objects.filter(role="assistant", feedback__isnull=True))
    made = MessageFeedback.objects.bulk_create(
        [
            MessageFeedback(
                message=m,
                rating=1 + n % 5,
                temperature=0.0 if n % 2 else 1e9,
                max_tokens=2_000_000_000 if n % 2 else 0,
                model_name="gpt-4o",
                model_provider="openai",
                created_at=m.created_at + dt.timedelta(days=1),  # the day after the answer
                source=m.source,
                source_pk=f"bulk{n}",
            )
            for n, m in enumerate(unrated)
        ]
    )
    assert made
    assert_exact(world, time_zone)
    for row in made:
        row.created_at = utc(2024, 3, 14, 5, 0, 0)  # NY: midnight of the 14th
        row.rating = None if row.rating == 3 else row.rating
    MessageFeedback.objects.bulk_update(made, ["created_at", "rating"])
    assert_exact(world, time_zone)
    MessageFeedback.objects.filter(model_name="gpt-4o").update(rating=2, model_name=None)
    assert_exact(world, time_zone)
    fresh = Message.objects.create(
        chat=world.chat_anon, role="assistant", content="?", created_at=utc(2024, 3, 14, 0, 0, 0)
    )
    states = upsert_by_source(
        MessageFeedback,
        world.aa,
        {
            "f1": {"rating": 1, "created_at": utc(2024, 3, 2, 4, 59, 59)},
            "new": {"message_id": fresh.pk, "rating": 5},
        },
    )
    assert {state for state, _ in states.values()} == {"updated", "created"}
    assert_exact(world, time_zone)


def test_message_writes(world, time_zone):
    a2 = Message.objects.get(pk=world.a2.pk)
    a2.is_mistake = False  # a reviewer takes the flag back
    a2.save(update_fields=["is_mistake"])
    assert_exact(world, time_zone)
    Message.objects.filter(role="assistant", model_name="gpt-4o").update(
        is_mistake=True, model_name="gpt-4.1"
    )
    assert_exact(world, time_zone)
    answer = _answer("cat's clusters")[0]
    answer.agent_type = "sql_agent"
    answer.created_at = utc(2024, 3, 14, 4, 59, 59)
    answer.save()
    assert_exact(world, time_zone)
    moved = _answer("ann's sales")[0]  # rated, with failed code
    moved.chat = world.chat_anon  # a message moved to another chat
    moved.save()
    assert_exact(world, time_zone)
    answers = list(_answer("bob's churn"))
    for m in answers:
        m.chat, m.role = Chat.objects.get(title="dan's sql"), "user"
    Message.objects.bulk_update(answers, ["chat", "role"])
    assert_exact(world, time_zone)
    Message.objects.bulk_create(
        [
            Message(
                chat=world.chat_ann,
                role="assistant",
                content="new",
                created_at=utc(2024, 3, 14, 0, 0, 0),
                model_name="claude",
                is_mistake=n % 2 == 0,
                source=None,
            )
            for n in range(3)
        ]
    )
    assert_exact(world, time_zone)
    Message.objects.filter(chat=world.chat_ann).update(content="edited")  # no roll-up field
    assert_exact(world, time_zone)


def test_code_executions_move_the_failed_agent_ratings(world, time_zone):
    failing = CodeExecution.objects.filter(message=world.a2)
    failing.update(is_successful=True)
    assert_exact(world, time_zone)
    b2 = _answer("bob's churn").last()
    MessageFeedback.objects.create(message=b2, rating=1, created_at=utc(2024, 3, 13, 23, 59, 59))
    CodeExecution.objects.create(
        message=b2,
        chat=b2.chat,
        is_successful=False,
        failed_agents=["coder", None],
        error_messages={"planner": "KeyError: 'x'"},
        created_at=utc(2024, 3, 12, 10, 3),
    )
    assert_exact(world, time_zone)
    execution = CodeExecution.objects.get(failed_agents=["coder", None])
    execution.message = world.a2  # to another rated answer
    execution.save()
    assert_exact(world, time_zone)
    CodeExecution.objects.bulk_update(
        [CodeExecution(pk=execution.pk, failed_agents=["viz"], message=b2)],
        ["failed_agents", "message"],
    )
    assert_exact(world, time_zone)
    CodeExecution.objects.filter(pk=execution.pk).delete()
    assert_exact(world, time_zone)
    upsert_by_source(
        CodeExecution,
        world.aa,
        {"e9": {"message_id": b2.pk, "is_successful": False, "failed_agents": ["viz_agent"]}},
    )
    assert_exact(world, time_zone)


def test_deletes_and_what_they_cascade_from(world, time_zone):
    MessageFeedback.objects.get(message=world.a2).delete()
    assert_exact(world, time_zone)
    MessageFeedback.objects.filter(rating__lte=2).delete()
    assert_exact(world, time_zone)
    _answer("cat's clusters")[0].delete()  # its rating goes with it
    assert_exact(world, time_zone)
    Message.objects.filter(chat__title="dan's sql").delete()
    assert_exact(world, time_zone)
    Chat.objects.get(pk=world.chat_anon.pk).delete()
    assert_exact(world, time_zone)
    AppUser.objects.filter(pk=world.bob.pk).delete()  # cascades to bob's chat
    assert not Chat.objects.filter(title="bob's churn").exists()
    assert_exact(world, time_zone)


def test_organisation_deleted_and_chats_given_to_others(world, time_zone):
    Organization.objects.get(pk=world.acme.pk).delete()  # its chats: SET NULL
    assert Chat.objects.get(title="ann's sales").organization_id is None
    assert_exact(world, time_zone)
    chat = Chat.objects.get(title="ann's sales")
    chat.user = world.cat
    chat.save()
    assert_exact(world, time_zone)
    initech = f.OrganizationFactory(name="Initech", slug="initech")
    Chat.objects.filter(title="cat's clusters").update(user=world.dan, organization=initech)
    assert_exact(world, time_zone)
    Chat.objects.bulk_update([Chat(pk=chat.pk, user=None)], ["user"])
    assert_exact(world, time_zone)


def test_models_page_reads_the_rollup(world, time_zone):
    """The models page's average rating and mistake share per model equal
    plain SQL on the ratings and messages."""
    period = PERIODS[0]
    raw = Raw(time_zone)
    for scope in (Scope(), Scope(organization_id=world.acme.pk), Scope(user_id=world.ann.pk)):
        ratings, _, mistakes = usage_metrics._quality_by_model(period, scope)
        unscoped = scope.without("model_name", "provider")
        by_model = {}
        for r in raw.feedback(period, unscoped):
            by_model.setdefault(r["model"], []).append(r["rating"])
        assert ratings == pytest.approx({m: sum(v) / len(v) for m, v in by_model.items()})
        flagged = {}
        for m in raw.mistake_rows(period, unscoped):
            if m["model"] is not None:
                flagged.setdefault(m["model"], []).append(m["mistake"])
        assert mistakes == pytest.approx({m: sum(v) / len(v) for m, v in flagged.items()})


@pytest.mark.rollups_unchecked
def test_a_bypassing_write_is_found_and_the_command_repairs_it(world, time_zone):
    call_command("rebuild_quality_rollups", "--check", stdout=io.StringIO())
    with connection.cursor() as cursor:  # a writer around the querysets
        cursor.execute("UPDATE chats_messagefeedback SET rating = %s", [5])
    assert feedback_rollups.differences() != []
    with pytest.raises(CommandError, match="feedback roll-up rows differ"):
        call_command("rebuild_quality_rollups", "--check", stdout=io.StringIO())
    call_command("rebuild_quality_rollups", stdout=io.StringIO())
    assert_exact(world, time_zone)


def test_rebuild_gives_what_the_writes_left(world, time_zone):
    fields = [f.attname for f in FeedbackRollup._meta.concrete_fields if not f.primary_key]
    before = sorted(FeedbackRollup.objects.values_list(*fields), key=repr)
    feedback_rollups.rebuild()
    assert sorted(FeedbackRollup.objects.values_list(*fields), key=repr) == before
