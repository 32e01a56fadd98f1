"""OTLP/HTTP traces into the usage ledger: POST /api/v1/otel/v1/traces.

Any application instrumented with OpenTelemetry's GenAI semantic conventions
can point its OTLP exporter here. The request is an ExportTraceServiceRequest
in either encoding the OTLP specification defines (``application/x-protobuf``
or ``application/json``), gzip-compressed or not; it is decoded by the
OpenTelemetry project's own message classes (``opentelemetry-proto``) and
protobuf's ``json_format``, never by hand. The answer is an
ExportTraceServiceResponse (or, for a refused request, a google.rpc.Status)
in the request's encoding.

Authentication is the ingest API's: ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``, a key with the ``usage:write`` scope and an ingest
source (``auth.authenticate``).

The mapping (``span_call``): a span is a model call when it carries
``gen_ai.request.model``, ``gen_ai.response.model`` or a
``gen_ai.usage.*`` count, and its ``gen_ai.operation.name`` is not an agent
or tool operation (those wrap model calls that have spans of their own, and
counting both would count the tokens twice). Every other span is counted and
ignored. A model call becomes one ledger row of the key's source:

- model: ``gen_ai.request.model``, else ``gen_ai.response.model`` (the name
  the application asked for, which the price list knows);
- provider: ``gen_ai.provider.name``, else ``gen_ai.system``;
- tokens: ``gen_ai.usage.input_tokens`` / ``output_tokens`` (or the older
  ``prompt_tokens`` / ``completion_tokens``);
- cached input tokens: ``gen_ai.usage.cache_read.input_tokens`` (or the
  older spellings in ``CACHED_INPUT``); reasoning tokens:
  ``gen_ai.usage.reasoning.output_tokens`` (or those in ``REASONING``). Per
  the conventions they are part of the input and output tokens, so a count
  larger than its whole rejects the span; absent, they are NULL (not
  reported). ``gen_ai.usage.cache_creation.input_tokens`` is only checked
  (the ledger does not count cache writes apart);
- cost: ``gen_ai.usage.cost`` when the span reports one, else priced from
  the model price list by the ledger;
- time: the span's start; latency: end minus start, in milliseconds;
- id (``source_pk``): ``<trace id>:<span id>`` in hex, so a span sent again
  is not counted twice;
- ``gen_ai.conversation.id``: the chat of that id in the source, created when
  new; ``user.id`` (or ``enduser.id``): the app user, likewise.

A span whose values are impossible (wrong types, core.bounds exceeded, a
name longer than its column, no provider) is rejected: nothing is written
for it and the answer's ``partial_success`` counts it, with the reasons.
The accepted spans are written in one transaction through
``usage.ledger.upsert_usage``, which keeps the roll-ups exact.
"""

import base64
import datetime as dt
import json
import zlib
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from ninja.errors import HttpError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from chats.models import Chat
from core import bounds
from core.models import AppUser
from usage.ledger import upsert_usage
from usage.models import ModelUsage

from .auth import authenticate
from .errors import read_body, too_large_detail

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SCOPE = "usage:write"
INT32 = 2**31 - 1
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Operations that wrap model calls (whose own spans carry the tokens).
IGNORED_OPERATIONS = {"invoke_agent", "create_agent", "execute_tool"}
# At most this many reasons in one answer; the count is always whole.
MAX_REASONS = 20
# How deep a JSON body may nest (OTLP's own nesting is about 10 levels).
MAX_DEPTH = 64
# The attribute names of the cached-input and reasoning token counts, the
# current GenAI semantic conventions' first, then older spellings in use
# (the conventions' earlier drafts, Sentry's, OpenLLMetry's); the first
# present is read.
CACHED_INPUT = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens.cached",
    "gen_ai.usage.cached_tokens",
)
REASONING = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "gen_ai.usage.output_tokens.reasoning",
)

GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    405: code_pb2.UNIMPLEMENTED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    503: code_pb2.UNAVAILABLE,
}


class Refusal(Exception):
    """The whole request is refused: an HTTP status and why."""

    def __init__(self, status, message):
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass
class Call:
    """One model call read from a span, ready for the ledger."""

    source_pk: str
    model_name: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    cached_input_tokens: int | None
    reasoning_tokens: int | None
    cost: Decimal | None
    timestamp: dt.datetime
    request_time_ms: int | None
    conversation_id: str | None
    user_id: str | None


# ---- the view ----------------------------------------------------------------


