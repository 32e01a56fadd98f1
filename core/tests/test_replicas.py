"""Read replicas (core/replicas.py): the routing rules, then the same rules
against a real PostgreSQL primary and streaming replica the test makes for
itself (core/tests/pg_servers.py), stopped and delayed."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from core import replicas
from core.models import Organization

from .pg_servers import Pair, bin_dir

ROOT = Path(__file__).resolve().parents[2]


# -- the rules, with the replicas' health stubbed ------------------------------


@pytest.fixture
def one_replica(monkeypatch):
    """A configured replica whose health the test decides."""
    state = {"healthy": True}
    monkeypatch.setattr(replicas, "replica_aliases", lambda: ["replica_0"])
    monkeypatch.setattr(replicas.health, "healthy", lambda alias: state["healthy"])
    return state


def test_reads_go_to_the_primary_unless_turned_on(one_replica):
    router = replicas.ReplicaRouter()
    assert router.db_for_read(Organization) == "default"
    with replicas.replica_reads():
        assert router.db_for_read(Organization) == "replica_0"
    assert router.db_for_write(Organization) == "default"
    assert router.allow_migrate("replica_0", "core") is False
    assert router.allow_migrate("default", "core") is True


@pytest.mark.django_db(transaction=True)
def test_reads_inside_a_transaction_go_to_the_primary(one_replica):
    router = replicas.ReplicaRouter()
    with replicas.replica_reads():
        with transaction.atomic():
            assert router.db_for_read(Organization) == "default"
        assert router.db_for_read(Organization) == "replica_0"


def test_an_unhealthy_replica_is_skipped(one_replica):
    one_replica["healthy"] = False
    with replicas.replica_reads():
        assert replicas.ReplicaRouter().db_for_read(Organization) == "default"


def _through_middleware(request):
    seen = {}

    def view(request):
        seen["reads"] = replicas._replica_reads.get()
        return HttpResponse("ok")

    response = replicas.ReplicaReadMiddleware(view)(request)
    return seen["reads"], response


def test_middleware_turns_replica_reads_on_for_dashboards_only(one_replica):
    factory = RequestFactory()
    assert _through_middleware(factory.get("/admin/dashboards/"))[0] is True
    assert _through_middleware(factory.get("/admin/quality/code/?export=models"))[0] is True
    assert _through_middleware(factory.get("/admin/chats/chat/"))[0] is False
    assert _through_middleware(factory.post("/admin/dashboards/"))[0] is False


def test_a_client_that_wrote_reads_its_writes_from_the_primary(one_replica):
    factory = RequestFactory()
    _, response = _through_middleware(factory.post("/admin/usage/budget/add/"))
    cookie = response.cookies[replicas.PIN_COOKIE]
    assert cookie["httponly"] and int(cookie["max-age"]) == 10
    request = factory.get("/admin/dashboards/")
    request.COOKIES[replicas.PIN_COOKIE] = cookie.value
    assert _through_middleware(request)[0] is False
    # a forged pin is ignored; an expired one too
    request.COOKIES[replicas.PIN_COOKIE] = "1:forged"
    assert _through_middleware(request)[0] is True
    with override_settings(REPLICA_PIN_SECONDS=0):
        request.COOKIES[replicas.PIN_COOKIE] = cookie.value
        time.sleep(1.1)
        assert _through_middleware(request)[0] is True


def test_no_replica_configured_changes_nothing():
    factory = RequestFactory()
    reads, response = _through_middleware(factory.get("/admin/dashboards/"))
    assert reads is False
    _, response = _through_middleware(factory.post("/admin/usage/budget/add/"))
    assert replicas.PIN_COOKIE not in response.cookies


# -- against real servers ------------------------------------------------------------

real_servers = pytest.mark.skipif(
    connection.vendor != "postgresql" or bin_dir() is None,
    reason="needs PostgreSQL's server binaries (the PostgreSQL run of the suite)",
)

# One process per step: the settings read DATABASE_REPLICA_URLS at start.
STEP = """
import json, time
from django.db import connections, transaction
from core.models import Organization
from core.replicas import replica_reads
out = {}
step = %(step)r
if step == "routes":
    Organization.objects.create(slug="written", name="Written on the primary")
    for _ in range(100):
        if Organization.objects.using("replica_0").filter(slug="written").exists():
            break
        time.sleep(0.1)
    with replica_reads():
        rows = Organization.objects.filter(slug="written")
        out["db"] = rows.db
        out["count"] = rows.count()
        with connections[rows.db].cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()")
            out["replica_in_recovery"] = cursor.fetchone()[0]
        with transaction.atomic():
            Organization.objects.create(slug="in-transaction", name="In a transaction")
            rows = Organization.objects.filter(slug="in-transaction")
            out["in_transaction_db"] = rows.db
            out["in_transaction_count"] = rows.count()
    out["without_replica_reads_db"] = Organization.objects.all().db
