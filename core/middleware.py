"""Stay graceful while the database is unreachable.

A view (or a template it renders) that cannot reach the database raises
``OperationalError`` or ``InterfaceError``; instead of a 500 the visitor gets
a plain 503 page with ``Retry-After``, and no stack trace. Nothing is kept
between requests: Django closes the broken connection at the end of the
request (``close_old_connections``) and the next request connects afresh, so
the site recovers by itself as soon as the database answers again.

Errors outside a view (a session saved after the view ran) reach
``core.views.server_error``, the project's ``handler500``, which answers the
same way.
"""

from django.db import InterfaceError, OperationalError

from core.views import database_unavailable

DATABASE_ERRORS = (OperationalError, InterfaceError)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, DATABASE_ERRORS):
            return database_unavailable(request, exception)
        return None
