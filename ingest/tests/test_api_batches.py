"""Ingest API batches: validation, limits, idempotency, atomicity, pricing."""

import json
from decimal import Decimal
from io import BytesIO

import pytest
from django.db import connection
from django.test import RequestFactory

from chats.models import Chat, Message, MessageFeedback
from core.models import AppUser, Organization
from core.tests.factories import AppUserFactory, ModelPriceFactory
from ingest.api.errors import limit_body
from ingest.api.schemas import MAX_ITEMS
from ingest.tests.test_api_auth import make_key, post
from usage.models import DailyUsage, ModelUsage

pytestmark = pytest.mark.django_db


@pytest.fixture
def key():
    return make_key()


@pytest.fixture
def raw(key):
    return key[0]


@pytest.fixture
def source(key):
    return key[1].ingest_source


def usage(n=1, **fields):
    return {
        "id": f"u-{n}",
        "model_name": "gpt-4o-mini",
        "provider": "openai",
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "timestamp": f"2024-05-0{1 + n % 3}T10:00:00+02:00",
        **fields,
    }


def chat(n=1, messages=(), **fields):
    return {
        "id": f"c-{n}",
        "user": {"id": f"user-{n}", "email": f"User{n}@Example.com", "full_name": f"User {n}"},
        "title": f"Sales question {n}",
        "created_at": "2024-05-01T09:00:00Z",
        "messages": list(messages),
        **fields,
    }


def message(n=1, **fields):
    return {
        "id": f"m-{n}",
        "role": "assistant" if n % 2 == 0 else "user",
        "content": f"message {n}",
        "created_at": f"2024-05-01T09:{n % 60:02d}:00Z",
        **fields,
    }


def feedback(n=1, **fields):
    return {
        "id": f"f-{n}",
        "message_id": f"m-{n}",
        "rating": 4,
        "created_at": "2024-05-01T10:00:00Z",
        **fields,
    }


def refused(response):
    assert response.status_code == 422, response.content
    return {(r["index"], e["path"]) for r in response.json()["refused"] for e in r["errors"]}


# ---- validation --------------------------------------------------------------


def test_rating_7_is_refused_with_the_field_path(client, raw, source):
    post(client, "chats", {"items": [chat(1, [message(1), message(2)])]}, raw)
    response = post(client, "feedback", {"items": [feedback(1), feedback(2, rating=7)]}, raw)
    body = response.json()
    assert refused(response) == {(1, "rating")}
    assert [e["path"] for e in body["errors"]] == ["items.1.rating"]
    assert body["refused"][0]["id"] == "f-2"
    assert body["detail"] == "1 item(s) refused; nothing was written."
    assert not MessageFeedback.objects.exists()


def test_confidence_2_is_refused_with_the_nested_path(client, raw):
    bad = chat(1, [message(1), message(2, confidence=2.0, signal_strength=-0.1)])
    response = post(client, "chats", {"items": [bad]}, raw)
    assert [e["path"] for e in response.json()["errors"]] == [
        "items.0.messages.1.confidence",
        "items.0.messages.1.signal_strength",
    ]
    assert not Chat.objects.exists()


def test_every_refused_item_is_listed(client, raw):
    items = [usage(0), usage(1, prompt_tokens=-1), usage(2), usage(3, timestamp="yesterday")]
    items[2].pop("model_name")
    response = post(client, "usage", {"items": items}, raw)
    assert refused(response) == {(1, "prompt_tokens"), (2, "model_name"), (3, "timestamp")}
    assert [r["id"] for r in response.json()["refused"]] == ["u-1", "u-2", "u-3"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timestamp", "2024-05-01T10:00:00"),  # no time zone
        ("model_name", "gpt\x00"),  # PostgreSQL cannot store NUL
        ("model_name", "m" * 101),  # longer than the column
        ("prompt_tokens", 10**12),
        ("cost", -1),
        ("colour", "blue"),  # unknown field
    ],
    ids=["naive-time", "nul", "too-long", "too-many-tokens", "negative-cost", "unknown-field"],
)
def test_values_the_database_cannot_take_are_422(client, raw, field, value):
    response = post(client, "usage", {"items": [usage(1, **{field: value})]}, raw)
    assert refused(response) == {(0, field)}


