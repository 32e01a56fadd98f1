"""Ingest API strictness (issue #17 point 7): a string is not a number, a
number is not a time or a boolean; chunked bodies are read, within the limit.
"""

import json
from io import BytesIO

import pytest

from chats.models import Chat, Message, MessageFeedback
from ingest.tests.test_api_auth import make_key, post
from ingest.tests.test_api_batches import chat, feedback, message, refused, usage
from usage.models import DailyUsage, ModelUsage

pytestmark = pytest.mark.django_db


@pytest.fixture
def raw():
    return make_key()[0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt_tokens", "10"),
        ("prompt_tokens", True),
        ("prompt_tokens", 10.0),
        ("completion_tokens", "1e3"),
        ("total_tokens", False),
        ("query_size", "5"),
        ("request_time_ms", "120"),
        ("cost", "0.01"),
        ("cost", True),
        ("is_streaming", "yes"),
        ("is_streaming", 1),
        ("is_streaming", "true"),
        ("timestamp", 1714557600),
        ("timestamp", "1714557600"),
        ("timestamp", 1714557600.5),
        ("timestamp", True),
    ],
)
def test_usage_values_of_the_wrong_json_type_are_refused(client, raw, field, value):
    response = post(client, "usage", {"items": [usage(1, **{field: value})]}, raw)
    assert refused(response) == {(0, field)}
    assert not ModelUsage.objects.exists()
    assert not DailyUsage.objects.exists()


def test_the_right_json_types_are_taken(client, raw):
    item = usage(
        1,
        prompt_tokens=10,
        completion_tokens=0,
        total_tokens=10,
        cost=0.25,
        is_streaming=True,
        request_time_ms=120,
        timestamp="2024-05-01T10:00:00.123456+02:00",
    )
    assert post(client, "usage", {"items": [item]}, raw).status_code == 200
    row = ModelUsage.objects.get()
    assert (row.prompt_tokens, str(row.cost), row.is_streaming) == (10, "0.25000000", True)
    assert row.timestamp.isoformat() == "2024-05-01T08:00:00.123456+00:00"


def test_a_client_id_may_still_be_a_json_integer(client, raw):
    assert post(client, "usage", {"items": [usage(1, id=17)]}, raw).status_code == 200
    assert ModelUsage.objects.get().source_pk == "17"


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"confidence": "0.5"}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"needs_knowledge": "yes"}, "needs_knowledge"),
        ({"context_clarity": 0}, "context_clarity"),
        ({"prompt_tokens": "12"}, "prompt_tokens"),
        ({"created_at": 1714557600}, "created_at"),
    ],
)
def test_message_values_of_the_wrong_json_type_are_refused(client, raw, fields, path):
    bad = chat(1, [message(1, **fields)])
    response = post(client, "chats", {"items": [bad]}, raw)
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == [f"items.0.messages.0.{path}"]
    assert not Chat.objects.exists()
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("rating", "4"), ("rating", True), ("rating", 4.0), ("temperature", "0.7")],
)
def test_feedback_values_of_the_wrong_json_type_are_refused(client, raw, field, value):
    post(client, "chats", {"items": [chat(1, [message(1)])]}, raw)
    response = post(client, "feedback", {"items": [feedback(1, **{field: value})]}, raw)
    assert refused(response) == {(0, field)}
    assert not MessageFeedback.objects.exists()


def test_a_time_before_2000_or_past_tomorrow_is_refused(client, raw):
    items = [usage(1, timestamp="1999-12-31T23:59:59Z"), usage(2, timestamp="2999-01-01T00:00Z")]
    response = post(client, "usage", {"items": items}, raw)
    assert refused(response) == {(0, "timestamp"), (1, "timestamp")}


# ---- chunked bodies ----------------------------------------------------------


def post_chunked(client, body, raw):
    """A POST as gunicorn hands a chunked upload to Django: Transfer-Encoding
    chunked, no CONTENT_LENGTH, the de-chunked bytes in wsgi.input."""
    return client.generic(
        "POST",
        "/api/v1/usage",
        b"",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
        **{"wsgi.input": BytesIO(body)},
    )


def test_a_chunked_body_is_read(client, raw):
    body = json.dumps({"items": [usage(1), usage(2)]}).encode()
    response = post_chunked(client, body, raw)
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 2
    assert ModelUsage.objects.count() == 2


def test_a_chunked_body_over_the_limit_is_413(client, raw, settings):
    body = json.dumps({"items": [usage(n) for n in range(20)]}).encode()
    settings.API_MAX_BODY_BYTES = len(body) - 1
    response = post_chunked(client, body, raw)
    assert response.status_code == 413
    assert not ModelUsage.objects.exists()
    settings.API_MAX_BODY_BYTES = len(body)
    assert post_chunked(client, body, raw).status_code == 200