elif step == "lagging":
    Organization.objects.create(slug="while-paused", name="While replay is paused")
    time.sleep(1.5)
    with replica_reads():
        rows = Organization.objects.filter(slug="while-paused")
        out["db"] = rows.db
        out["count"] = rows.count()
elif step == "read":
    started = time.monotonic()
    with replica_reads():
        rows = Organization.objects.all()
        out["db"] = rows.db
        out["count"] = rows.count()
    out["seconds"] = time.monotonic() - started
print("RESULT " + json.dumps(out))
"""


def _step(pair, step):
    env = {
        **os.environ,
        "DATABASE_URL": pair.url(pair.primary_port, "analyst_admin"),
        "DATABASE_REPLICA_URLS": pair.url(pair.replica_port, "analyst_admin"),
        "REPLICA_MAX_LAG_SECONDS": "1",
        "REPLICA_CHECK_SECONDS": "0",
        "REPLICA_CONNECT_TIMEOUT": "2",
    }
    result = subprocess.run(  # noqa: S603 (this project's manage.py)
        [sys.executable, "manage.py", "shell", "-c", STEP % {"step": step}],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.fixture(scope="module")
def pair():
    servers = Pair()
    try:
        servers.start()
        servers.sql(servers.primary_port, "CREATE DATABASE analyst_admin")
        migrate = subprocess.run(  # noqa: S603 (this project's manage.py)
            [sys.executable, "manage.py", "migrate", "-v", "0"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": servers.url(servers.primary_port, "analyst_admin")},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr
        servers.wait_replayed()
        yield servers
    finally:
        servers.stop()


@real_servers
def test_a_real_replica_serves_reads_and_the_primary_the_rest(pair):
    out = _step(pair, "routes")
    assert out["db"] == "replica_0"
    assert out["replica_in_recovery"] is True
    assert out["count"] == 1
    # a read in a writing transaction sees its own write on the primary
    assert out["in_transaction_db"] == "default"
    assert out["in_transaction_count"] == 1
    assert out["without_replica_reads_db"] == "default"


@real_servers
def test_a_lagging_replica_is_skipped_until_it_catches_up(pair):
    pair.sql(pair.replica_port, "SELECT pg_wal_replay_pause()")
    try:
        out = _step(pair, "lagging")
        assert out == {"db": "default", "count": 1}
    finally:
        pair.sql(pair.replica_port, "SELECT pg_wal_replay_resume()")
    pair.wait_replayed()
    out = _step(pair, "read")
    assert out["db"] == "replica_0"


@real_servers
def test_a_stopped_replica_is_skipped(pair):
    pair.wait_replayed()
    expected = int(
        pair.sql(pair.primary_port, "SELECT count(*) FROM core_organization", "analyst_admin")
    )
    pair.stop_replica()
    out = _step(pair, "read")
    assert out["db"] == "default"
    assert out["count"] == expected
    # skipped within the connect timeout, not after a TCP time-out
    assert out["seconds"] < 5