def test_empty_batch_is_refused(client, raw):
    response = post(client, "usage", {"items": []}, raw)
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["items"]


def test_batch_over_the_item_limit_is_refused(client, raw):
    response = post(client, "usage", {"items": [usage(n) for n in range(MAX_ITEMS + 1)]}, raw)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "items"
    assert "at most 1000" in response.json()["errors"][0]["message"]
    assert not ModelUsage.objects.exists()


@pytest.mark.parametrize(
    ("body", "status"),
    [("{not json", 400), (b"\xff\xfe", 400), ("[1, 2]", 422), ('"items"', 422), ("", 422)],
)
def test_bodies_that_are_not_a_batch_get_a_json_error(client, raw, body, status):
    response = post(client, "usage", body, raw)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["detail"]


# ---- body size ---------------------------------------------------------------


def test_body_over_the_limit_is_413(client, raw, settings):
    settings.API_MAX_BODY_BYTES = 2000
    response = post(client, "usage", {"items": [usage(n) for n in range(20)]}, raw)
    assert response.status_code == 413
    assert "2000 bytes" in response.json()["detail"]
    assert post(client, "usage", {"items": [usage(1)]}, raw).status_code == 200


def test_declared_length_over_the_limit_is_413_before_reading(client, raw, settings):
    settings.API_MAX_BODY_BYTES = 2000
    response = post(client, "usage", {"items": [usage(1)]}, raw, CONTENT_LENGTH="10000000")
    assert response.status_code == 413


def test_body_over_djangos_upload_limit_but_under_the_apis_is_accepted(client, raw, settings):
    # Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) would answer an HTML 400.
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE < 3_000_000 < settings.API_MAX_BODY_BYTES
    body = json.dumps({"items": [usage(1)]}) + " " * 3_000_000
    assert post(client, "usage", body, raw).json()["created"] == 1


def test_streamed_body_without_length_is_cut_at_the_limit(settings):
    settings.API_MAX_BODY_BYTES = 100
    guarded = limit_body(lambda request: request.body)
    request = RequestFactory().post("/api/v1/usage", b"{}", content_type="application/json")
    del request.META["CONTENT_LENGTH"]
    request._stream = BytesIO(b"x" * 101)  # as a chunked upload arrives
    assert guarded(request).status_code == 413
    request = RequestFactory().post("/api/v1/usage", b"y" * 100, content_type="application/json")
    assert guarded(request) == b"y" * 100


# ---- usage: idempotency, roll-up, pricing -------------------------------------


def ledger_and_rollup_sums(source):
    """(requests, prompt, completion, total, cost) per model from raw ledger rows
    with plain SQL, and the same from the roll-up rows."""
    sums = "COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens), SUM(cost)"
    rollup = (
        "SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens), SUM(cost)"
    )
    result = []
    for table, columns in ((ModelUsage._meta.db_table, sums), (DailyUsage._meta.db_table, rollup)):
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT model_name, {columns} FROM {table} WHERE source_id = %s "
                "GROUP BY model_name ORDER BY model_name",
                [source.pk],
            )
            rows = cursor.fetchall()
        result.append([(*row[:5], Decimal(str(row[5])).quantize(Decimal("1e-8"))) for row in rows])
    return result


def test_same_usage_batch_twice_creates_nothing_the_second_time(client, raw, source):
    batch = {"items": [usage(n, cost=0.0125) for n in range(5)]}
    assert post(client, "usage", batch, raw).json() == {"created": 5, "updated": 0, "unchanged": 0}
    assert post(client, "usage", batch, raw).json() == {"created": 0, "updated": 0, "unchanged": 5}
    assert ModelUsage.objects.count() == 5
    ledger, rollup = ledger_and_rollup_sums(source)
    assert ledger == rollup == [("gpt-4o-mini", 5, 5000, 2500, 7500, Decimal("0.06250000"))]


