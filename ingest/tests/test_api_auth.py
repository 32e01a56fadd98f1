"""Ingest API authentication: API keys, scopes, use counting, the docs page.

``make_key`` and ``post`` are shared by the other test_api* modules.
"""

import datetime as dt
import json

import pytest
from django.utils import timezone

from core.apikeys import generate_api_key
from core.models import ApiKey, Source
from core.tests.factories import ApiKeyFactory, SourceFactory, UserFactory
from usage.models import ModelUsage

USAGE = {
    "items": [
        {
            "id": "u-1",
            "model_name": "gpt-4o-mini",
            "provider": "openai",
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "timestamp": "2024-05-01T10:00:00Z",
        }
    ]
}


def make_key(**fields):
    """A saved ApiKey and its raw key; by default active, all scopes, with a source."""
    raw, prefix, key_hash = generate_api_key()
    if "ingest_source" not in fields:
        fields["ingest_source"] = SourceFactory(kind=Source.Kind.API)
    fields.setdefault("permissions", None)
    key = ApiKeyFactory(key_hash=key_hash, key_prefix=prefix, user=None, **fields)
    return raw, key


def post(client, path, body, raw_key=None, **headers):
    if raw_key is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {raw_key}")
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(f"/api/v1/{path}", data, content_type="application/json", **headers)


pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["usage", "chats", "feedback"])
def test_missing_key_is_401_with_json(client, path):
    response = post(client, path, USAGE)
    assert response.status_code == 401
    assert "Missing API key" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("fields", "status", "detail"),
    [
        ({"is_active": False}, 401, "revoked"),
        ({"expires_at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}, 401, "expired"),
        ({"ingest_source": None}, 403, "no ingest source"),
        ({"permissions": ["chats:write"]}, 403, "lacks the 'usage:write' permission"),
        ({"permissions": {"usage:write": True}}, 403, "lacks"),
    ],
    ids=["revoked", "expired", "no-source", "wrong-scope", "dict-permissions"],
)
def test_refused_key_writes_nothing_and_is_not_counted(client, fields, status, detail):
    raw, key = make_key(**fields)
    response = post(client, "usage", USAGE, raw)
    assert response.status_code == status
    assert detail in response.json()["detail"]
    key.refresh_from_db()
    assert (key.usage_count, key.last_used) == (0, None)
    assert not ModelUsage.objects.exists()


def test_unknown_key_is_401(client):
    make_key()
    response = post(client, "usage", USAGE, "aa_not-a-key-anyone-was-given")
    assert response.status_code == 401
    assert response.json() == {"detail": "Unknown API key."}


@pytest.mark.parametrize(
    "permissions", [None, [], ["usage:write"], ["feedback:write", "usage:write"]]
)
def test_null_empty_or_listing_permissions_grant_the_scope(client, permissions):
    raw, _ = make_key(permissions=permissions)
    assert post(client, "usage", USAGE, raw).status_code == 200


def test_key_expiring_later_is_accepted(client):
    raw, _ = make_key(expires_at=timezone.now() + dt.timedelta(days=1))
    assert post(client, "usage", USAGE, raw).status_code == 200


def test_x_api_key_header_is_accepted(client):
    raw, key = make_key()
    response = post(client, "usage", USAGE, HTTP_X_API_KEY=raw)
    assert response.status_code == 200
    assert ModelUsage.objects.get().source == key.ingest_source


def test_other_authorization_schemes_are_not_keys(client):
    raw, _ = make_key()
    response = post(client, "usage", USAGE, HTTP_AUTHORIZATION=f"Token {raw}")
    assert response.status_code == 401


def test_each_accepted_request_counts_one_use(client):
    raw, key = make_key()
    before = timezone.now()
    post(client, "usage", USAGE, raw)
    post(client, "usage", USAGE, raw)
    key.refresh_from_db()
    assert key.usage_count == 2
    assert key.last_used >= before


def test_rows_belong_to_the_keys_source(client):
    raw_a, key_a = make_key()
    raw_b, key_b = make_key()
    post(client, "usage", USAGE, raw_a)
    post(client, "usage", USAGE, raw_b)
    # the same client id in two sources is two rows
    assert sorted(ModelUsage.objects.values_list("source_id", flat=True)) == sorted(
        [key_a.ingest_source_id, key_b.ingest_source_id]
    )


def test_raw_key_is_never_logged(client, caplog):
    raw, _ = make_key(is_active=False)
    with caplog.at_level("DEBUG"):
        post(client, "usage", USAGE, raw)
        post(client, "usage", USAGE, HTTP_AUTHORIZATION=f"Weird {raw}")
    assert raw not in caplog.text
    assert not ApiKey.objects.filter(key_hash=raw).exists()


def test_openapi_document_is_public_and_docs_are_for_staff(client):
    assert client.get("/api/v1/openapi.json").status_code == 200
    response = client.get("/api/v1/docs")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    client.force_login(UserFactory(is_staff=True))
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content
    assert b"/api/v1/openapi.json" in response.content
