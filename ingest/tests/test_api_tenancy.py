"""Ingest API tenancy: a key names only the organisations, app users, chats
and messages of its own source (issue #17 point 2).

"Of its own source" is the row's ``source`` (core.models.Imported): the key's
``ingest_source``. Anything else (another application's rows, rows made in
the admin with no source) is refused with a 422 naming the field, and nothing
of the batch is written.
"""

from decimal import Decimal

import pytest
from django.db.models import Sum

from chats.models import Chat, Message, MessageFeedback
from core.models import AppUser, Organization
from core.tests.factories import SourceFactory
from ingest.tests.test_api_auth import make_key, post
from ingest.tests.test_api_batches import chat, feedback, message, refused, usage
from usage.models import DailyUsage, ModelUsage

pytestmark = pytest.mark.django_db


@pytest.fixture
def mine():
    return make_key()


@pytest.fixture
def theirs():
    return make_key()


def org_spend(org):
    return ModelUsage.objects.filter(organization=org).aggregate(s=Sum("cost"))["s"]


def test_organisation_of_another_source_cannot_be_named(client, mine, theirs):
    post(client, "chats", {"items": [chat(1, organization="victim")]}, theirs[0])
    victim = Organization.objects.get(slug="victim")
    assert victim.source == theirs[1].ingest_source

    response = post(client, "chats", {"items": [chat(2, organization="victim")]}, mine[0])

    assert refused(response) == {(0, "organization")}
    error = response.json()["errors"][0]
    assert error["type"] == "forbidden_reference"
    assert "not this source's" in error["message"]
    # nothing of the batch: no chat, no app user, no message of my source
    source = mine[1].ingest_source
    assert not Chat.objects.filter(source=source).exists()
    assert not AppUser.objects.filter(source=source).exists()


def test_the_attack_of_the_audit_files_no_spend_under_another_tenant(client, mine, theirs):
    # The audit: a chat in the victim's organisation, then usage on that chat
    # with a reported cost; the ledger filled the organisation from the chat.
    post(client, "chats", {"items": [chat(1, organization="victim")]}, theirs[0])
    victim = Organization.objects.get(slug="victim")
    attack = chat(2, user=None, organization="victim")
    assert post(client, "chats", {"items": [attack]}, mine[0]).status_code == 422
    response = post(client, "usage", {"items": [usage(1, chat_id="c-2", cost=5000)]}, mine[0])

    assert refused(response) == {(0, "chat_id")}
    assert org_spend(victim) is None
    assert not ModelUsage.objects.exists()
    assert not DailyUsage.objects.exists()


def test_organisation_made_in_the_admin_is_not_the_sources(client, mine):
    Organization.objects.create(slug="staff-made", name="Staff made")  # source None
    response = post(client, "chats", {"items": [chat(1, organization="staff-made")]}, mine[0])
    assert refused(response) == {(0, "organization")}
    assert not Chat.objects.exists()


def test_own_organisation_is_reused_and_a_new_slug_is_created_for_the_source(client, mine):
    source = mine[1].ingest_source
    first = post(client, "chats", {"items": [chat(1, organization="mine")]}, mine[0])
    again = post(client, "chats", {"items": [chat(2, organization="mine")]}, mine[0])
    assert (first.status_code, again.status_code) == (200, 200)
    org = Organization.objects.get(slug="mine")
    assert org.source == source
    assert set(Chat.objects.values_list("organization", flat=True)) == {org.pk}


def test_organisation_imported_from_an_application_cannot_be_named(client, mine):
    imported = SourceFactory()
    Organization.objects.create(source=imported, source_pk="7", slug="imported", name="Imp")
    response = post(client, "chats", {"items": [chat(1, organization="imported")]}, mine[0])
    assert refused(response) == {(0, "organization")}


def test_one_foreign_organisation_refuses_the_whole_batch(client, mine, theirs):
    post(client, "chats", {"items": [chat(1, organization="victim")]}, theirs[0])
    items = [chat(2, organization="mine"), chat(3, organization="victim")]
    response = post(client, "chats", {"items": items}, mine[0])
    assert refused(response) == {(1, "organization")}
    assert not Organization.objects.filter(slug="mine").exists()


def test_app_users_chats_and_messages_of_another_source_are_unknown(client, mine, theirs):
    post(client, "chats", {"items": [chat(1, [message(1), message(2)])]}, theirs[0])

    by_user = post(client, "chats", {"items": [chat(5, user="user-1")]}, mine[0])
    usage_user = post(client, "usage", {"items": [usage(1, user_id="user-1")]}, mine[0])
    usage_chat = post(client, "usage", {"items": [usage(2, chat_id="c-1")]}, mine[0])
    rating = post(client, "feedback", {"items": [feedback(1)]}, mine[0])

    assert refused(by_user) == {(0, "user")}
    assert refused(usage_user) == {(0, "user_id")}
    assert refused(usage_chat) == {(0, "chat_id")}
    assert refused(rating) == {(0, "message_id")}
    assert not ModelUsage.objects.exists()
    assert not MessageFeedback.objects.exists()


def test_the_same_client_ids_make_rows_of_ones_own_source(client, mine, theirs):
    post(client, "chats", {"items": [chat(1, [message(1)], title="Theirs")]}, theirs[0])
    post(client, "usage", {"items": [usage(1, cost=1)]}, theirs[0])
    # the same ids (chat, app user, message, usage) sent with another key
    mine_chat = chat(1, [message(1, content="mine")], title="Mine")
    mine_chat["user"] = {"id": "user-1", "email": "someone.else@example.com"}
    assert post(client, "chats", {"items": [mine_chat]}, mine[0]).status_code == 200
    assert post(client, "usage", {"items": [usage(1, cost=2)]}, mine[0]).status_code == 200

    their_source = theirs[1].ingest_source
    assert Chat.objects.get(source=their_source).title == "Theirs"
    assert Message.objects.get(source=their_source).content == "message 1"
    assert ModelUsage.objects.get(source=their_source).cost == Decimal(1)
    assert Chat.objects.count() == 2
    assert ModelUsage.objects.count() == 2