def test_changed_usage_item_updates_and_the_rollup_follows(client, raw, source):
    post(client, "usage", {"items": [usage(1, cost=0.5), usage(2, cost=0.25)]}, raw)
    changed = usage(2, model_name="gpt-4o", prompt_tokens=10, completion_tokens=5, cost=1.5)
    response = post(client, "usage", {"items": [usage(1, cost=0.5), changed]}, raw)
    assert response.json() == {"created": 0, "updated": 1, "unchanged": 1}
    row = ModelUsage.objects.get(source_pk="u-2")
    assert (row.model_name, row.total_tokens, row.cost) == ("gpt-4o", 15, Decimal("1.5"))
    ledger, rollup = ledger_and_rollup_sums(source)
    assert ledger == rollup
    assert ledger == [
        ("gpt-4o", 1, 10, 5, 15, Decimal("1.50000000")),
        ("gpt-4o-mini", 1, 1000, 500, 1500, Decimal("0.50000000")),
    ]


def test_usage_without_cost_is_priced_from_model_prices(client, raw):
    ModelPriceFactory(
        model_name="gpt-4o-mini",
        provider="openai",
        input_per_million=Decimal("0.15"),
        output_per_million=Decimal("0.60"),
        effective_from="2024-01-01",
    )
    items = [usage(1), usage(2, cost=0.01), usage(3, model_name="unpriced-model")]
    post(client, "usage", {"items": items}, raw)
    rows = {u.source_pk: u for u in ModelUsage.objects.all()}
    # 1000 prompt tokens at $0.15/M + 500 completion tokens at $0.60/M
    assert rows["u-1"].cost == Decimal("0.00045")
    assert rows["u-1"].cost_source == ModelUsage.CostSource.COMPUTED
    assert (rows["u-2"].cost, rows["u-2"].cost_source) == (Decimal("0.01"), "reported")
    assert (rows["u-3"].cost, rows["u-3"].cost_source) == (None, "unpriced")
    # sent again without cost: priced the same, so unchanged
    assert post(client, "usage", {"items": items}, raw).json()["unchanged"] == 3


def test_usage_links_users_and_chats_the_source_sent(client, raw, source):
    post(client, "chats", {"items": [chat(1, organization="acme")]}, raw)
    post(client, "usage", {"items": [usage(1, user_id="user-1", chat_id="c-1")]}, raw)
    row = ModelUsage.objects.select_related("user", "chat", "organization").get()
    assert (row.user.source_pk, row.chat.source_pk) == ("user-1", "c-1")
    assert row.organization is None  # the user has none; the chat's is used only without a user


def test_usage_naming_unknown_user_or_chat_refuses_the_batch(client, raw):
    items = [usage(1), usage(2, user_id="ghost"), usage(3, chat_id=42)]
    response = post(client, "usage", {"items": items}, raw)
    assert refused(response) == {(1, "user_id"), (2, "chat_id")}
    errors = {e["path"]: e["message"] for e in response.json()["errors"]}
    assert errors["items.2.chat_id"] == "unknown chat id '42': this source never sent it"
    assert not ModelUsage.objects.exists()
    assert not DailyUsage.objects.exists()


def test_ids_of_another_source_are_unknown(client, raw):
    other_raw, _ = make_key()
    post(client, "chats", {"items": [chat(1)]}, other_raw)
    response = post(client, "usage", {"items": [usage(1, chat_id="c-1")]}, raw)
    assert refused(response) == {(0, "chat_id")}


def test_duplicate_ids_in_a_batch_are_refused(client, raw):
    response = post(client, "usage", {"items": [usage(1), usage(2), usage(1)]}, raw)
    assert refused(response) == {(2, "id")}
    assert not ModelUsage.objects.exists()


