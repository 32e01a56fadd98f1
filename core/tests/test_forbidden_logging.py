"""A 403 is logged as one warning line without a traceback (#17.12); a real
error still gets its traceback."""

import logging
import sys

import pytest
from django.test import Client

from analyst_admin.log_filters import QuietPermissionDenied

from . import factories as f


@pytest.mark.django_db
def test_a_403_is_one_warning_line_without_traceback(caplog):
    client = Client()
    client.force_login(f.UserFactory(is_staff=True))

    with caplog.at_level(logging.INFO, logger="django.request"):
        response = client.get("/admin/core/organization/add/")

    assert response.status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "Forbidden (Permission denied): /admin/core/organization/add/")
    ]
    assert records[0].exc_info is None
    assert "Traceback" not in caplog.text


def test_other_exceptions_keep_their_traceback():
    try:
        raise ValueError("a bug")
    except ValueError:
        record = logging.LogRecord("django.request", logging.ERROR, "", 0, "boom", (), None)
        record.exc_info = sys.exc_info()

    assert QuietPermissionDenied().filter(record) is True
    assert record.exc_info[0] is ValueError
