"""OTLP/HTTP traces endpoint (issue #22): encodings, auth, limits, mapping,
hostile bodies. The requests are built with the OpenTelemetry project's own
message classes (or written out as OTLP JSON); test_otel_live.py sends them
with the OpenTelemetry SDK's exporter to a live server.
"""

import datetime as dt
import gzip
import json
from decimal import Decimal

import pytest
from django.db import connection
from google.protobuf import json_format
from google.rpc import status_pb2
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from chats.models import Chat
from core.models import AppUser
from core.tests.factories import ModelPriceFactory
from ingest.tests.test_api_auth import make_key
from usage import metrics
from usage.metrics import Period, Scope
from usage.models import DailyUsage, ModelUsage

pytestmark = pytest.mark.django_db

URL = "/api/v1/otel/v1/traces"
PROTOBUF = "application/x-protobuf"
START = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z in ns


@pytest.fixture
def key():
    return make_key()


@pytest.fixture
def raw(key):
    return key[0]


@pytest.fixture
def source(key):
    return key[1].ingest_source


@pytest.fixture
def price(db):
    return ModelPriceFactory(
        model_name="gpt-4o-mini",
        provider="openai",
        input_per_million=Decimal("0.15"),
        output_per_million=Decimal("0.60"),
        effective_from="2024-01-01",
    )


def value(v):
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=v)


def span(n=1, attributes=None, start=START, duration_ms=850, trace=1):
    """A GenAI chat span; ``attributes`` are added (None values removed)."""
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 500,
        **(attributes or {}),
    }
    return Span(
        trace_id=trace.to_bytes(16, "big"),
        span_id=n.to_bytes(8, "big"),
        name="chat gpt-4o-mini",
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration_ms * 1_000_000 if duration_ms is not None else 0,
        attributes=[KeyValue(key=k, value=value(v)) for k, v in attrs.items() if v is not None],
    )


def request_of(*spans):
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])]
    )


def send(client, body, raw=None, content_type=PROTOBUF, **headers):
    if isinstance(body, ExportTraceServiceRequest):
        body = body.SerializeToString()
    if raw is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {raw}")
    return client.post(URL, body, content_type=content_type, **headers)


def answer(response):
    """The ExportTraceServiceResponse of a 200, in the response's encoding."""
    assert response.status_code == 200, response.content
    message = ExportTraceServiceResponse()
    if response["Content-Type"] == "application/json":
        return json_format.Parse(response.content, message)
    message.ParseFromString(response.content)
    return message


def status(response):
    """The google.rpc.Status of a refusal, in the response's encoding."""
    message = status_pb2.Status()
    if response["Content-Type"] == "application/json":
        return json_format.Parse(response.content, message)
    message.ParseFromString(response.content)
    return message


def dashboard(source):
    """The overview's headline figures of the source on 1 May 2024 (from the roll-ups)."""
    day = dt.date(2024, 5, 1)
    return metrics.totals(Period(day, day), Scope(source_id=source.pk))


def nothing_written():
    return not (ModelUsage.objects.exists() or DailyUsage.objects.exists())


# ---- encodings ---------------------------------------------------------------


def test_protobuf_span_becomes_one_priced_ledger_row(client, raw, source, price):
    response = send(client, request_of(span(1)), raw)
    assert response["Content-Type"] == PROTOBUF
    assert not answer(response).HasField("partial_success")
    row = ModelUsage.objects.get()
    assert row.source == source
    assert row.source_pk == f"{1:032x}:{1:016x}"
    assert (row.model_name, row.provider) == ("gpt-4o-mini", "openai")
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (1000, 500, 1500)
    assert row.request_time_ms == 850
    assert row.timestamp.isoformat() == "2024-05-01T12:00:00+00:00"
    # 1000 x 0.15/M + 500 x 0.60/M, from the price list (the span had no cost)
    assert (row.cost, row.cost_source) == (Decimal("0.00045"), "computed")


def test_gzip_protobuf_is_read(client, raw):
    body = gzip.compress(request_of(span(1), span(2)).SerializeToString())
    response = send(client, body, raw, HTTP_CONTENT_ENCODING="gzip")
    assert not answer(response).HasField("partial_success")
    assert ModelUsage.objects.count() == 2


