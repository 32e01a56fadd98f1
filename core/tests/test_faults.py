"""Faults: with the database unreachable, pages answer 503 with a plain page
(no stack trace) and recover by themselves when it is back; a missing
related row never breaks a page.

Three levels: the middleware alone (RequestFactory); the whole request
stack in process with every query failing; and a real gunicorn, first
against a closed port, then (on PostgreSQL) behind a TCP proxy of our own
that the test closes and reopens, so the database really goes away and
comes back. The shared PostgreSQL server itself is never touched.
"""

import contextlib
import json
import socket
import threading
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from core.middleware import DatabaseUnavailableMiddleware
from core.views import server_error
from usage import ledger
from usage.models import DailyUsage, ModelUsage, UserUsage

from . import factories as f
from .test_production import (  # noqa: F401 (fixtures)
    collected_static,
    get,
    gunicorn_server,
    production_env,
    restore_migration_data,
)

PLAIN_PAGE = "Analyst Admin is temporarily unavailable"
# What a stack trace or Django's debug page would show.
TRACE_WORDS = ("Traceback", "OperationalError", "psycopg", 'File "', "Exception Value")


def _no_trace(body):
    text = body.decode() if isinstance(body, bytes) else body
    return [word for word in TRACE_WORDS if word in text]


# The middleware alone -------------------------------------------------------


def _raising(error):
    def view(request):
        raise error

    return view


@pytest.mark.parametrize(
    "error",
    [OperationalError("could not connect to server"), InterfaceError("connection already closed")],
)
def test_middleware_turns_database_errors_into_a_plain_503(error):
    request = RequestFactory().get("/admin/chats/chat/")
    middleware = DatabaseUnavailableMiddleware(lambda request: HttpResponse("never"))

    response = middleware.process_exception(request, error)

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response["Cache-Control"] == "no-store"
    assert PLAIN_PAGE in response.content.decode()
    assert _no_trace(response.content) == []


def test_middleware_answers_the_api_in_json():
    request = RequestFactory().post("/api/v1/usage")
    middleware = DatabaseUnavailableMiddleware(lambda request: HttpResponse("never"))

    response = middleware.process_exception(request, OperationalError("gone"))

    assert response.status_code == 503
    assert json.loads(response.content) == {
        "detail": "The database is unavailable. Try again shortly."
    }


def test_middleware_leaves_other_errors_alone():
    request = RequestFactory().get("/admin/")
    middleware = DatabaseUnavailableMiddleware(lambda request: HttpResponse("never"))

    assert middleware.process_exception(request, ValueError("a bug")) is None


def test_handler500_answers_503_for_a_database_error_outside_a_view():
    request = RequestFactory().get("/admin/")

    try:
        raise OperationalError("server closed the connection unexpectedly")
    except OperationalError:
        database = server_error(request)
    try:
        raise ValueError("a bug")
    except ValueError:
        bug = server_error(request)

    assert database.status_code == 503
    assert PLAIN_PAGE in database.content.decode()
    assert bug.status_code == 500
    assert _no_trace(bug.content) == []


# The whole stack, in process ------------------------------------------------


@pytest.fixture
def failing_database(monkeypatch):
    """Every query from now on fails as if the server were gone."""

    def refuse(self, sql, params=None, *args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    def switch():
        monkeypatch.setattr("django.db.backends.utils.CursorWrapper.execute", refuse)
        monkeypatch.setattr("django.db.backends.utils.CursorWrapper.executemany", refuse)

    return switch


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/chats/chat/",
        "/admin/dashboards/",
        "/admin/review/feedback/",
        "/admin/core/auditlog/",
    ],
)
def test_pages_answer_503_while_queries_fail_and_200_after(
    client, monkeypatch, failing_database, url
):
    client.force_login(f.UserFactory(is_superuser=True))
    assert client.get(url).status_code == 200

    failing_database()
    down = client.get(url)
    monkeypatch.undo()
    back = client.get(url)

    assert down.status_code == 503
    assert PLAIN_PAGE in down.content.decode()
    assert _no_trace(down.content) == []
    assert back.status_code == 200


@pytest.mark.django_db
@pytest.mark.rollups_unchecked  # every query fails until the test ends
def test_the_api_answers_503_json_while_queries_fail(client, failing_database):
    failing_database()

    response = client.post(
        "/api/v1/usage",
        json.dumps({"items": []}),
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer aa_whatever",
    )

    assert response.status_code == 503
    assert response.json()["detail"].startswith("The database is unavailable")


# A real server against a closed port ----------------------------------------


def test_gunicorn_against_a_closed_port_answers_503_without_a_trace():
    env = production_env(
        DATABASE_URL="postgres://analyst@127.0.0.1:1/analyst_admin",
        SECURE_SSL_REDIRECT="false",
        SECURE_COOKIES="false",
    )

    with gunicorn_server(env) as base:
        # A logged-in browser: its session cookie makes the page read the database.
        page = get(f"{base}/admin/", {"Cookie": "sessionid=" + "k" * 32})
        health = get(f"{base}/health/")
        api = get(f"{base}/api/v1/openapi.json")

    status, headers, body = page
    assert status == 503
    assert PLAIN_PAGE in body.decode()
    assert _no_trace(body) == []
    assert headers["Retry-After"] == "30"
    assert health[0] == 503
    assert json.loads(health[2]) == {"status": "error", "database": "unavailable"}
    # A page that needs no database still works.
    assert api[0] == 200


