"""The ingest API's OpenAPI document, and a schemathesis run against it.

The schemathesis test generates requests from the document (valid and
invalid bodies, with a valid key) and sends them in-process to Django's WSGI
application; any 5xx fails. It uses the ordinary ``django_db`` transaction,
so it runs the same on SQLite and PostgreSQL (select it with
``-k schemathesis``).
"""

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from ingest.api import api
from ingest.tests.test_api_auth import make_key

PATHS = {
    "/api/v1/usage": "UsageBatch",
    "/api/v1/chats": "ChatBatch",
    "/api/v1/feedback": "FeedbackBatch",
}


def test_openapi_document_is_valid_and_complete(client):
    document = client.get("/api/v1/openapi.json").json()
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.1 schema
    assert set(document["paths"]) == set(PATHS)
    assert document["components"]["securitySchemes"] == {
        "BearerKey": {"type": "http", "scheme": "bearer"},
        "HeaderKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    schemas = document["components"]["schemas"]
    for path, body in PATHS.items():
        operation = document["paths"][path]["post"]
        assert operation["security"] == [{"BearerKey": []}, {"HeaderKey": []}]
        request = operation["requestBody"]["content"]["application/json"]["schema"]
        assert request == {"$ref": f"#/components/schemas/{body}"}
        assert schemas[body]["properties"]["items"]["maxItems"] == 1000
        assert {"200", "401", "403", "413", "422"} <= set(operation["responses"])
    feedback = schemas["FeedbackIn"]["properties"]["rating"]
    assert (feedback["minimum"], feedback["maximum"]) == (1, 5)
    confidence = schemas["MessageIn"]["properties"]["confidence"]["anyOf"][0]
    assert (confidence["minimum"], confidence["maximum"]) == (0, 1)


# Built from the same document /api/v1/openapi.json serves (tested above);
# schemathesis's lazy ``from_fixture`` loader does not run under pytest 9.
schema = schemathesis.openapi.from_dict(api.get_openapi_schema())


@pytest.fixture
def wsgi_app(settings):
    """Django's WSGI app, minus closing the connection at each request's end
    (Django's test client does the same), so requests share the test's
    transaction."""
    settings.ALLOWED_HOSTS = ["localhost"]  # the Host schemathesis sends
    settings.SECURE_SSL_REDIRECT = False
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def ingest_key(db):
    return make_key()[0]


@pytest.mark.django_db
@schema.parametrize()
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    database=None,  # no example database (.hypothesis/ keeps only a git-ignored cache)
    derandomize=True,  # the same requests on every run and in CI
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_schemathesis_finds_no_server_error(case, wsgi_app, ingest_key):
    response = case.call(app=wsgi_app, headers={"Authorization": f"Bearer {ingest_key}"})
    case.validate_response(response, checks=[not_a_server_error])