OTLP_JSON = {
    # As the OTLP specification writes it: hex ids, int64 as strings, camelCase.
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "openai-instrumentation"},
                    "spans": [
                        {
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "spanId": "EEE19B7EC3C1B174",
                            "parentSpanId": "EEE19B7EC3C1B173",
                            "name": "chat claude-3-5-sonnet",
                            "kind": 3,
                            "startTimeUnixNano": "1714564800000000000",
                            "endTimeUnixNano": "1714564801250000000",
                            "attributes": [
                                {"key": "gen_ai.system", "value": {"stringValue": "anthropic"}},
                                {
                                    "key": "gen_ai.request.model",
                                    "value": {"stringValue": "claude-3-5-sonnet"},
                                },
                                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
                                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 7}},
                                {"key": "gen_ai.usage.cost", "value": {"doubleValue": 0.0125}},
                                {"key": "gen_ai.conversation.id", "value": {"stringValue": "c9"}},
                                {"key": "enduser.id", "value": {"stringValue": "ann"}},
                            ],
                            "links": [
                                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "01"}
                            ],
                            "someFutureField": True,
                        }
                    ],
                }
            ],
        }
    ]
}


def test_otlp_json_is_read_and_answered_in_json(client, raw, source):
    response = send(client, json.dumps(OTLP_JSON), raw, content_type="application/json")
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {}
    row = ModelUsage.objects.select_related("chat", "user").get()
    assert row.source_pk == "5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174"
    assert (row.model_name, row.provider, row.prompt_tokens, row.completion_tokens) == (
        "claude-3-5-sonnet",
        "anthropic",
        42,
        7,
    )
    assert (row.cost, row.cost_source, row.request_time_ms) == (Decimal("0.0125"), "reported", 1250)
    assert (row.chat.source, row.chat.source_pk, row.chat.user) == (source, "c9", row.user)
    assert (row.user.source, row.user.source_pk) == (source, "ann")


def test_gzip_json_is_read(client, raw):
    body = gzip.compress(json.dumps(OTLP_JSON).encode())
    headers = {"content_type": "application/json", "HTTP_CONTENT_ENCODING": "gzip"}
    response = send(client, body, raw, **headers)
    assert answer(response).partial_success.rejected_spans == 0
    assert ModelUsage.objects.count() == 1


def test_content_type_parameters_are_ignored(client, raw):
    response = send(client, request_of(span(1)), raw, content_type=f"{PROTOBUF}; version=1")
    assert response.status_code == 200
    assert ModelUsage.objects.count() == 1


# ---- idempotency, chats, app users, ignored spans -----------------------------


def test_the_same_spans_sent_again_count_once(client, raw, source, price):
    body = request_of(span(1, {"gen_ai.conversation.id": "conv-1", "user.id": "u-1"}), span(2))
    send(client, body, raw)
    send(client, body, raw)
    assert ModelUsage.objects.count() == 2
    assert (Chat.objects.count(), AppUser.objects.count()) == (1, 1)
    figures = dashboard(source)
    assert (figures["requests"], figures["prompt_tokens"], figures["completion_tokens"]) == (
        2,
        2000,
        1000,
    )
    assert figures["cost"] == Decimal("0.00090")


def test_a_changed_span_updates_its_row_and_the_rollup(client, raw, source):
    send(client, request_of(span(1)), raw)
    send(client, request_of(span(1, {"gen_ai.usage.output_tokens": 900})), raw)
    assert ModelUsage.objects.get().completion_tokens == 900
    assert (dashboard(source)["requests"], dashboard(source)["completion_tokens"]) == (1, 900)


def test_conversation_and_user_link_existing_rows_of_the_source(client, raw, source):
    user = AppUser.objects.create(source=source, source_pk="u-7", email="u7@example.com")
    chat = Chat.objects.create(source=source, source_pk="conv-7", user=user, title="Known")
    attributes = {"gen_ai.conversation.id": "conv-7", "user.id": "u-7"}
    send(client, request_of(span(1, attributes), span(2, {"user.id": 7})), raw)
    rows = {row.source_pk[-1]: row for row in ModelUsage.objects.all()}
    assert (rows["1"].chat, rows["1"].user) == (chat, user)
    assert rows["2"].user.source_pk == "7"  # an integer id is taken as text
    assert Chat.objects.get(pk=chat.pk).title == "Known"


