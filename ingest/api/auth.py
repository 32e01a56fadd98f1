"""API-key authentication of the ingest API.

A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` and
looked up by its SHA-256 (``core.apikeys.hash_api_key``); the raw key is
never stored or logged.

- 401: no key, an unknown key, a revoked key (``is_active`` false) or an
  expired one (``expires_at`` past).
- 403: a key without an ``ingest_source`` (it cannot say where rows belong),
  or one whose permissions lack the endpoint's scope.

Permissions: when ``ApiKey.permissions`` is a list, the endpoint's scope
(``usage:write``, ``chats:write``, ``feedback:write``) must be in it; null or
empty means every ingest scope. Any other value grants nothing.

A request that passes adds one to ``usage_count`` and sets ``last_used`` in
one UPDATE.
"""

from django.db.models import F
from django.utils import timezone
from ninja.errors import HttpError
from ninja.security import APIKeyHeader, HttpBearer

from core.apikeys import hash_api_key
from core.models import ApiKey

SCOPES = ("usage:write", "chats:write", "feedback:write")


def authenticate(raw_key, scope):
    """The ApiKey (with its ingest_source) that may write ``scope``, or an HttpError."""
    key = (
        ApiKey.objects.select_related("ingest_source")
        .filter(key_hash=hash_api_key(raw_key))
        .first()
    )
    now = timezone.now()
    if key is None:
        raise HttpError(401, "Unknown API key.")
    if not key.is_active:
        raise HttpError(401, "This API key has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise HttpError(401, "This API key has expired.")
    if key.ingest_source is None:
        raise HttpError(403, "This API key has no ingest source; an admin must set one.")
    if not _grants(key.permissions, scope):
        raise HttpError(403, f"This API key lacks the '{scope}' permission.")
    ApiKey.objects.filter(pk=key.pk).update(usage_count=F("usage_count") + 1, last_used=now)
    return key


def _grants(permissions, scope):
    if not permissions:
        return True
    return isinstance(permissions, list) and scope in permissions


class BearerKey(HttpBearer):
    """``Authorization: Bearer <key>``."""

    def __init__(self, scope):
        self.scope = scope
        super().__init__()

    def __call__(self, request):
        # ninja's HttpBearer logs an unexpected header whole; this never logs it.
        scheme, _, token = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request, token):
        return authenticate(token, self.scope)


class HeaderKey(APIKeyHeader):
    """``X-API-Key: <key>``."""

    param_name = "X-API-Key"

    def __init__(self, scope):
        self.scope = scope
        super().__init__()

    def authenticate(self, request, key):
        return authenticate(key, self.scope) if key else None


def api_key(scope):
    """The auth of an endpoint that writes ``scope``: either header will do."""
    assert scope in SCOPES, scope
    return [BearerKey(scope), HeaderKey(scope)]
