"""Site-wide views: the health check and the answers to failures."""

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


@never_cache
@require_GET
def health(request):
    """200 {"status": "ok"} when the database answers a query, else 503.

    No login and no session: load balancers and uptime monitors call it.
    """
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        logger.warning("health check: database unavailable: %s", error)
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def database_unavailable(request, exception):
    """The 503 answer while the database cannot be reached.

    Rendered without the request, so no context processor (user, session)
    touches the database again; the API gets JSON.
    """
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
