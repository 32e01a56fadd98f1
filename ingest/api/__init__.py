"""The ingest API (/api/v1/): applications push usage, chats and feedback.

django-ninja builds the views and the OpenAPI document from the schemas in
``schemas.py``; ``auth.py`` checks the API key, ``writers.py`` writes,
``errors.py`` says no. The OpenAPI document (/api/v1/openapi.json) is public,
so clients can generate code from it; the interactive docs (/api/v1/docs)
are for logged-in staff only.
"""

from django.contrib.admin.views.decorators import staff_member_required
from ninja import NinjaAPI
from ninja.openapi.views import openapi_view

from . import routers
from .errors import install_handlers, limit_body
from .schemas import MAX_ITEMS, MAX_MESSAGES

DESCRIPTION = f"""
Batch endpoints for applications that push their data into Analyst Admin.

**Authentication.** Send an API key as `Authorization: Bearer <key>` or
`X-API-Key: <key>`. The key must be active, unexpired and linked to an ingest
source: every row sent with it belongs to that source. Unknown, revoked or
expired keys get 401; a key without an ingest source or without the
endpoint's scope gets 403. A key whose `permissions` is a list must contain
the scope (`usage:write`, `chats:write`, `feedback:write`); null or empty
permissions grant every ingest scope.

**Batches.** Each endpoint takes `{{"items": [...]}}` with 1 to {MAX_ITEMS}
items (POST /chats: at most {MAX_MESSAGES} messages in all). A batch is
written in one transaction, all or nothing. Any invalid item refuses the
whole batch: 422 lists every field error with its path (`items.3.rating`)
and every refused item with its reasons. Items that name a user, chat or
message the source never sent are refused the same way, and so are chats
naming an organisation slug that another source (or an admin) created: a key
names only its own source's rows; an unknown slug creates an organisation of
the key's source.

**Idempotency.** Items are matched by the client's `id` within the key's
source: sending a batch again creates nothing; a changed item is updated.
The response counts items created, updated and unchanged.

**Limits.** Bodies over the server's limit (API_MAX_BODY_BYTES, 5 MB by
default) get 413; a body that is not JSON gets 400; a conflict with a
concurrent write of the same ids gets 409 (send again). Times must carry a
time zone.

**Types.** Strict: numbers are JSON numbers (`"10"` and `true` are refused),
booleans `true`/`false` (not `"yes"` or 1), times ISO 8601 strings with a time
zone (not Unix timestamps); only client ids take an integer as text.

**Cached input and reasoning tokens.** A usage record may carry
`cached_input_tokens` (prompt tokens served from the provider's cache) and
`reasoning_tokens` (completion tokens spent on reasoning). As in OpenAI's
usage object they are parts of `prompt_tokens` and `completion_tokens`, never
more, and not added to `total_tokens`. Omitted or null: not reported (0 means
reported none). A record without cost is priced with the model's cached-input
and reasoning prices where the price list has them, else at its input and
output prices.

**OpenTelemetry.** Applications instrumented with OpenTelemetry's GenAI
conventions can send traces instead: `POST /api/v1/otel/v1/traces` (OTLP/HTTP,
protobuf or JSON, gzip or not; not listed below, being no JSON batch). Point
the exporter at it with the SDKs' environment variables:
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://<site>/api/v1/otel/v1/traces`,
`OTEL_EXPORTER_OTLP_HEADERS=x-api-key=<key>`,
`OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`. Each model-call span becomes one
usage record (idempotent by trace and span id), with
`gen_ai.usage.cache_read.input_tokens` and `gen_ai.usage.reasoning.output_tokens`
as its cached input and reasoning tokens; impossible spans are counted
in the answer's `partial_success` with their reasons.
"""

api = NinjaAPI(
    title="Analyst Admin ingest API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api-v1",
    docs_url=None,  # served by ``docs`` below, for staff only
)
install_handlers(api)
api.add_decorator(limit_body, mode="view")
api.add_router("/usage", routers.usage)
api.add_router("/chats", routers.chats)
api.add_router("/feedback", routers.feedback)


@staff_member_required
def docs(request):
    """Swagger UI of the API, for logged-in staff (its assets come from the ninja app)."""
    return openapi_view(request, api=api)
