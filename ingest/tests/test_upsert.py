"""The one upsert-by-source (#14.4), shared by the importers and the ingest API."""

import datetime as dt

import pytest
from django.utils import timezone

from chats.models import Chat, Message
from core.models import AppUser, Source
from ingest import upsert
from ingest.api import writers as api_writers
from ingest.importers import writers as importer_writers

pytestmark = pytest.mark.django_db


@pytest.fixture
def source():
    return Source.objects.create(name="s", kind=Source.Kind.AI_CHAT_V2)


def test_created_updated_unchanged_by_source_pk(source, django_assert_num_queries):
    other = Source.objects.create(name="other", kind=Source.Kind.AI_CHAT_V2)
    AppUser.objects.create(source=other, source_pk="u1", email="x@example.com")  # not ours
    first = upsert.upsert_by_source(AppUser, source, {"u1": {"email": "a@example.com"}})
    assert first["u1"][0] == "created"

    with django_assert_num_queries(3):  # read, insert, update
        second = upsert.upsert_by_source(
            AppUser,
            source,
            {"u1": {"email": "a@example.com", "full_name": "Ana"}, "u2": {"email": None}},
        )

    assert second["u1"] == ("updated", first["u1"][1])
    assert second["u2"][0] == "created"
    third = upsert.upsert_by_source(AppUser, source, {"u1": {"full_name": "Ana"}})
    assert third["u1"][0] == "unchanged"
    assert AppUser.objects.get(source=other).email == "x@example.com"


def test_a_computed_default_is_set_on_create_only(source):
    (state, pk) = upsert.upsert_by_source(
        AppUser, source, {"u1": {"created_at": upsert.DEFAULTED}}
    )["u1"]
    created_at = AppUser.objects.get(pk=pk).created_at
    assert abs(created_at - timezone.now()) < dt.timedelta(minutes=1)

    again = upsert.upsert_by_source(AppUser, source, {"u1": {"created_at": upsert.DEFAULTED}})

    assert again["u1"] == ("unchanged", pk)
    assert AppUser.objects.get(pk=pk).created_at == created_at


def test_a_field_set_here_is_kept_when_its_guard_is_set(source):
    chat = Chat.objects.create(source=source, source_pk="c1")
    message = Message.objects.create(
        source=source, source_pk="m1", chat=chat, role="assistant", content="x"
    )
    Message.objects.filter(pk=message.pk).update(is_mistake=True, mistake_flagged_at=timezone.now())

    result = upsert.upsert_by_source(
        Message,
        source,
        {"m1": {"is_mistake": False, "content": "y"}},
        keep_local={"is_mistake": "mistake_flagged_at"},
    )

    message.refresh_from_db()
    assert result["m1"][0] == "updated"
    assert (message.is_mistake, message.content) == (True, "y")


def test_the_importers_and_the_api_share_it(source, monkeypatch):
    calls = []
    real = upsert.upsert_by_source

    def spy(model, *args, **kwargs):
        calls.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(importer_writers, "upsert_by_source", spy)
    monkeypatch.setattr(api_writers, "upsert_by_source", spy)
    importer_writers.ModelWriter(Chat, source).write([])
    counts, pks = api_writers._upsert(Chat, source, {"c9": {"title": "T"}})

    assert calls == [Chat, Chat]
    assert counts == {"created": 1, "updated": 0, "unchanged": 0}
    assert pks == {"c9": Chat.objects.get(source_pk="c9").pk}
