"""How the ingest API says no: JSON errors, refused items, the body-size guard.

Every refusal is JSON ({"detail": ..., "errors": [...], "refused": [...]}):
field errors carry the dotted path of the field (``items.3.rating``), and a
refused batch lists every refused item with its reasons. Nothing of a batch is
written when any item is refused.
"""

import json
from functools import wraps
from io import BytesIO

from django.conf import settings
from django.db import DataError, IntegrityError
from django.http import JsonResponse
from ninja.errors import AuthenticationError, HttpError, ValidationError


class Refused(Exception):
    """Items of a batch that validated but name rows the source never sent."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__(errors)


class Refusals:
    """Collects the reasons to refuse items of a batch, then refuses them all."""

    def __init__(self):
        self.errors = []

    def add(self, path, message, type_):
        self.errors.append({"path": path, "message": message, "type": type_})

    def raise_if_any(self):
        if self.errors:
            raise Refused(self.errors)


def _path(loc):
    # ninja's loc is ("body", <parameter name>, "items", 3, "rating").
    parts = loc[2:] if loc[:1] == ("body",) else loc
    return ".".join(str(part) for part in parts) or "body"


def _raw_items(request):
    try:
        items = json.loads(request.body).get("items")
    except (ValueError, AttributeError):
        return []
    return items if isinstance(items, list) else []


def refusal_response(request, errors):
    """422 with every field error and, per refused item, its index, id and reasons."""
    items = _raw_items(request)
    refused = {}
    for error in errors:
        head, _, rest = error["path"].partition(".")
        index, _, field = rest.partition(".")
        if head != "items" or not index.isdigit():
            continue
        index = int(index)
        raw = items[index] if index < len(items) and isinstance(items[index], dict) else {}
        item_id = raw.get("id")
        entry = refused.setdefault(
            index,
            {"index": index, "id": None if item_id is None else str(item_id), "errors": []},
        )
        entry["errors"].append({**error, "path": field or "(item)"})
    if refused:
        detail = f"{len(refused)} item(s) refused; nothing was written."
    else:
        detail = "The request body is invalid; nothing was written."
    body = {"detail": detail, "errors": errors, "refused": [refused[i] for i in sorted(refused)]}
    return _json(body, status=422)


def _validation_error(request, exc):
    errors = [{"path": _path(e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors]
    return refusal_response(request, errors)


def _refused(request, exc):
    return refusal_response(request, exc.errors)


def _http_error(request, exc):
    response = _json({"detail": str(exc)}, status=exc.status_code)
    if exc.status_code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="ingest"'
    return response


def _no_key(request, exc):
    # Raised by ninja when no authentication header was there at all.
    return _http_error(
        request,
        HttpError(
            401, "Missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
        ),
    )


def _conflict(request, exc):
    # A concurrent request wrote the same ids first; the batch was rolled back whole.
    detail = "The batch conflicts with rows written meanwhile; nothing was written. Send it again."
    return _json({"detail": detail}, status=409)


def _unstorable(request, exc):
    return _json(
        {"detail": "A value does not fit its database column; nothing was written."}, status=422
    )


def _json(body, status):
    # The same content type as ninja's own responses.
    return JsonResponse(body, status=status, content_type="application/json; charset=utf-8")


def install_handlers(api):
    api.add_exception_handler(ValidationError, _validation_error)
    api.add_exception_handler(Refused, _refused)
    api.add_exception_handler(AuthenticationError, _no_key)
    api.add_exception_handler(HttpError, _http_error)
    api.add_exception_handler(IntegrityError, _conflict)
    api.add_exception_handler(DataError, _unstorable)


def limit_body(run):
    """Refuse bodies over settings.API_MAX_BODY_BYTES with a 413, before parsing.

    The declared Content-Length is checked before anything is read; then at
    most the limit plus one byte is read, so a body streamed without (or with
    a wrong) Content-Length is cut off too. Wraps ninja's operation run (the
    "view" decorator mode), so it runs before authentication and parsing.
    """

    @wraps(run)
    def guarded(request, *args, **kwargs):
        limit = settings.API_MAX_BODY_BYTES
        body = read_body(request, limit)
        if isinstance(body, JsonResponse):
            return body
        return run(request, *args, **kwargs)

    return guarded


def read_body(request, limit):
    """The request body, at most ``limit`` bytes, or the JSON answer refusing it.

    A chunked body (Transfer-Encoding: chunked, no Content-Length) is read
    from the WSGI server's input, which the server de-chunks (gunicorn does):
    Django's WSGIRequest would read it as empty, its length being unknown.
    """
    try:
        declared = int(request.headers.get("content-length") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return _too_large(limit)
    stream = request
    if _chunked(request):
        stream = request.META["wsgi.input"]
        request._read_started = True
    try:
        body = _read_at_most(stream, limit + 1)
    except OSError:  # the client went away mid-upload
        return _json({"detail": "The request body could not be read."}, status=400)
    if len(body) > limit:
        return _too_large(limit)
    # Cache what was read the way HttpRequest.body does, so ninja parses
    # these bytes (and Django's DATA_UPLOAD_MAX_MEMORY_SIZE check, which
    # would answer an HTML 400, is not reached again).
    request._body = body
    request._stream = BytesIO(body)
    return body


def _chunked(request):
    encoding = request.headers.get("transfer-encoding", "").lower()
    return (
        "chunked" in encoding
        and not request.headers.get("content-length")
        and "wsgi.input" in request.META
    )


def _read_at_most(stream, size):
    # A stream may return fewer bytes than asked before its end (a socket).
    parts, got = [], 0
    while got < size:
        part = stream.read(size - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def too_large_detail(limit):
    return f"The request body is larger than {limit} bytes; send smaller batches."


def _too_large(limit):
    return _json(
        {"detail": too_large_detail(limit)},
        status=413,
    )