def test_usage_batch_query_count(client, raw, source, django_assert_num_queries):
    # 1 key lookup, 1 key use UPDATE, 3 savepoints + 3 releases (write_usage,
    # upsert_usage and its lock-and-insert attempt), 1 price list, 1 existing
    # rows (locked), 1 INSERT ledger,
    # 5 INSERTs of roll-up deltas (the user grain, the model grain, the daily
    # totals and the app user's day and month; no request times, so no
    # latency rows); whatever the batch size. (No user/chat ids: no lookups.)
    with django_assert_num_queries(16):
        response = post(client, "usage", {"items": [usage(n) for n in range(50)]}, raw)
    assert response.json()["created"] == 50


# ---- chats ------------------------------------------------------------------


def test_chats_with_users_messages_and_organisation(client, raw, source):
    metadata = {
        "persona": "analyst",
        "confidence": 0.8,
        "signal_strength": 1,
        "needs_knowledge": True,
    }
    batch = {"items": [chat(1, [message(1), message(2, **metadata)], organization="acme")]}
    response = post(client, "chats", batch, raw)
    assert response.json() == {
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "messages": {"created": 2, "updated": 0, "unchanged": 0},
        "users": {"created": 1, "updated": 0, "unchanged": 0},
    }
    saved = Chat.objects.select_related("user", "organization").get()
    assert (saved.source, saved.source_pk, saved.title) == (source, "c-1", "Sales question 1")
    assert (saved.user.source_pk, saved.user.email) == ("user-1", "User1@Example.com")
    assert saved.organization.slug == "acme"
    assert (saved.message_count, saved.last_message_at.minute) == (2, 2)
    answer = Message.objects.get(source_pk="m-2")
    assert (answer.role, answer.persona, answer.confidence, answer.needs_knowledge) == (
        "assistant",
        "analyst",
        0.8,
        True,
    )
    second = post(client, "chats", batch, raw).json()
    assert (second["created"], second["unchanged"], second["messages"]["unchanged"]) == (0, 1, 2)
    assert Organization.objects.count() == 1


def test_chats_batch_query_count(client, raw, django_assert_num_queries):
    items = [
        chat(n, [message(n * 10), message(n * 10 + 1)], organization="acme") for n in range(10)
    ]
    # 1 key lookup, 1 key use UPDATE, savepoint; app users: 1 e-mail check (no
    # usernames sent: no username check), 1 existing, 1 INSERT; organisations:
    # 1 lookup, 1 INSERT; chats: 1 existing, 1 INSERT; messages: 1 existing,
    # 1 INSERT; 1 UPDATE of the chats' last_message_at and message_count;
    # the feedback roll-up of the messages' one (day, source) key
    # (chats.feedback_rollups): on PostgreSQL the shared chat lock and the
    # key's lock (2), its old rows deleted, its ratings and answers counted,
    # its new rows inserted (4); release. None grows with the batch (SQLite
    # splits INSERTs past 999 parameters; 20 messages stay under it).
    locks = 2 if connection.vendor == "postgresql" else 0
    with django_assert_num_queries(14 + locks + 4):
        response = post(client, "chats", {"items": items}, raw)
    assert response.json()["messages"]["created"] == 20


def test_changed_message_updates_and_new_one_is_added(client, raw):
    post(client, "chats", {"items": [chat(1, [message(1)])]}, raw)
    batch = {"items": [chat(1, [message(1, content="edited"), message(2)])]}
    counts = post(client, "chats", batch, raw).json()
    assert counts["unchanged"] == 1
    assert counts["messages"] == {"created": 1, "updated": 1, "unchanged": 0}
    assert Message.objects.get(source_pk="m-1").content == "edited"
    assert Chat.objects.get().message_count == 2


def test_chat_user_by_plain_id_must_be_known(client, raw):
    post(client, "chats", {"items": [chat(1)]}, raw)
    items = [chat(2, user="user-1"), chat(3, user="nobody"), chat(4, user=None)]
    response = post(client, "chats", {"items": items}, raw)
    assert refused(response) == {(1, "user")}
    del items[1]
    assert post(client, "chats", {"items": items}, raw).json()["created"] == 2
    assert Chat.objects.get(source_pk="c-2").user.source_pk == "user-1"
    assert Chat.objects.get(source_pk="c-4").user is None


