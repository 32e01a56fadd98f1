"""Logging filters (settings.LOGGING)."""

import logging

from django.core.exceptions import PermissionDenied


class QuietPermissionDenied(logging.Filter):
    """A 403 is logged as one warning line, without the traceback.

    Django logs every PermissionDenied (``Forbidden (Permission denied):
    /path``) with ``exc_info``, so each refused page put a full stack trace in
    the log, burying real errors. A refusal is the site working, not a fault:
    keep the line, drop the trace. Other exceptions are left alone.
    """

    def filter(self, record):
        exc_type = record.exc_info[0] if record.exc_info else None
        if exc_type is not None and issubclass(exc_type, PermissionDenied):
            record.exc_info = None
            record.exc_text = None
        return True