def test_conversation_and_user_of_another_source_are_not_linked(client, raw, source):
    other_raw, other = make_key()
    theirs = {"gen_ai.conversation.id": "conv-1", "user.id": "u-1"}
    send(client, request_of(span(1, theirs)), other_raw)
    send(client, request_of(span(2, theirs)), raw)
    mine = ModelUsage.objects.select_related("chat", "user").get(source=source)
    assert (mine.chat.source, mine.user.source) == (source, source)
    assert Chat.objects.count() == 2
    assert AppUser.objects.count() == 2


def test_spans_without_genai_attributes_are_counted_and_ignored(client, raw):
    http = Span(
        trace_id=(9).to_bytes(16, "big"),
        span_id=(9).to_bytes(8, "big"),
        name="GET /",
        start_time_unix_nano=START,
        end_time_unix_nano=START + 1,
        attributes=[KeyValue(key="http.method", value=AnyValue(string_value="GET"))],
    )
    agent = span(3, {"gen_ai.operation.name": "invoke_agent"})
    response = send(client, request_of(http, agent, span(1)), raw)
    partial = answer(response).partial_success
    assert partial.rejected_spans == 0
    assert partial.error_message == "2 span(s) without GenAI model-call attributes ignored."
    assert ModelUsage.objects.count() == 1


def test_an_empty_request_writes_nothing_and_succeeds(client, raw):
    response = send(client, b"", raw, CONTENT_TYPE=PROTOBUF)
    assert not answer(response).HasField("partial_success")
    assert nothing_written()


# ---- rejected spans (partial success) -----------------------------------------


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"gen_ai.usage.input_tokens": 10**15}, "outside 0"),
        ({"gen_ai.usage.output_tokens": -1}, "outside 0"),
        (
            {"gen_ai.usage.input_tokens": 6 * 10**8, "gen_ai.usage.output_tokens": 6 * 10**8},
            "input + output tokens",
        ),
        ({"gen_ai.usage.input_tokens": "1000"}, "must be an integer, not string_value"),
        ({"gen_ai.usage.input_tokens": 1000.0}, "must be an integer, not double_value"),
        ({"gen_ai.usage.input_tokens": True}, "must be an integer, not bool_value"),
        ({"gen_ai.usage.cache_read.input_tokens": 10**15}, "cache_read"),
        ({"gen_ai.usage.reasoning.output_tokens": 1.5}, "reasoning"),
        ({"gen_ai.usage.cost": 10**9}, "outside 0"),
        ({"gen_ai.usage.cost": "1.0"}, "must be a number"),
        ({"gen_ai.request.model": "m" * 10_000, "gen_ai.response.model": None}, "longer"),
        ({"gen_ai.request.model": 5, "gen_ai.response.model": None}, "must be a string"),
        ({"gen_ai.provider.name": "p\x00"}, "NUL"),
        ({"gen_ai.provider.name": None}, "no gen_ai.provider.name"),
        ({"gen_ai.request.model": None, "gen_ai.response.model": None}, "no gen_ai.request"),
        ({"gen_ai.conversation.id": "c" * 101}, "gen_ai.conversation.id is longer"),
        ({"user.id": "x" * 1_000_000}, "user.id is longer"),
        ({"user.id": 1.5}, "user.id must be a string"),
    ],
)
def test_an_impossible_span_is_rejected_and_the_others_written(client, raw, attributes, reason):
    response = send(client, request_of(span(1), span(2, attributes), span(3)), raw)
    partial = answer(response).partial_success
    assert partial.rejected_spans == 1
    assert reason in partial.error_message
    assert f"{2:016x}" in partial.error_message
    assert sorted(ModelUsage.objects.values_list("source_pk", flat=True)) == [
        f"{1:032x}:{n:016x}" for n in (1, 3)
    ]
    assert not Chat.objects.exists()
    assert not AppUser.objects.exists()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"start": 0}, "no start time"),
        ({"start": 10**9}, "outside 2000"),  # 1970
        ({"start": 4_102_444_800 * 10**9}, "outside 2000"),  # 2100
        ({"duration_ms": -5}, "ends before it starts"),
        ({"duration_ms": 2**32}, "longer than"),
        ({"trace": 0}, "trace id"),
    ],
)
def test_impossible_times_and_ids_are_rejected(client, raw, fields, reason):
    response = send(client, request_of(span(2, **fields)), raw)
    partial = answer(response).partial_success
    assert (partial.rejected_spans, reason in partial.error_message) == (1, True)
    assert nothing_written()