def test_user_object_updates_only_the_fields_sent(client, raw):
    post(client, "chats", {"items": [chat(1)]}, raw)
    renamed = chat(1, user={"id": "user-1", "full_name": "Renamed"})
    assert post(client, "chats", {"items": [renamed]}, raw).json()["users"]["updated"] == 1
    user = AppUser.objects.get(source_pk="user-1")
    assert (user.full_name, user.email) == ("Renamed", "User1@Example.com")


def test_email_of_another_app_user_is_refused(client, raw):
    AppUserFactory(email="taken@example.com")
    items = [
        chat(1, user={"id": "a", "email": "TAKEN@example.com"}),
        chat(2, user={"id": "b", "email": "same@example.com"}),
        chat(3, user={"id": "c", "email": "Same@example.com"}),
    ]
    response = post(client, "chats", {"items": items}, raw)
    assert refused(response) == {(0, "user.email"), (2, "user.email")}
    assert not AppUser.objects.filter(source__isnull=False).exists()


def test_duplicate_message_ids_in_a_batch_are_refused(client, raw):
    items = [chat(1, [message(1)]), chat(2, [message(2), message(1)])]
    response = post(client, "chats", {"items": items}, raw)
    assert refused(response) == {(1, "messages.1.id")}


def test_too_many_messages_in_a_batch_are_refused(client, raw):
    chats = [chat(n, [message(n * 1000 + m) for m in range(1000)]) for n in range(11)]
    for item in chats:
        item.pop("user")
    response = post(client, "chats", {"items": chats}, raw)
    assert response.status_code == 422
    assert "at most 10000 messages" in response.json()["errors"][0]["message"]


# ---- feedback and atomicity ---------------------------------------------------


def test_feedback_is_idempotent_and_updates_a_changed_rating(client, raw):
    post(client, "chats", {"items": [chat(1, [message(1), message(2)])]}, raw)
    batch = {"items": [feedback(1), feedback(2, rating=2, temperature=0.7, max_tokens=512)]}
    assert post(client, "feedback", batch, raw).json() == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
    }
    batch["items"][1]["rating"] = 1
    assert post(client, "feedback", batch, raw).json() == {
        "created": 0,
        "updated": 1,
        "unchanged": 1,
    }
    assert MessageFeedback.objects.get(source_pk="f-2").rating == 1


def test_feedback_for_unknown_message_or_rated_message_is_refused(client, raw):
    post(client, "chats", {"items": [chat(1, [message(1), message(2)])]}, raw)
    post(client, "feedback", {"items": [feedback(1)]}, raw)
    items = [feedback(2), feedback(3, message_id="m-1"), feedback(4, message_id="never-sent")]
    response = post(client, "feedback", {"items": items}, raw)
    assert refused(response) == {(1, "message_id"), (2, "message_id")}
    messages = [e["message"] for e in response.json()["errors"]]
    assert messages == [
        "message 'm-1' already has another feedback",
        "unknown message id 'never-sent': this source never sent it",
    ]
    assert list(MessageFeedback.objects.values_list("source_pk", flat=True)) == ["f-1"]


def test_a_batch_with_one_bad_item_writes_nothing(client, raw):
    good = [chat(n, [message(n * 10 + 1)]) for n in range(1, 4)]
    bad = chat(4, [message(41, role="robot")])
    response = post(client, "chats", {"items": [*good, bad]}, raw)
    assert refused(response) == {(3, "messages.0.role")}
    assert not Chat.objects.exists()
    assert not Message.objects.exists()
    assert not AppUser.objects.filter(source__isnull=False).exists()


def test_response_is_json_with_the_counts(client, raw):
    response = post(client, "usage", {"items": [usage(1)]}, raw)
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(response.content) == {"created": 1, "updated": 0, "unchanged": 0}
