"""Database-level rules of chats models: ratings 1–5, scores 0–1, roles."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from chats.models import Message, MessageFeedback
from core.tests.factories import ChatFactory, MessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat():
    return ChatFactory()


@pytest.mark.parametrize("rating", [0, 6])
def test_feedback_rating_out_of_1_to_5_refused(chat, rating):
    message = MessageFactory(chat=chat, role="assistant")

    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFeedback.objects.create(message=message, rating=rating)

    assert not MessageFeedback.objects.filter(message=message).exists()


def test_feedback_rating_1_5_and_null_accepted(chat):
    for rating in (1, 5, None):
        message = MessageFactory(chat=chat, role="assistant")
        MessageFeedback.objects.create(message=message, rating=rating)

    ratings = MessageFeedback.objects.order_by("id").values_list("rating", flat=True)
    assert list(ratings) == [1, 5, None]


def test_feedback_rating_bulk_insert_of_6_refused(chat):
    messages = MessageFactory.create_batch(2, chat=chat, role="assistant")

    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFeedback.objects.bulk_create(
            [
                MessageFeedback(message=messages[0], rating=3),
                MessageFeedback(message=messages[1], rating=6),
            ]
        )

    assert MessageFeedback.objects.count() == 0


def test_feedback_rating_7_full_clean_gives_readable_message(chat):
    message = MessageFactory(chat=chat, role="assistant")
    feedback = MessageFeedback(message=message, rating=7)

    with pytest.raises(ValidationError) as excinfo:
        feedback.full_clean()

    assert excinfo.value.messages == ["Rating must be between 1 and 5."]


@pytest.mark.parametrize(
    ("field", "value"),
    [("confidence", 1.5), ("confidence", -0.1), ("signal_strength", 1.01)],
)
def test_message_score_outside_0_1_refused(chat, field, value):
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(chat=chat, role="assistant", content="x", **{field: value})

    assert Message.objects.count() == 0


def test_message_scores_at_bounds_0_and_1_accepted(chat):
    Message.objects.create(
        chat=chat, role="assistant", content="low", confidence=0, signal_strength=0
    )
    Message.objects.create(
        chat=chat, role="assistant", content="high", confidence=1, signal_strength=1
    )

    stored = Message.objects.order_by("content").values_list(
        "content", "confidence", "signal_strength"
    )
    assert list(stored) == [("high", 1.0, 1.0), ("low", 0.0, 0.0)]


def test_message_role_ai_refused(chat):
    # auto-analyst's sender 'ai' must be mapped to 'assistant' by the importer.
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(chat=chat, role="ai", content="Hello")

    Message.objects.create(chat=chat, role="assistant", content="Hello")
    assert list(Message.objects.values_list("role", flat=True)) == ["assistant"]