@csrf_exempt
def traces(request):
    """OTLP/HTTP ExportTraceServiceRequest in, ExportTraceServiceResponse out."""
    encoding = JSON if _media_type(request) == JSON else PROTOBUF
    try:
        if request.method != "POST":
            raise Refusal(405, "Send traces with POST.")
        body = read_body(request, settings.API_MAX_BODY_BYTES)
        if not isinstance(body, bytes):  # the guard's own answer: 413 or 400
            raise Refusal(body.status_code, json.loads(body.content)["detail"])
        key = _key(request)
        if _media_type(request) not in (PROTOBUF, JSON):
            raise Refusal(415, f"Send {PROTOBUF} or {JSON} (OTLP/HTTP).")
        message = decode(_decompress(request, body), encoding)
        accepted, rejected, ignored = read_spans(message)
        write_calls(key.ingest_source, accepted)
    except Refusal as refusal:
        return _status(refusal.status, refusal.message, encoding)
    except HttpError as error:  # from authenticate: 401 or 403
        return _status(error.status_code, str(error), encoding)
    except IntegrityError:
        # A concurrent request created the same chat or app user first; OTLP
        # exporters retry a 503, and the retry finds them.
        response = _status(503, "Conflict with a concurrent write; retry.", encoding)
        response["Retry-After"] = "1"
        return response
    return _export_response(rejected, ignored, encoding)


def _media_type(request):
    return (request.content_type or "").split(";")[0].strip().lower()


def _key(request):
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    raw = token.strip() if scheme.lower() == "bearer" else ""
    raw = raw or request.headers.get("x-api-key", "").strip()
    if not raw:
        raise Refusal(
            401, "Missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
        )
    return authenticate(raw, SCOPE)


def _decompress(request, body):
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise Refusal(415, f"Content-Encoding {encoding!r} is not supported; send gzip or none.")
    limit = settings.API_MAX_BODY_BYTES
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise Refusal(400, "The body is not valid gzip.") from None
    if len(data) > limit:
        raise Refusal(413, too_large_detail(limit) + " (decompressed)")
    if not inflater.eof or inflater.unused_data:
        raise Refusal(400, "The gzip body is truncated or has trailing bytes.")
    return data