def test_a_span_sent_twice_in_one_request_is_rejected_once(client, raw):
    response = send(client, request_of(span(1), span(1)), raw)
    assert answer(response).partial_success.rejected_spans == 1
    assert ModelUsage.objects.count() == 1


def test_many_rejections_are_all_counted(client, raw):
    spans = [span(n, {"gen_ai.usage.input_tokens": 10**15}) for n in range(1, 51)]
    partial = answer(send(client, request_of(*spans), raw)).partial_success
    assert partial.rejected_spans == 50
    assert partial.error_message.endswith("; and 30 more")
    assert nothing_written()


def test_a_span_without_end_time_has_no_latency(client, raw):
    send(client, request_of(span(1, duration_ms=None)), raw)
    assert ModelUsage.objects.get().request_time_ms is None


# ---- refused requests -----------------------------------------------------------


def test_missing_key_is_401_as_a_status_message(client):
    response = send(client, request_of(span(1)))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Missing API key" in status(response).message
    assert nothing_written()


def test_x_api_key_header_is_accepted(client, raw):
    response = send(client, request_of(span(1)), HTTP_X_API_KEY=raw)
    assert response.status_code == 200
    assert ModelUsage.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "code"),
    [({"is_active": False}, 401), ({"ingest_source": None}, 403), ({"permissions": ["x"]}, 403)],
)
def test_keys_that_may_not_write_usage_are_refused(client, fields, code):
    raw, _ = make_key(**fields)
    response = send(client, request_of(span(1)), raw, content_type="application/json")
    assert response.status_code == code
    assert response["Content-Type"] == "application/json"
    assert status(response).message
    assert nothing_written()


def test_only_post(client, raw):
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert (response.status_code, response["Allow"]) == (405, "POST")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (request_of(span(1)).SerializeToString()[:-7], "not a valid OTLP protobuf"),
        (b"\x0a\xff\xff\xff\xff\x0f", "not a valid OTLP protobuf"),
        (b"\x0a" + b"\x0a\x80\x01" * 60, "not a valid OTLP protobuf"),
    ],
    ids=["truncated", "length-past-the-end", "nested-garbage"],
)
def test_hostile_protobuf_is_400_and_writes_nothing(client, raw, body, detail):
    response = send(client, body, raw)
    assert response.status_code == 400
    assert detail in status(response).message
    assert nothing_written()


def nested(depth):
    """An AnyValue holding a kvlist holding a kvlist ... ``depth`` deep."""
    value = {}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


