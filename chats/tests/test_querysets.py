"""The query vocabulary of chats' tables: ``in_period`` (local days of a
page's period), ``scoped`` (the scope's fields where the table has them),
``assistant``/``from_users`` and ``rated``, checked row by row."""

import datetime as dt

import pytest

from chats.models import Chat, CodeExecution, Message, MessageFeedback, MessageQuerySet
from core.pages.period import Period, Scope
from core.tests import factories as f

pytestmark = pytest.mark.django_db

DAY = dt.date(2024, 3, 14)
PERIOD = Period(DAY, DAY)


def at(hour, day=DAY):
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


@pytest.fixture
def rows(settings):
    settings.TIME_ZONE = "UTC"
    acme = f.OrganizationFactory(name="Acme")
    ann = f.AppUserFactory(organization=acme)
    bob = f.AppUserFactory()
    ann_chat = f.ChatFactory(user=ann, organization=acme, created_at=at(9))
    bob_chat = f.ChatFactory(user=bob, created_at=at(23, DAY - dt.timedelta(days=1)))
    anonymous = f.ChatFactory(user=None, created_at=at(0))
    return {
        "acme": acme,
        "ann": ann,
        "chats": (ann_chat, bob_chat, anonymous),
        "answer": f.MessageFactory(
            chat=ann_chat, role="assistant", model_name="gpt-4o", created_at=at(10)
        ),
        "question": f.MessageFactory(chat=ann_chat, role="user", created_at=at(9)),
        "late": f.MessageFactory(chat=bob_chat, role="assistant", created_at=at(23, DAY)),
        "before": f.MessageFactory(
            chat=bob_chat, role="assistant", created_at=at(23, DAY - dt.timedelta(days=1))
        ),
        "anonymous": f.MessageFactory(chat=anonymous, role="assistant", created_at=at(0)),
    }


def test_messages_of_a_period_and_scope(rows):
    ids = lambda qs: set(qs.values_list("pk", flat=True))  # noqa: E731
    day = Message.objects.in_period(PERIOD)
    assert ids(day) == {rows[k].pk for k in ("answer", "question", "late", "anonymous")}
    assert ids(day.assistant()) == {rows[k].pk for k in ("answer", "late", "anonymous")}
    assert ids(day.from_users()) == {rows["question"].pk}
    assert ids(day.assistant().scoped(Scope(organization_id=rows["acme"].pk))) == {
        rows["answer"].pk
    }
    assert ids(day.assistant().scoped(Scope(model_name="gpt-4o"))) == {rows["answer"].pk}
    # No provider is stored on a message: a provider in scope is not applied.
    assert ids(day.assistant().scoped(Scope(provider="openai"))) == ids(day.assistant())
    assert ids(day.scoped(Scope(model_name="gpt-4o"), MessageQuerySet.chat_fields)) == ids(day)


def test_chats_feedback_and_executions(rows):
    ann_chat, _, anonymous = rows["chats"]
    assert set(Chat.objects.in_period(PERIOD)) == {ann_chat, anonymous}
    assert list(Chat.objects.in_period(PERIOD).scoped(Scope(user_id=rows["ann"].pk))) == [ann_chat]
    rated = f.MessageFeedbackFactory(message=rows["answer"], rating=2, created_at=at(11))
    f.MessageFeedbackFactory(message=rows["late"], rating=None, created_at=at(12))
    assert list(MessageFeedback.objects.rated().in_period(PERIOD)) == [rated]
    assert not MessageFeedback.objects.rated().scoped(Scope(user_id=rows["ann"].pk + 999))
    run = f.CodeExecutionFactory(message=rows["answer"], model_provider="openai", created_at=at(12))
    assert list(CodeExecution.objects.in_period(PERIOD).scoped(Scope(provider="openai"))) == [run]
    assert not CodeExecution.objects.in_period(PERIOD).scoped(Scope(provider="azure")).exists()