# A real outage and recovery, through a proxy (PostgreSQL) -------------------


class TcpProxy:
    """A loopback TCP forwarder that can be closed and reopened on the same
    port: closing drops every open connection and refuses new ones, as a
    database server that went away does."""

    def __init__(self, upstream):
        self.upstream = upstream
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.listener = None
        self.sockets = set()
        self.lock = threading.Lock()

    def open(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self):
        # shutdown() wakes the thread blocked in accept(); close() alone does not.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.sockets |= {client, server}
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="a database that goes away over TCP needs PostgreSQL (DATABASE_URL=postgres://…)",
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_outage_answers_503_and_the_next_request_after_recovery_200(client, collected_static):  # noqa: F811
    db = connection.settings_dict
    proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    proxy.open()
    client.force_login(f.UserFactory(is_superuser=True, password=make_password(None)))
    cookie = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    env = production_env(
        # the session above was signed with this process's key
        SECRET_KEY=settings.SECRET_KEY,
        DATABASE_URL=f"postgres://{credentials}@127.0.0.1:{proxy.port}/{db['NAME']}",
        STATIC_ROOT=str(collected_static),
        SECURE_SSL_REDIRECT="false",
        SECURE_COOKIES="false",
        CONN_MAX_AGE="60",  # a kept connection, which the outage breaks
    )
    try:
        with gunicorn_server(env) as base:
            before = get(f"{base}/admin/", cookie)
            proxy.close()
            during = [get(f"{base}/admin/", cookie) for _ in range(2)]
            health_during = get(f"{base}/health/")
            proxy.open()
            after = get(f"{base}/admin/", cookie)
            health_after = get(f"{base}/health/")
    finally:
        proxy.close()

    assert before[0] == 200
    assert "Back office" in before[2].decode()
    # The kept connection breaks, then new ones are refused: 503 both times.
    assert [response[0] for response in during] == [503, 503]
    for response in during:
        assert PLAIN_PAGE in response[2].decode()
        assert _no_trace(response[2]) == []
    assert health_during[0] == 503
    # Recovered by itself: the very next request works.
    assert after[0] == 200
    assert "Back office" in after[2].decode()
    assert health_after[0] == 200


# Missing related rows -------------------------------------------------------


@pytest.mark.django_db
def test_pages_render_when_related_rows_are_gone(client):
    """Roll-up rows naming a deleted app user and organisation (their keys
    have no database constraint), a ledger row whose chat and user were
    deleted, audit entries about deleted objects and by a deleted account."""
    client.force_login(f.UserFactory(is_superuser=True))
    today = timezone.localdate()
    gone_user, gone_org = 987_654, 876_543
    sums = {
        "requests": 3,
        "prompt_tokens": 300,
        "completion_tokens": 100,
        "total_tokens": 400,
        "cost": Decimal("0.5"),
    }
    keys = {"user_id": gone_user, "organization_id": gone_org}
    with ledger.unchecked():  # orphaned roll-up rows, planted on purpose
        DailyUsage.objects.create(day=today, model_name="gpt-4o", provider="openai", **keys, **sums)
        UserUsage.objects.create(span="day", day=today, **keys, **sums)
        UserUsage.objects.create(span="month", day=today.replace(day=1), **keys, **sums)
    chat = f.ChatFactory()
    usage = f.ModelUsageFactory(user=chat.user, chat=chat)
    f.QueryAnalyticsFactory(usage=usage)
    chat.user.delete()  # the chat goes with its user (CASCADE); usage stays
    usage.refresh_from_db()
    assert (usage.user_id, usage.chat_id) == (None, None)
    actor = f.UserFactory()
    f.AuditLogFactory(actor=actor, resource_type="chats.chat", resource_id=str(chat.pk))
    actor.delete()
    rollup = DailyUsage.objects.get(user_id=gone_user)

    urls = [
        reverse("dashboards:overview") + "?period=7d",
        reverse("dashboards:models") + "?period=7d",
        reverse("admin:usage_dailyusage_changelist"),
        reverse("admin:usage_dailyusage_change", args=[rollup.pk]),
        reverse("admin:usage_modelusage_changelist"),
        reverse("admin:usage_modelusage_change", args=[usage.pk]),
        reverse("admin:usage_modelusage_changelist") + f"?user__id__exact={gone_user}",
        reverse("admin:usage_queryanalytics_changelist"),
        reverse("admin:core_auditlog_changelist"),
        reverse("admin:core_auditlog_change", args=[f.AuditLogFactory().pk]),
    ]
    statuses = {url: client.get(url).status_code for url in urls}
    gone_pages = [
        client.get(reverse("dashboards:user", args=[gone_user])).status_code,
        client.get(reverse("dashboards:organization", args=[gone_org])).status_code,
        client.get(reverse("review:transcript", args=[chat.pk])).status_code,
    ]

    assert statuses == dict.fromkeys(urls, 200)
    # The page of something deleted is "not found", never a server error.
    assert gone_pages == [404, 404, 404]
    overview = client.get(reverse("dashboards:overview") + "?period=7d")
    top_users = {table.name: table for table in overview.context["tables"]}["top_users"]
    # The orphaned roll-up row still counts, under a label that says why.
    assert [(row["label"], row["requests"]) for row in top_users.rows] == [
        (f"deleted app user {gone_user}", 3)
    ]
    assert ModelUsage.objects.filter(pk=usage.pk).exists()