def wrong(path, new):
    document = json.loads(json.dumps(OTLP_JSON))
    target = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    *head, last = path
    for step in head:
        target = target[step]
    target[last] = new
    return json.dumps(document)


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "[]",
        '"resourceSpans"',
        json.dumps({"resourceSpans": "all of them"}),
        wrong(["traceId"], "not hex at all"),
        wrong(["traceId"], 12),
        wrong(["startTimeUnixNano"], "yesterday"),
        wrong(["startTimeUnixNano"], True),
        wrong(["attributes", 0, "value"], {"intValue": "12x"}),
        wrong(["attributes", 2, "value"], {"intValue": True}),
        wrong(["attributes"], {"gen_ai.system": "openai"}),
        "[" * 100_000 + "]" * 100_000,
        json.dumps({"resourceSpans": [{"resource": {"attributes": [{"value": nested(200)}]}}]}),
    ],
    ids=[
        "not-json",
        "array",
        "string",
        "wrong-type",
        "bad-hex",
        "id-number",
        "time-text",
        "time-bool",
        "int-text",
        "int-bool",
        "attributes-object",
        "deep-json",
        "deep-anyvalue",
    ],
)
def test_hostile_json_is_400_and_writes_nothing(client, raw, body):
    response = send(client, body, raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    assert status(response).message
    assert nothing_written()


def test_bad_gzip_and_other_encodings_are_refused(client, raw):
    body = gzip.compress(request_of(span(1)).SerializeToString())
    truncated = send(client, body[:-10], raw, HTTP_CONTENT_ENCODING="gzip")
    not_gzip = send(client, b"plain", raw, HTTP_CONTENT_ENCODING="gzip")
    brotli = send(client, body, raw, HTTP_CONTENT_ENCODING="br")
    assert (truncated.status_code, not_gzip.status_code, brotli.status_code) == (400, 400, 415)
    assert nothing_written()


def test_other_content_types_are_415(client, raw):
    response = send(client, request_of(span(1)), raw, content_type="text/plain")
    assert response.status_code == 415
    assert nothing_written()


def test_body_over_the_limit_is_413(client, raw, settings):
    body = request_of(*[span(n) for n in range(1, 40)]).SerializeToString()
    settings.API_MAX_BODY_BYTES = len(body) - 1
    response = send(client, body, raw)
    assert response.status_code == 413
    assert "larger than" in status(response).message
    assert nothing_written()


def test_gzip_bomb_is_413(client, raw, settings):
    settings.API_MAX_BODY_BYTES = 100_000
    bomb = gzip.compress(b"\x00" * 10_000_000)  # 10 MB of zeros, ~10 kB compressed
    assert len(bomb) < settings.API_MAX_BODY_BYTES
    response = send(client, bomb, raw, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413
    assert "decompressed" in status(response).message


def test_a_huge_attribute_value_within_the_limit_rejects_only_its_span(client, raw):
    big = span(2, {"gen_ai.response.model": "r" * 4_000_000, "gen_ai.request.model": None})
    response = send(client, request_of(span(1), big), raw)
    partial = answer(response).partial_success
    assert partial.rejected_spans == 1
    assert len(partial.error_message) < 2000  # the value is not echoed
    assert ModelUsage.objects.count() == 1


@pytest.mark.parametrize("spans", [5, 40])
def test_query_count_does_not_grow_with_the_spans(client, raw, spans, django_assert_num_queries):
    # 1 key lookup, 1 key use UPDATE, 2 savepoints + 2 releases (the request's
    # and the ledger write's), 2 app users (lookup, INSERT), 2 chats (lookup,
    # INSERT), 1 price list, 1 app users' organisations, the ledger's own
    # savepoint and release around its insert (a concurrent writer of the same
    # ids retries inside it), 1 existing rows (locked), 1 ledger INSERT (up to
    # SQLite's batch size), 8 roll-up upserts (user, model, total grains with
    # latency, the app user's day and month).
    attributes = {"gen_ai.conversation.id": "conv", "user.id": "u"}
    with django_assert_num_queries(24):
        body = request_of(*[span(n, attributes) for n in range(1, spans + 1)])
        response = send(client, body, raw)
    assert answer(response).partial_success.rejected_spans == 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {ModelUsage._meta.db_table}")  # noqa: S608
        assert cursor.fetchone() == (spans,)


def test_a_lone_surrogate_in_json_is_refused_not_a_server_error(client, raw):
    body = wrong(["attributes", 1, "value"], {"stringValue": "\ud800"})
    response = send(client, body, raw, content_type="application/json")
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert answer(response).partial_success.rejected_spans == 1
    assert nothing_written()


# ---- fuzz: whatever the bytes, never a server error -----------------------------

VALID = request_of(
    span(1, {"gen_ai.conversation.id": "c", "user.id": "u", "gen_ai.usage.cost": 0.5})
).SerializeToString()


@hypothesis_settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cut=st.integers(0, len(VALID)),
)
def test_mutated_protobuf_never_answers_5xx(client, raw, edits, cut):
    body = bytearray(VALID)
    for index, byte in edits:
        body[index] = byte
    response = send(client, bytes(body[: max(cut, 1)]), raw)
    assert response.status_code in (200, 400), response.content
    if response.status_code == 200:
        answer(response)  # a well-formed ExportTraceServiceResponse


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


@hypothesis_settings(
    max_examples=100,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(
        [
            ["traceId"],
            ["spanId"],
            ["startTimeUnixNano"],
            ["endTimeUnixNano"],
            ["attributes"],
            ["attributes", 0],
            ["attributes", 2, "value"],
            ["attributes", 2, "value", "intValue"],
            ["attributes", 4, "value", "doubleValue"],
            ["links"],
            ["kind"],
        ]
    ),
    new=JSON_VALUES,
)
def test_json_with_any_value_anywhere_never_answers_5xx(client, raw, path, new):
    response = send(client, wrong(path, new), raw, content_type="application/json")
    assert response.status_code in (200, 400), response.content
