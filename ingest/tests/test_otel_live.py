"""The OTLP endpoint with a real client (issue #22 point 4).

An "application" instrumented with the OpenTelemetry Python SDK, its OTLP/HTTP
exporter configured only by the environment variables the SDKs read, sends
GenAI spans to the live test server; the ledger rows (plain SQL) and the
overview's headline figures (usage.metrics.totals, from the roll-ups) are
compared with what was sent, computed here from the calls themselves. The
SDK's exporter speaks protobuf only: the JSON case encodes the SDK's own spans
with the SDK's encoder and writes them out as OTLP JSON (hex ids).
"""

import base64
import datetime as dt
import gzip
import json
import os
from decimal import Decimal

import pytest
import requests
from django.db import connection
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chats.models import Chat
from core.models import AppUser
from core.tests.factories import ModelPriceFactory
from ingest.tests.test_api_auth import make_key
from usage import metrics
from usage.metrics import Period, Scope
from usage.models import ModelUsage

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/api/v1/otel/v1/traces"
PRICES = {  # (model, provider): (input, output) USD per million tokens
    ("gpt-4o-mini", "openai"): (Decimal("0.15"), Decimal("0.60")),
    ("claude-3-5-sonnet", "anthropic"): (Decimal("3"), Decimal("15")),
}


def ns(*args):
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp()) * 10**9


# Awkward on purpose: the two sides of midnight, zero tokens, an anonymous
# call, a reported cost, an unpriced model, the largest token count allowed.
CALLS = [
    # model, provider, input, output, cost, start (ns), ms, conversation, user
    ("gpt-4o-mini", "openai", 1200, 300, None, ns(2024, 5, 1, 9), 850, "conv-1", "ann"),
    ("gpt-4o-mini", "openai", 0, 0, None, ns(2024, 5, 1, 9, 5), 120, "conv-1", "ann"),
    (
        "claude-3-5-sonnet",
        "anthropic",
        5000,
        800,
        Decimal("0.75"),
        ns(2024, 5, 1, 23, 59, 59) + 900_000_000,
        2400,
        "conv-2",
        "bob",
    ),
    (  # a call at the bound: 10^9 tokens in all
        "claude-3-5-sonnet",
        "anthropic",
        6 * 10**8,
        4 * 10**8,
        None,
        ns(2024, 5, 2),
        61_000,
        None,
        None,
    ),
    ("local-llama", "ollama", 400, 100, None, ns(2024, 5, 2, 0, 0, 1), 30, "conv-2", None),
]


@pytest.fixture
def prices(db):
    for (model, provider), (inp, out) in PRICES.items():
        ModelPriceFactory(
            model_name=model,
            provider=provider,
            input_per_million=inp,
            output_per_million=out,
            effective_from="2024-01-01",
        )


@pytest.fixture
def key(db):
    return make_key()


@pytest.fixture
def site(live_server, settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    settings.SECURE_SSL_REDIRECT = False
    return live_server.url


@pytest.fixture
def otel_env(site, key, monkeypatch):
    """The environment variables an operator sets for an instrumented app."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{site}{PATH}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key={key[0]}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    return monkeypatch


def record(provider, calls=CALLS, extra=None):
    """Spans as an instrumented application makes them: a GenAI span per
    call, each inside an HTTP request span without GenAI attributes."""
    tracer = provider.get_tracer("analyst-bot", "1.0")
    for model, system, inp, out, cost, start, ms, conversation, user in calls:
        with tracer.start_as_current_span("POST /ask", start_time=start - 10**6) as request:
            request.set_attribute("http.request.method", "POST")
            attributes = {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
                "gen_ai.response.model": f"{model}-2024-07-18",
                "gen_ai.provider.name": system,
                "gen_ai.usage.input_tokens": inp,
                "gen_ai.usage.output_tokens": out,
                "gen_ai.usage.cache_read.input_tokens": inp // 2,
                "gen_ai.usage.reasoning.output_tokens": out // 4,
                **({"gen_ai.usage.cost": float(cost)} if cost is not None else {}),
                **({"gen_ai.conversation.id": conversation} if conversation else {}),
                **({"user.id": user} if user else {}),
                **(extra or {}),
            }
            span = tracer.start_span(f"chat {model}", start_time=start, attributes=attributes)
            span.end(end_time=start + ms * 10**6)


def expected_cost(model, provider, inp, out, cost):
    if cost is not None:
        return cost
    price = PRICES.get((model, provider))
    if price is None:
        return None
    return (inp * price[0] + out * price[1]) / 10**6


def ledger(source):
    """{source_pk: row} of the source's ledger rows, read with plain SQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT u.source_pk, model_name, provider, prompt_tokens, completion_tokens, "
            "total_tokens, cost, cost_source, timestamp, request_time_ms, c.source_pk, "
            "a.source_pk, u.cached_input_tokens, u.reasoning_tokens FROM usage_modelusage u "
            "LEFT JOIN chats_chat c ON c.id = u.chat_id "
            "LEFT JOIN core_appuser a ON a.id = u.user_id "
            "WHERE u.source_id = %s",
            [source.pk],
        )
        return {row[0]: row[1:] for row in cursor.fetchall()}


