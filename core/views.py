"""Site-wide views: the health check and the answers to failures."""

import contextlib
import functools
import logging
import sys

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger("analyst_admin.faults")

# Seconds a client is asked to wait before it tries again.
RETRY_AFTER = 30


@functools.cache
def expected_migrations():
    """The latest migration of each app of this code, read from the
    migration files once per process: {(app, name), ...}."""
    from django.db.migrations.loader import MigrationLoader

    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes())


def missing_migrations(connection):
    """The expected latest migrations the database has not recorded.

    A database that answers but is not the one this site was migrated on
    (an empty file SQLite created in place of a missing one, a wrong
    DATABASE_URL, a release whose migrations have not run) lacks them.
    """
    expected = expected_migrations()
    names = sorted({name for _app, name in expected})
    with connection.cursor() as cursor:
        placeholders = ", ".join(["%s"] * len(names))
        cursor.execute(
            f"SELECT app, name FROM django_migrations WHERE name IN ({placeholders})",  # noqa: S608
            names,
        )
        recorded = set(cursor.fetchall())
    return sorted(expected - recorded)


@never_cache
@require_GET
def health(request):
    """200 {"status": "ok"} when the database answers and holds the latest
    migration of every app, else 503.

    No login and no session: load balancers and uptime monitors call it.
    """
    try:
        missing = missing_migrations(connections["default"])
    except DatabaseError as error:
        logger.warning("health check: database unavailable: %s", error)
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    if missing:
        logger.warning(
            "health check: the database lacks %d expected migrations, e.g. %s.%s: "
            "not the database this site was migrated on (or migrate has not run)",
            len(missing),
            *missing[0],
        )
        return JsonResponse({"status": "error", "database": "not migrated"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def database_unavailable(request, exception):
    """The 503 answer while the database cannot be reached.

    Rendered without the request, so no context processor (user, session)
    touches the database again; the API gets JSON. The connection that
    failed is closed, so the next request connects afresh (on SQLite,
    through the backend that repairs read-only WAL files) instead of reusing
    a connection stuck in the fault.
    """
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            with contextlib.suppress(DatabaseError):
                connection.close()
    logger.warning(
        "database unavailable: %s %s: %s: %s",
        request.method,
        request.path,
        type(exception).__name__,
        exception,
    )
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {"detail": "The database is unavailable. Try again shortly."}, status=503
        )
    else:
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER)
    response["Cache-Control"] = "no-store"
    return response


def server_error(request):
    """handler500: a database error anywhere in the request answers 503;
    anything else gets Django's plain 500 page."""
    exception = sys.exc_info()[1]
    if isinstance(exception, (OperationalError, InterfaceError)):
        return database_unavailable(request, exception)
    return defaults.server_error(request)