def _status(status, message, encoding):
    answer = status_pb2.Status(code=GRPC_CODES.get(status, code_pb2.UNKNOWN), message=message)
    response = _encoded(answer, encoding, status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="ingest"'
    if status == 405:
        response["Allow"] = "POST"
    return response


def _export_response(rejected, ignored, encoding):
    answer = ExportTraceServiceResponse()
    if rejected:
        reasons = [f"span {pk}: {why}" for pk, why in rejected[:MAX_REASONS]]
        more = len(rejected) - len(reasons)
        message = f"{len(rejected)} span(s) rejected, nothing written for them: " + "; ".join(
            reasons
        )
        if more:
            message += f"; and {more} more"
        answer.partial_success.rejected_spans = len(rejected)
        answer.partial_success.error_message = message
    elif ignored:
        # OTLP's way to warn while accepting everything: no rejected spans.
        answer.partial_success.error_message = (
            f"{ignored} span(s) without GenAI model-call attributes ignored."
        )
    return _encoded(answer, encoding, 200)


def _encoded(message, encoding, status):
    if encoding == JSON:
        content = json_format.MessageToJson(message, indent=None)
    else:
        content = message.SerializeToString()
    return HttpResponse(content, status=status, content_type=encoding)


# ---- decoding ----------------------------------------------------------------


def decode(data, encoding):
    """The ExportTraceServiceRequest in ``data``, or a 400 saying why not."""
    message = ExportTraceServiceRequest()
    if encoding == PROTOBUF:
        try:
            message.ParseFromString(data)
        except DecodeError as error:
            raise Refusal(400, f"The body is not a valid OTLP protobuf message: {error}") from None
        return message
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise Refusal(400, "The body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise Refusal(400, "The body must be a JSON object (ExportTraceServiceRequest).")
    try:
        _hex_ids_to_base64(document)
        # OTLP: receivers ignore fields they do not know.
        json_format.ParseDict(
            document, message, ignore_unknown_fields=True, max_recursion_depth=MAX_DEPTH
        )
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as error:
        raise Refusal(400, f"The body is not a valid OTLP JSON message: {error}") from None
    return message


def _items(value):
    return value if isinstance(value, list) else []


def _hex_ids_to_base64(document):
    """OTLP JSON writes trace and span ids in hex, protobuf's JSON in base64."""
    for resource_spans in _items(_field(document, "resourceSpans", "resource_spans")):
        scopes = _field(resource_spans, "scopeSpans", "scope_spans")
        for scope_spans in _items(scopes):
            for span in _items(_field(scope_spans, "spans")):
                _recode(span, ("traceId", "trace_id", "spanId", "span_id"))
                _recode(span, ("parentSpanId", "parent_span_id"))
                for link in _items(_field(span, "links")):
                    _recode(link, ("traceId", "trace_id", "spanId", "span_id"))


def _field(obj, *names):
    if not isinstance(obj, dict):
        return None
    for name in names:
        if name in obj:
            return obj[name]
    return None


def _recode(obj, names):
    if not isinstance(obj, dict):
        return
    for name in names:
        value = obj.get(name)
        if isinstance(value, str):
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raise ValueError(f"{name} {value[:40]!r} is not hex") from None
            obj[name] = base64.b64encode(raw).decode()


# ---- mapping -----------------------------------------------------------------


class SpanProblem(Exception):
    pass


def read_spans(message):
    """([Call], [(span id, reason)] rejected, number ignored) of a request."""
    accepted, rejected, ignored, seen = [], [], 0, set()
    for resource_spans in message.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                span_id = f"{span.trace_id.hex()}:{span.span_id.hex()}"
                try:
                    call = span_call(span)
                    if call is not None and call.source_pk in seen:
                        raise SpanProblem("sent twice in this request")
                except SpanProblem as problem:
                    rejected.append((span_id, str(problem)))
                    continue
                if call is None:
                    ignored += 1
                else:
                    seen.add(call.source_pk)
                    accepted.append(call)
    return accepted, rejected, ignored


def is_model_call(attributes):
    """Whether a span's {key: AnyValue} make it a model call (see the module)."""
    operation = attributes.get("gen_ai.operation.name")
    if operation is not None and operation.string_value in IGNORED_OPERATIONS:
        return False
    return any(
        name in ("gen_ai.request.model", "gen_ai.response.model")
        or name.startswith("gen_ai.usage.")
        for name in attributes
    )


def span_call(span):
    """The model call of a span, None when it is none, or SpanProblem."""
    attributes = {kv.key: kv.value for kv in span.attributes}
    if not is_model_call(attributes):
        return None
    if len(span.trace_id) != 16 or not any(span.trace_id):
        raise SpanProblem("trace id must be 16 bytes, not all zero")
    if len(span.span_id) != 8 or not any(span.span_id):
        raise SpanProblem("span id must be 8 bytes, not all zero")
    read = Attributes(attributes)
    model = read.text("gen_ai.request.model", 100) or read.text("gen_ai.response.model", 100)
    provider = read.text("gen_ai.provider.name", 50) or read.text("gen_ai.system", 50)
    prompt = read.tokens("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
    completion = read.tokens("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
    cached = read.tokens(*CACHED_INPUT)
    reasoning = read.tokens(*REASONING)
    read.tokens("gen_ai.usage.cache_creation.input_tokens")
    for part, whole, label, whole_label in (
        (cached, prompt, "cached input tokens", "input tokens"),
        (reasoning, completion, "reasoning tokens", "output tokens"),
    ):
        problem = bounds.part_problem(part, whole or 0)
        if problem:
            read.problems.append(f"{label}: {problem} {whole_label}")
    if prompt is not None and completion is not None:
        # the ledger's total is their sum, and it is held to the same bound
        problem = bounds.tokens_problem(prompt + completion)
        if problem:
            read.problems.append(f"input + output tokens: {problem}")
    cost = read.cost("gen_ai.usage.cost")
    conversation = read.text("gen_ai.conversation.id", 100)
    user = read.text("user.id", 100, integers=True) or read.text("enduser.id", 100, integers=True)
    if not model:
        read.problems.append("no gen_ai.request.model or gen_ai.response.model")
    if not provider:
        read.problems.append("no gen_ai.provider.name or gen_ai.system")
    timestamp, latency = _times(span, read.problems)
    if read.problems:
        raise SpanProblem("; ".join(read.problems))
    return Call(
        source_pk=f"{span.trace_id.hex()}:{span.span_id.hex()}",
        model_name=model,
        provider=provider,
        prompt_tokens=prompt or 0,
        completion_tokens=completion or 0,
        cached_input_tokens=cached,
        reasoning_tokens=reasoning,
        cost=cost,
        timestamp=timestamp,
        request_time_ms=latency,
        conversation_id=conversation,
        user_id=user,
    )


def _times(span, problems):
    if not span.start_time_unix_nano:
        problems.append("no start time")
        return None, None
    seconds, nanoseconds = divmod(span.start_time_unix_nano, 10**9)
    timestamp = EPOCH + dt.timedelta(seconds=seconds, microseconds=nanoseconds // 1000)
    problem = bounds.time_problem(timestamp)
    if problem:
        problems.append(f"start {problem}")
    if not span.end_time_unix_nano:
        return timestamp, None
    if span.end_time_unix_nano < span.start_time_unix_nano:
        problems.append("ends before it starts")
        return timestamp, None
    latency = (span.end_time_unix_nano - span.start_time_unix_nano) // 1_000_000
    if latency > INT32:
        problems.append(f"duration {latency} ms is longer than {INT32} ms")
    return timestamp, latency


class Attributes:
    """Typed reads of a span's attributes, collecting what is wrong with them."""

    def __init__(self, attributes):
        self.attributes = attributes
        self.problems = []

    def _value(self, name):
        value = self.attributes.get(name)
        if value is None:
            return None, None
        kind = value.WhichOneof("value")
        return kind, getattr(value, kind) if kind else None

    def text(self, name, max_length, integers=False):
        kind, value = self._value(name)
        if kind is None:
            return None
        if integers and kind == "int_value":
            value = str(value)
        elif kind != "string_value":
            self.problems.append(f"{name} must be a string, not {kind}")
            return None
        if "\x00" in value:
            self.problems.append(f"{name} must not contain NUL characters")
            return None
        if len(value) > max_length:
            self.problems.append(f"{name} is longer than {max_length} characters")
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.problems.append(f"{name} must be valid Unicode text")
            return None
        return value.strip() or None

    def tokens(self, *names):
        for name in names:
            kind, value = self._value(name)
            if kind is None:
                continue
            if kind != "int_value":
                self.problems.append(f"{name} must be an integer, not {kind}")
                return None
            problem = bounds.tokens_problem(value)
            if problem:
                self.problems.append(f"{name}: {problem}")
                return None
            return value
        return None

    def cost(self, name):
        kind, value = self._value(name)
        if kind is None:
            return None
        if kind not in ("double_value", "int_value"):
            self.problems.append(f"{name} must be a number, not {kind}")
            return None
        problem = bounds.cost_problem(value)
        if problem:
            self.problems.append(f"{name}: {problem}")
            return None
        return Decimal(str(value))


# ---- writing -----------------------------------------------------------------


@transaction.atomic
def write_calls(source, calls):
    """Ledger rows of the calls, with the chats and app users they name."""
    if not calls:
        return []
    users = _app_users(source, {call.user_id for call in calls if call.user_id})
    chats = _chats(source, calls, users)
    rows = [
        ModelUsage(
            source_pk=call.source_pk,
            user_id=users.get(call.user_id),
            chat_id=chats.get(call.conversation_id),
            model_name=call.model_name,
            provider=call.provider,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            total_tokens=call.prompt_tokens + call.completion_tokens,
            cached_input_tokens=call.cached_input_tokens,
            reasoning_tokens=call.reasoning_tokens,
            cost=call.cost,
            cost_source=(
                ModelUsage.CostSource.COMPUTED
                if call.cost is None
                else ModelUsage.CostSource.REPORTED
            ),
            timestamp=call.timestamp,
            request_time_ms=call.request_time_ms,
        )
        for call in calls
    ]
    return upsert_usage(source, rows)


def _app_users(source, ids):
    """{user id: pk} of the source's app users, creating those it never sent."""
    if not ids:
        return {}
    found = dict(
        AppUser.objects.filter(source=source, source_pk__in=ids).values_list("source_pk", "pk")
    )
    new = [AppUser(source=source, source_pk=pk) for pk in sorted(ids - found.keys())]
    AppUser.objects.bulk_create(new)
    return found | {user.source_pk: user.pk for user in new}


def _chats(source, calls, users):
    """{conversation id: pk} of the source's chats, creating new ones.

    A new chat starts at its first call and belongs to that call's app user.
    """
    first = {}
    for call in sorted(calls, key=lambda c: c.timestamp):
        if call.conversation_id:
            first.setdefault(call.conversation_id, call)
    if not first:
        return {}
    found = dict(
        Chat.objects.filter(source=source, source_pk__in=first).values_list("source_pk", "pk")
    )
    new = [
        Chat(
            source=source,
            source_pk=conversation,
            user_id=users.get(call.user_id),
            title=conversation,
            created_at=call.timestamp,
        )
        for conversation, call in sorted(first.items())
        if conversation not in found
    ]
    Chat.objects.bulk_create(new)
    return found | {chat.source_pk: chat.pk for chat in new}