def assert_ledger_and_dashboard_match(source, calls=CALLS):
    rows = ledger(source)
    assert len(rows) == len(calls)
    by_start = {}
    for row in rows.values():
        stamp = row[7] if isinstance(row[7], dt.datetime) else dt.datetime.fromisoformat(row[7])
        by_start[stamp.replace(tzinfo=dt.UTC)] = row
    for model, system, inp, out, cost, start, ms, conversation, user in calls:
        when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=start // 1000)
        row = by_start[when]
        assert row[:5] == (model, system, inp, out, inp + out)
        want = expected_cost(model, system, inp, out, cost)
        got = None if row[5] is None else Decimal(str(row[5]))
        assert got == (None if want is None else want.quantize(Decimal("1e-8")))
        if cost is not None:
            assert row[6] == "reported"
        else:
            assert row[6] == ("computed" if want is not None else "unpriced")
        assert (row[8], row[9], row[10]) == (ms, conversation, user)
        # the spans' cache_read.input_tokens and reasoning.output_tokens
        assert (row[11], row[12]) == (inp // 2, out // 4)

    # the overview's figures, day by day and for both days, against the calls
    for first, last in [
        ((2024, 5, 1), (2024, 5, 1)),
        ((2024, 5, 2),) * 2,
        ((2024, 5, 1), (2024, 5, 2)),
    ]:
        period = Period(dt.date(*first), dt.date(*last))
        start, end = (int(t.timestamp()) * 10**9 for t in period.local_bounds())
        sent = [c for c in calls if start <= c[5] < end]
        figures = metrics.totals(period, Scope(source_id=source.pk))
        costs = [expected_cost(*c[:5]) for c in sent]
        assert figures["requests"] == len(sent)
        assert figures["prompt_tokens"] == sum(c[2] for c in sent)
        assert figures["completion_tokens"] == sum(c[3] for c in sent)
        assert figures["cost"].quantize(Decimal("1e-6")) == sum(
            (c.quantize(Decimal("1e-8")) for c in costs if c is not None), Decimal(0)
        ).quantize(Decimal("1e-6"))
        assert figures["avg_latency_ms"] == (sum(c[6] for c in sent) / len(sent) if sent else None)
        assert figures["active_users"] == len({c[8] for c in sent if c[8]})


def test_sdk_exporter_configured_by_environment_sends_protobuf(otel_env, key, prices):
    exporter = OTLPSpanExporter()  # everything from the environment
    provider = TracerProvider(resource=Resource.create({"service.name": "analyst-bot"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    record(provider)
    assert provider.force_flush(10_000)
    provider.shutdown()

    source = key[1].ingest_source
    assert_ledger_and_dashboard_match(source)
    assert set(Chat.objects.filter(source=source).values_list("source_pk", flat=True)) == {
        "conv-1",
        "conv-2",
    }
    assert set(AppUser.objects.filter(source=source).values_list("source_pk", flat=True)) == {
        "ann",
        "bob",
    }
    # the HTTP request spans had no GenAI attributes: ignored
    assert ModelUsage.objects.count() == len(CALLS)


def test_sdk_exporter_with_gzip_and_a_base_endpoint_and_bearer_header(
    site, key, prices, monkeypatch
):
    # OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: the exporter appends v1/traces.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"{site}/api/v1/otel")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{key[0]}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    record(provider)
    record(provider)  # the application retries: the same calls, new span ids
    provider.shutdown()
    # new span ids are new calls: twice the rows
    assert ModelUsage.objects.filter(source=key[1].ingest_source).count() == 2 * len(CALLS)


def test_the_same_export_sent_twice_counts_once(otel_env, key, prices):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    record(provider)
    exporter = OTLPSpanExporter()
    spans = memory.get_finished_spans()
    assert exporter.export(spans).name == "SUCCESS"
    assert exporter.export(spans).name == "SUCCESS"  # a retry after a lost answer
    assert_ledger_and_dashboard_match(key[1].ingest_source)


def otlp_json(spans):
    """The SDK's own encoding of ``spans`` as OTLP JSON (ids in hex)."""
    document = json_format.MessageToDict(encode_spans(spans))
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = base64.b64decode(span[name]).hex()
    return json.dumps(document).encode()


@pytest.mark.parametrize("compress", [False, True])
def test_otlp_json_from_the_sdks_spans(site, key, prices, compress):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    record(provider)
    body = otlp_json(memory.get_finished_spans())
    headers = {"Content-Type": "application/json", "X-API-Key": key[0]}
    if compress:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    response = requests.post(f"{site}{PATH}", data=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.content
    assert response.headers["Content-Type"] == "application/json"
    warning = response.json()["partialSuccess"]
    assert warning == {
        "errorMessage": f"{len(CALLS)} span(s) without GenAI model-call attributes ignored."
    }
    assert_ledger_and_dashboard_match(key[1].ingest_source)


def test_hostile_spans_from_the_sdk_are_rejected_and_the_rest_kept(otel_env, key, prices):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    record(provider)
    hostile = [
        ("gpt-4o-mini", "openai", 10**15, 1, None, ns(2024, 5, 1, 10), 5, "conv-h", "eve"),
        ("m" * 5000, "openai", 1, 1, None, ns(2024, 5, 1, 10), 5, None, None),
    ]
    record(provider, hostile)
    record(provider, CALLS[:1], extra={"gen_ai.usage.output_tokens": "300"})
    spans = memory.get_finished_spans()
    body = encode_spans(spans).SerializeToString()
    response = requests.post(
        os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],
        data=body,
        headers={"Content-Type": "application/x-protobuf", "X-API-Key": key[0]},
        timeout=30,
    )
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert response.status_code == 200
    assert answer.partial_success.rejected_spans == 3
    assert "outside 0" in answer.partial_success.error_message
    # nothing of the rejected spans: no row, no chat conv-h, no app user eve
    assert_ledger_and_dashboard_match(key[1].ingest_source)
    assert not Chat.objects.filter(source_pk="conv-h").exists()
    assert not AppUser.objects.filter(source_pk="eve").exists()


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"\x0a\x05\x12\x03\x12", {}, 400),  # truncated protobuf
        (b"\x00" * 200, {"Content-Encoding": "gzip"}, 400),  # not gzip
        (gzip.compress(b"\x0a" * 20_000_000), {"Content-Encoding": "gzip"}, 413),  # bomb
        (b"x" * 6_000_000, {}, 413),  # over API_MAX_BODY_BYTES
    ],
    ids=["truncated", "not-gzip", "gzip-bomb", "too-large"],
)
def test_hostile_bodies_on_the_wire_are_4xx_and_write_nothing(
    site, key, body, headers, status, settings
):
    settings.API_MAX_BODY_BYTES = 5 * 1024 * 1024
    headers = {"Content-Type": "application/x-protobuf", "X-API-Key": key[0], **headers}
    response = requests.post(f"{site}{PATH}", data=body, headers=headers, timeout=30)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/x-protobuf"
    assert not ModelUsage.objects.exists()


def test_a_wrong_key_makes_the_exporter_fail_and_writes_nothing(otel_env):
    otel_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=not-a-key")
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    record(provider, CALLS[:1])
    assert OTLPSpanExporter().export(memory.get_finished_spans()).name == "FAILURE"
    assert not ModelUsage.objects.exists()
