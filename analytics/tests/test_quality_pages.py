"""The quality, activity and text-to-SQL pages: figures, charts and tables
equal analytics.metrics, group links open exactly the group's executions and
their transcripts, filters stay in the URL, CSV exports equal the figures,
query counts are constant, and who may read and export.

"Today" is fixed to 14 March 2024 (conftest.fixed_today); days are cut in
UTC unless a test says not. The data is test_quality_metrics' ``world``.
"""

import csv
import datetime as dt
import html
import io
import re
from decimal import Decimal
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse

from analytics import metrics as quality
from analytics import views
from analytics.filters import ExecutionFilter, QualityFilter
from analytics.tests.test_quality_metrics import world  # noqa: F401 (a fixture)
from chats.views import transcript_url
from core.models import User
from core.pages.formats import CSV_PLACES, csv_label, csv_value
from core.pages.views import PageRequest
from core.tests import factories as f
from usage.metrics import Period, Scope
from usage.templatetags.figures import change, figure
from usage.tests.conftest import TODAY
from usage.tests.test_dashboards import (
    OUT_OF_RANGE,
    OUT_OF_RANGE_MESSAGE,
    chart_of,
    figures_of,
    tables_of,
)

pytestmark = pytest.mark.django_db

CODE = reverse("quality:code")
EXECUTIONS = reverse("quality:executions")
FEEDBACK = reverse("quality:feedback")
ACTIVITY = reverse("quality:activity")
SQL = reverse("quality:text_to_sql")
PAGES = [CODE, EXECUTIONS, FEEDBACK, ACTIVITY, SQL]
THIRTY_DAYS = Period(dt.date(2024, 2, 14), TODAY)
SEVEN_DAYS = Period(dt.date(2024, 3, 8), TODAY)

TABLES = {
    CODE: [
        "error_types",
        "agents",
        "per_chat",
        "models",
        "busiest_chats",
        "slowest",
        "most_retried",
    ],
    EXECUTIONS: ["executions"],
    FEEDBACK: ["distribution", "models", "agents", "temperature", "max_tokens", "mistakes"],
    ACTIVITY: ["weeks", "months", "cohorts", "sources", "organizations"],
    SQL: ["errors", "rows", "slowest"],
}


@pytest.fixture
def as_manager(client, manager, world, fixed_today):  # noqa: F811
    client.force_login(manager)
    return client


def get_page(client, url, **params):
    response = client.get(url, params)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def expected_figures(headline):
    return {
        f.key: (
            figure(f.value, f.kind),
            f"{change(f.change)} vs {figure(f.previous, f.kind)}"
            if f.change is not None
            else "no earlier figure",
        )
        for f in headline
    }


def links_of(page, name):
    """The first-column links of a dashboard table, in row order (None: no link)."""
    section = page.split(f'id="table-{name}"')[1].split("</section>")[0]
    body = section.split("<tbody>")[1] if "<tbody>" in section else ""
    found = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        first = re.search(r"<td[^>]*>(.*?)</td>", row, re.S).group(1)
        link = re.search(r'<a href="([^"]*)">', first)
        found.append(html.unescape(link.group(1)) if link else None)
    return found


def shown(value, kind="text"):
    return figure(value, kind) if kind != "text" else ("–" if value in (None, "") else value)


# -- the code-execution page --------------------------------------------------------


def test_code_page_shows_the_quality_figures(as_manager, world):  # noqa: F811
    page = get_page(as_manager, CODE, period="30d")

    assert figures_of(page) == expected_figures(quality.execution_headline(THIRTY_DAYS, Scope()))
    assert figures_of(page)["executions"][0] == "11"  # all but e10 (15 March)
    tables = tables_of(page)
    assert list(tables) == TABLES[CODE]
    types = quality.failures_by_error_type(THIRTY_DAYS, Scope())
    assert tables["error_types"] == [
        [r["error_type"], str(r["executions"]), str(r["agents"]), shown(r["example"])]
        for r in types
    ]
    assert tables["error_types"][1][:2] == ["KeyError", "2"]
    # ann's chat ran six times; bob's twice; ann's March chat and the
    # anonymous one once; e7 has no chat.
    assert tables["per_chat"] == [
        ["1", "2"],
        ["2", "1"],
        ["3", "0"],
        ["4", "0"],
        ["5 or more", "1"],
    ]
    # e8 (2 min), e12 and e5 (1 min, newest first), e1, e3; e4 was updated
    # before it was created and e6, e11 never after: left out.
    assert [row[3] for row in tables["slowest"]] == [
        "2 min 00 s",
        "1 min 00 s",
        "1 min 00 s",
        "40.0 s",
        "10.0 s",
    ]
    per_day = chart_of(page, "chart-per-day")
    assert per_day["data"][0]["x"] == [d.isoformat() for d in THIRTY_DAYS.each_day()]
    assert per_day["data"][0]["y"] == [
        n for _, n, _, _ in quality.success_per_day(THIRTY_DAYS, Scope())
    ]
    assert chart_of(page, "chart-error-types")["data"][0]["y"] == [r["error_type"] for r in types]
    assert "vendor/plotly-basic.min.js" in page and "usage/charts.js" in page
    assert "cdn" not in page.lower()


def test_error_types_and_agents_open_their_failing_executions(as_manager, world):  # noqa: F811
    page = get_page(as_manager, CODE, period="30d", organization=world.acme.pk)
    scope = Scope(organization_id=world.acme.pk)

    types = quality.failures_by_error_type(THIRTY_DAYS, scope)
    for link, row in zip(links_of(page, "error_types"), types, strict=True):
        url = urlsplit(link)
        assert url.path == EXECUTIONS
        # The page's filters go along, with the group.
        assert parse_qs(url.query) == {
            "period": ["30d"],
            "organization": [str(world.acme.pk)],
            "error_type": [row["error_type"]],
        }
        listed = get_page(as_manager, link)
        expected = quality.execution_list(THIRTY_DAYS, scope, error_type=row["error_type"])
        assert len(tables_of(listed)["executions"]) == row["executions"] == expected.count()
        # Each execution opens its answer in the transcript.
        assert links_of(listed, "executions") == [
            transcript_url(e.message) if e.message_id else None for e in expected
        ]
    agents = quality.failures_by_agent(THIRTY_DAYS, scope)
    for link, row in zip(links_of(page, "agents"), agents, strict=True):
        assert parse_qs(urlsplit(link).query)["agent"] == [row["agent"]]
        listed = get_page(as_manager, link)
        assert len(tables_of(listed)["executions"]) == row["executions"]
        assert f"of agent <strong>{html.escape(row['agent'])}</strong>" in listed


def test_executions_list_shows_errors_and_pages(as_manager, world, monkeypatch):  # noqa: F811
    monkeypatch.setattr("core.pages.views.PAGE_SIZE", 3)
    first = get_page(as_manager, EXECUTIONS, period="30d")

    failing = list(quality.execution_list(THIRTY_DAYS, Scope()))
    rows = tables_of(first)["executions"]
    assert len(rows) == 3
    assert [row[4] for row in rows] == ["failed"] * 3
    # Newest first: e8 (04:00), e4 (03:00; updated before created: unknown
    # time), e9 (00:00:01, three messages of which two are typed).
    assert rows[0][5] == "–"  # {}: no message
    assert rows[1][5] == "ValueError; pandas.errors.ParserError"
    assert rows[1][6] == "–"
    assert rows[2][5] == "sql_agent: (empty message); stats_agent: NameError"
    assert f"{len(failing)} executions · page 1 of 3" in first
    # The pager keeps the filters, once.
    assert 'href="?period=30d&amp;page=2"' in first
    third = get_page(as_manager, EXECUTIONS, period="30d", page="3")
    assert len(tables_of(third)["executions"]) == len(failing) - 6
    # e7 has no chat: listed, not linked.
    assert links_of(third, "executions")[-2:] == [None, transcript_url(failing[-1].message)]


# -- the feedback page -----------------------------------------------------------------


def test_feedback_page_shows_the_quality_figures(as_manager, world):  # noqa: F811
    page = get_page(as_manager, FEEDBACK, period="7d")

    assert figures_of(page) == expected_figures(quality.feedback_headline(SEVEN_DAYS, Scope()))
    tables = tables_of(page)
    assert list(tables) == TABLES[FEEDBACK]
    # 8–14 March: 1 ★ (f2), 2 ★ (f3, f7), 3 ★ (f5), 5 ★ (f9); f4 has no rating.
    assert tables["distribution"] == [
        ["★", "1", "20.0%"],
        ["★★", "2", "40.0%"],
        ["★★★", "1", "20.0%"],
        ["★★★★", "0", "0.0%"],
        ["★★★★★", "1", "20.0%"],
    ]
    models = quality.rating_by_model(SEVEN_DAYS, Scope())
    assert tables["models"] == [
        [
            shown(r["model_name"]),
            shown(r["model_provider"]),
            str(r["ratings"]),
            figure(r["average"], "rating"),
            figure(r["low_share"], "share"),
        ]
        for r in models
    ]
    # Lowest first: gpt-4o's one rating this week is 1 ★.
    assert tables["models"][0][:4] == ["gpt-4o", "openai", "1", "1.00 ★"]
    # Each model opens its ratings in the feedback queue.
    queue = links_of(page, "models")[0]
    assert urlsplit(queue).path == reverse("review:feedback_queue")
    assert parse_qs(urlsplit(queue).query) == {
        "start": ["2024-03-08"],
        "end": ["2024-03-14"],
        "model": ["gpt-4o"],
        "provider": ["openai"],
    }
    assert as_manager.get(queue).status_code == 200
    # The 1 ★ answer's code failed in two agents; the DS-ML agent's own type.
    assert [row[:4] for row in tables["agents"]] == [
        ["data_viz_agent", "code failed", "1", "1.00 ★"],
        ["planner_preprocessing_agent", "code failed", "1", "1.00 ★"],
        ["ml_analysis", "message agent", "2", "3.50 ★"],
    ]
    temperature = chart_of(page, "chart-temperature")["data"][0]
    assert temperature["y"] == ["0", "0 – 0.3", "0.3 – 0.7", "above 0.7", "not recorded"]


# -- the activity page ---------------------------------------------------------------


def test_activity_page_shows_the_activity_figures(as_manager, world):  # noqa: F811
    page = get_page(as_manager, ACTIVITY, period="7d")

    assert figures_of(page) == expected_figures(quality.activity_headline(SEVEN_DAYS, Scope()))
    # Activity has no model or provider.
    assert 'name="model"' not in page and 'name="provider"' not in page
    tables = tables_of(page)
    assert list(tables) == TABLES[ACTIVITY]
    # Nobody wrote on 8–10 March; ann, bob, cat and dan did on 11–14 March.
    assert tables["weeks"] == [
        ["4 Mar 2024", "0", "3 of 7"],
        ["11 Mar 2024", "4", "4 of 7"],
    ]
    columns, cohorts = quality.cohorts(SEVEN_DAYS, Scope())
    assert columns == 1
    assert tables["cohorts"] == [["11 Mar 2024", "3", "66.7%"]]
    assert cohorts == [{"cohort": dt.date(2024, 3, 11), "users": 3, "w0": pytest.approx(2 / 3)}]
    assert [row[0] for row in tables["sources"]] == [
        r["label"] for r in quality.usage_by_source(SEVEN_DAYS, Scope())
    ]
    users = chart_of(page, "chart-users")["data"]
    assert [trace["name"] for trace in users] == ["Active app users", "New app users"]
    assert users[0]["y"] == [n for _, n in quality.active_users_per_day(SEVEN_DAYS, Scope())]


# -- the text-to-SQL page ---------------------------------------------------------------


def test_text_to_sql_page_shows_the_query_figures(as_manager, world):  # noqa: F811
    page = get_page(as_manager, SQL, period="30d")

    figures = figures_of(page)
    assert figures == expected_figures(quality.query_headline(THIRTY_DAYS, Scope()))
    # p95 of 0.01 … 2.0 and 30.0 s: 2.0 + 0.6 × 28.0
    assert figures["p95_time"][0] == "18.8 s"
    tables = tables_of(page)
    assert list(tables) == TABLES[SQL]
    assert tables["errors"][0][:2] == ['relation "sales" does not exist', "2"]
    assert tables["errors"][-1][:2] == ["–", "1"]  # failed without an error text
    slowest = quality.slowest_queries(THIRTY_DAYS, Scope())
    assert links_of(page, "slowest") == [
        transcript_url(SimpleNamespace(chat_id=q.chat_id, pk=q.message_id))
        if q.message_id
        else None
        for q in slowest
    ]
    assert links_of(page, "slowest").count(None) == len(slowest) - 1  # only q1 has a chat
    stacked = chart_of(page, "chart-per-day")
    assert [t["name"] for t in stacked["data"]] == ["Succeeded", "Failed", "Outcome unknown"]


# -- filters in the URL -----------------------------------------------------------------


def test_filters_narrow_every_page(as_manager, world):  # noqa: F811
    cases = [
        (
            {"period": "custom", "start": "2024-03-13", "end": "2024-03-14"},
            Period(dt.date(2024, 3, 13), TODAY),
            Scope(),
        ),
        (
            {"period": "30d", "organization": world.acme.pk},
            THIRTY_DAYS,
            Scope(organization_id=world.acme.pk),
        ),
        ({"period": "30d", "user": world.ann.pk}, THIRTY_DAYS, Scope(user_id=world.ann.pk)),
        ({"period": "7d", "source": world.tts.pk}, SEVEN_DAYS, Scope(source_id=world.tts.pk)),
        ({"period": "30d", "model": "gpt-4o"}, THIRTY_DAYS, Scope(model_name="gpt-4o")),
    ]
    headlines = {
        CODE: quality.execution_headline,
        FEEDBACK: quality.feedback_headline,
        SQL: quality.query_headline,
        ACTIVITY: quality.activity_headline,
    }
    for query, period, scope in cases:
        for url, headline in headlines.items():
            # no model filter on the activity page
            scope_shown = Scope() if url == ACTIVITY and scope.model_name else scope
            page = get_page(as_manager, url, **query)
            assert figures_of(page) == expected_figures(headline(period, scope_shown)), (url, query)
            # The navigation keeps the filters.
            assert f'href="{FEEDBACK}?{html.escape(_encoded(query))}"' in page, (url, query)


def _encoded(query):
    from django.http import QueryDict

    params = QueryDict(mutable=True)
    for key, value in query.items():
        params[key] = value
    return params.urlencode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            {"period": "custom", "start": "2024-03-10", "end": "2024-03-01"},
            "The end date is before the start date.",
        ),
        ({"period": "yesterday"}, "Select a valid choice."),
        ({"outcome": "sometimes"}, "Select a valid choice."),
    ],
)
def test_bad_filter_shows_an_error_not_a_500(as_manager, world, query, message):  # noqa: F811
    for url in PAGES:
        if "outcome" in query and url != EXECUTIONS:
            continue
        page = get_page(as_manager, url, **query)
        assert '<ul class="errorlist">' in page, url
        assert message in html.unescape(page), url
        assert "14 Feb 2024 – 14 Mar 2024 (30 days)" in page, url


@pytest.mark.parametrize(("start", "end"), OUT_OF_RANGE)
def test_custom_periods_out_of_range_are_a_form_error(as_manager, world, start, end):  # noqa: F811
    query = {"period": "custom", "start": start, "end": end}
    for url in PAGES:
        page = get_page(as_manager, url, **query)
        assert OUT_OF_RANGE_MESSAGE in html.unescape(page), url
        assert "14 Feb 2024 – 14 Mar 2024 (30 days)" in page, url
    for url, names in TABLES.items():
        assert as_manager.get(url, {**query, "export": names[0]}).status_code == 200, url


def test_days_are_cut_in_the_zone_shown(as_manager, world, settings):  # noqa: F811
    settings.TIME_ZONE = "America/New_York"
    # Roll-up days are cut when rows are written: a new TIME_ZONE is followed
    # by rebuild_quality_rollups (docs/DEPLOY.md).
    call_command("rebuild_quality_rollups", stdout=io.StringIO())

    page = get_page(as_manager, CODE, period="today")

    assert "Days run from midnight to midnight in <strong>America/New_York</strong>" in page
    # 14 Mar in New York: e8 (04:00 UTC) and e10 (15 Mar 02:00 UTC).
    assert figures_of(page)["executions"][0] == "2"
    assert figures_of(page)["success_rate"][0] == "50.0%"


# -- CSV exports ------------------------------------------------------------------------


def _csv(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def _cells(*values):
    return ["" if v is None else str(v) for v in values]


def _expected_exports(world, period, scope):  # noqa: F811
    """{(page, table): (header, rows as CSV cells)} from analytics.metrics."""
    q = quality
    distribution = q.rating_distribution(period, scope)
    rated = sum(n for _, n in distribution)
    weeks = q.active_users_per_week(period, scope)
    months = q.active_users_per_month(period, scope)
    columns, cohorts = q.cohorts(period, scope)
    usage_header = ["Chats", "Messages", "Active app users", "LLM requests", "Tokens"]

    def usage(rows):
        return [
            _cells(
                r["label"], r["chats"], r["messages"], r["active_users"], r["requests"], r["tokens"]
            )
            for r in rows
        ]

    def ratings(rows, *keys):
        return [
            _cells(*(r[k] for k in keys), r["ratings"], r["average"], r["low_share"]) for r in rows
        ]

    rating_header = ["Ratings", "Average", "Rated 1–2 ★"]
    return {
        (CODE, "error_types"): (
            ["Error type", "Failed executions", "Agents", "Example"],
            [
                _cells(r["error_type"], r["executions"], r["agents"], r["example"])
                for r in q.failures_by_error_type(period, scope)
            ],
        ),
        (CODE, "agents"): (
            ["Agent", "Failed", "Share", "Chats"],
            [
                _cells(r["agent"], r["executions"], r["share"], r["chats"])
                for r in q.failures_by_agent(period, scope)
            ],
        ),
        (CODE, "per_chat"): (
            ["Executions in the chat", "Chats"],
            [
                _cells("5 or more" if n == 5 else n, c)
                for n, c in q.executions_per_chat(period, scope)
            ],
        ),
        (CODE, "models"): (
            ["Model", "Provider", "Executions", "Success rate", "Failed", "Code changed"],
            [
                _cells(
                    r["model_name"],
                    r["model_provider"],
                    r["executions"],
                    r["success_rate"],
                    r["failures"],
                    r["retried_share"],
                )
                for r in q.success_by_model(period, scope)
            ],
        ),
        (CODE, "busiest_chats"): (
            ["Chat", "Executions", "Failed"],
            [
                _cells(r["chat__title"], r["executions"], r["failures"])
                for r in q.busiest_chats(period, scope)
            ],
        ),
        (CODE, "slowest"): (
            ["Created", "Chat", "Model", "To last update", "Outcome"],
            [
                _cells(
                    e.created_at,
                    e.chat.title if e.chat else None,
                    e.model_name,
                    e.run_time,
                    "succeeded" if e.is_successful else "failed",
                )
                for e in q.slowest_executions(period, scope)
            ],
        ),
        (CODE, "most_retried"): (
            ["Chat", "Executions", "With changed code", "Failed", "Last run"],
            [
                _cells(r["message__chat__title"], r["runs"], r["changed"], r["failures"], r["last"])
                for r in q.most_retried(period, scope)
            ],
        ),
        (FEEDBACK, "distribution"): (
            ["Rating", "Ratings", "Share"],
            [_cells("★" * n, c, q.ratio(c, rated)) for n, c in distribution],
        ),
        (FEEDBACK, "models"): (
            ["Model", "Provider", *rating_header],
            ratings(q.rating_by_model(period, scope), "model_name", "model_provider"),
        ),
        (FEEDBACK, "agents"): (
            ["Agent", "Agent known from", *rating_header],
            ratings(q.rating_by_agent(period, scope), "agent", "known_from"),
        ),
        (FEEDBACK, "temperature"): (
            ["Temperature", *rating_header],
            ratings(q.rating_by_temperature(period, scope), "band"),
        ),
        (FEEDBACK, "max_tokens"): (
            ["Max tokens", *rating_header],
            ratings(q.rating_by_max_tokens(period, scope), "band"),
        ),
        (FEEDBACK, "mistakes"): (
            ["Model", "Answers", "Flagged", "Share"],
            [
                _cells(r["model_name"], r["answers"], r["mistakes"], r["share"])
                for r in q.mistakes_by_model(period, scope)
            ],
        ),
        (ACTIVITY, "weeks"): (
            ["Week of", "Active app users", "Days in the period"],
            [_cells(w, n, f"{d} of 7") for w, n, d in weeks],
        ),
        (ACTIVITY, "months"): (
            ["Month", "Active app users", "Days in the period"],
            [_cells(m, n, f"{d} of {length}") for m, n, d, length in months],
        ),
        (ACTIVITY, "cohorts"): (
            ["Signed up in the week of", "App users", *(f"Week {k}" for k in range(columns))],
            [
                _cells(r["cohort"], r["users"], *(r.get(f"w{k}") for k in range(columns)))
                for r in cohorts
            ],
        ),
        (ACTIVITY, "sources"): (["Source", *usage_header], usage(q.usage_by_source(period, scope))),
        (ACTIVITY, "organizations"): (
            ["Organisation", *usage_header],
            usage(q.usage_by_organization(period, scope)),
        ),
        (SQL, "errors"): (
            ["Error", "Queries", "Last seen"],
            [
                _cells(r["error_message"], r["queries"], r["last"])
                for r in q.frequent_errors(period, scope)
            ],
        ),
        (SQL, "rows"): (
            ["Result size", "Queries", "Share"],
            [_cells(r["band"], r["queries"], r["share"]) for r in q.rows_returned(period, scope)],
        ),
        (SQL, "slowest"): (
            ["Question", "Execution time", "Rows", "Outcome", "App user", "Asked"],
            [
                _cells(
                    x.question,
                    x.execution_time,
                    x.row_count,
                    {True: "succeeded", False: "failed"}.get(x.success, "unknown"),
                    str(x.user) if x.user else "anonymous",
                    x.timestamp,
                )
                for x in q.slowest_queries(period, scope)
            ],
        ),
        (EXECUTIONS, "executions"): (
            [
                "Created",
                "Chat",
                "App user",
                "Model",
                "Outcome",
                "Errors (agent: type)",
                "To last update",
            ],
            None,  # checked in test_executions_export
        ),
    }


def test_every_table_exports_its_figures(as_manager, world):  # noqa: F811
    query = {"period": "30d", "organization": world.acme.pk}
    expected = _expected_exports(world, THIRTY_DAYS, Scope(organization_id=world.acme.pk))
    assert {page for page, _ in expected} == set(PAGES)
    for page in PAGES:
        assert [name for p, name in expected if p == page] == TABLES[page]
    for (url, name), (header, rows) in expected.items():
        response = as_manager.get(url, {**query, "export": name})
        period = f"{THIRTY_DAYS.start}-to-{THIRTY_DAYS.end}"
        assert response["Content-Disposition"].endswith(f'-{name}-{period}.csv"'), (url, name)
        got = _csv(response)
        kinds = _column_kinds(url, name, query)
        assert got[0] == [csv_label(h, k) for h, k in zip(header, kinds, strict=True)], (url, name)
        if rows is not None:
            assert got[1:] == [_rounded(row, kinds) for row in rows], (url, name)


PAGE_OF = {
    CODE: views.CODE,
    EXECUTIONS: views.EXECUTIONS,
    FEEDBACK: views.FEEDBACK,
    ACTIVITY: views.ACTIVITY,
    SQL: views.TEXT_TO_SQL,
}


def _column_kinds(url, name, query):
    """The kinds of a table's columns, as the page declares them."""
    request = RequestFactory().get(url, query)
    request.user = User.objects.get(username="manager")
    if url == EXECUTIONS:
        filters = ExecutionFilter(request.GET)
        view = PageRequest.parse(request, filters, group=filters.group())
    else:
        view = PageRequest.parse(request, QualityFilter(request.GET))
    return [column.kind for column in PAGE_OF[url].tables[name](view).columns]


def _rounded(cells, kinds):
    """CSV cells (``_cells``: the metrics' values as text) rounded and
    dated as core.pages.formats writes them."""
    out = []
    for cell, kind in zip(cells, kinds, strict=True):
        if cell and kind == "duration" and ":" in cell:  # str(timedelta)
            hours, minutes, seconds = cell.split(":")
            seconds = (int(hours) * 60 + int(minutes)) * 60 + Decimal(seconds)
            cell = str(csv_value(seconds, kind))
        elif cell and kind in CSV_PLACES:
            cell = str(csv_value(Decimal(cell), kind))
        elif cell and kind in ("date", "datetime"):
            parse = dt.date if len(cell) == 10 else dt.datetime
            cell = str(csv_value(parse.fromisoformat(cell), kind))
        out.append(cell)
    return out


def test_executions_export_lists_the_whole_group(as_manager, world):  # noqa: F811
    got = _csv(
        as_manager.get(
            EXECUTIONS, {"period": "30d", "error_type": "KeyError", "export": "executions"}
        )
    )

    expected = quality.execution_list(THIRTY_DAYS, Scope(), error_type="KeyError")
    assert [row[0] for row in got[1:]] == [e.created_at.isoformat() for e in expected]
    assert [row[5] for row in got[1:]] == [
        "data_viz_agent: Timeout after 30 seconds; planner_preprocessing_agent: KeyError",
        "planner_preprocessing_agent: KeyError",
    ][::-1]
    # "To last update": e3 took 10 s; e2 was never updated.
    assert [row[6] for row in got[1:]] == ["10.00", ""]  # seconds


# -- query counts --------------------------------------------------------------------------


@pytest.fixture(params=["world", "world and many more rows"])
def data(request, world):  # noqa: F811
    """The world, and the same plus many more chats, answers, executions,
    feedback, sessions and queries."""
    if request.param == "world":
        return world
    from usage.models import QueryAnalytics
    from usage.tests.conftest import utc

    users = [f.AppUserFactory(organization=world.acme if n % 2 else None) for n in range(20)]
    for n, user in enumerate(users):
        chat = f.ChatFactory(
            user=user, organization=user.organization, created_at=utc(2024, 3, 1 + n % 13, n % 24)
        )
        f.MessageFactory(chat=chat, role="user", created_at=utc(2024, 3, 1 + n % 13, n % 24))
        answer = f.MessageFactory(
            chat=chat,
            role="assistant",
            model_name="gpt-4o",
            agent_type="ml_analysis" if n % 3 else None,
            created_at=utc(2024, 3, 1 + n % 13, n % 24, 1),
        )
        f.MessageFeedbackFactory(
            message=answer,
            rating=1 + n % 5,
            temperature=n / 20,
            created_at=utc(2024, 3, 1 + n % 13, n % 24, 2),
        )
        for k in range(3):
            f.CodeExecutionFactory(
                message=answer,
                is_successful=bool(k % 2),
                model_name=f"model-{n % 4}",
                failed_agents=[AGENT if n % 2 else f"agent_{n % 5}"],
                error_messages={f"agent_{n % 5}": f"Error{n % 7}: failed {k}"},
                created_at=utc(2024, 3, 1 + n % 13, n % 24, 3 + k),
                updated_at=utc(2024, 3, 1 + n % 13, n % 24, 4 + k),
            )
        f.UserSessionFactory(
            user=user,
            session_start=utc(2024, 3, 1 + n % 13, n % 24),
            session_end=utc(2024, 3, 1 + n % 13, n % 24, 30),
        )
        QueryAnalytics.objects.create(
            user=user,
            question=f"q {n}",
            success=bool(n % 4),
            error_message=None if n % 4 else f"error {n % 3}",
            execution_time=n / 7,
            row_count=n,
            timestamp=utc(2024, 3, 1 + n % 13, n % 24),
        )
    return world


# Every page starts with the four queries of an admin request: the session,
# the staff account, its own permissions, its groups' permissions. The filter
# bar (usage.filters.UsageFilter) reads the roll-up's distinct models and
# providers (2) and renders the organisation and source selects (2).
ADMIN_REQUEST = 4
FILTER_BAR = 4
AGENT = "planner_preprocessing_agent"  # fails in the world and in the many more rows


def test_query_counts_do_not_grow_with_rows(
    client, manager, data, fixed_today, django_assert_num_queries
):
    client.force_login(manager)
    # Code: headline totals now and before (2); success per day (1); error
    # types (1); executions per chat (1); success by model (1); failures by
    # agent and the failures they share (2); busiest chats (1); slowest (1);
    # most retried (1).
    with django_assert_num_queries(ADMIN_REQUEST + FILTER_BAR + 11):
        assert client.get(CODE, {"period": "30d"}).status_code == 200
    # Executions: the paginator's count (1), the page (1), the page's error
    # messages parsed (1).
    with django_assert_num_queries(ADMIN_REQUEST + FILTER_BAR + 3):
        assert client.get(EXECUTIONS, {"period": "30d", "agent": AGENT}).status_code == 200
    # Feedback, every figure from the feedback roll-up (chats.feedback_rollups):
    # headline now and before, each ratings, answers rated and mistakes (6);
    # distribution, per day, temperature, mistakes per day (4); by model (1);
    # by agent: the message agents and the failed agents (2); max tokens (1);
    # mistakes by model (1).
    with django_assert_num_queries(ADMIN_REQUEST + FILTER_BAR + 15):
        assert client.get(FEEDBACK, {"period": "30d"}).status_code == 200
    # Activity: headline now and before, each active users, new users, chats,
    # messages and sessions (10); active users per day (1); new users per day
    # (1); chats and messages per day (2); sessions per day (1); per week (1);
    # cohort sizes and cells (2); per month (1); by source and by organisation,
    # each chats, messages, the roll-up and the labels (8). Its filter bar has
    # no model or provider, so only the two selects (2).
    with django_assert_num_queries(ADMIN_REQUEST + 2 + 27):
        assert client.get(ACTIVITY, {"period": "30d"}).status_code == 200
    # Text-to-SQL: headline now and before, each the aggregate and the p95
    # (4); per day (1); result sizes (1); frequent errors (1); slowest (1).
    with django_assert_num_queries(ADMIN_REQUEST + FILTER_BAR + 8):
        assert client.get(SQL, {"period": "30d"}).status_code == 200
    # An export computes only its table: the filter bar's choices (2), which
    # validate the request, and the error types (1); no figure, chart or
    # other table.
    with django_assert_num_queries(ADMIN_REQUEST + 2 + 1):
        response = client.get(CODE, {"period": "30d", "export": "error_types"})
        b"".join(response.streaming_content)


# Each table of the code page exported alone: the filter bar's choices (2),
# then that table's own queries and nothing else.
CODE_EXPORT_QUERIES = {
    "error_types": 1,
    "agents": 2,  # the failures by agent, the failed executions counted
    "per_chat": 1,
    "models": 1,
    "busiest_chats": 1,
    "slowest": 1,
    "most_retried": 1,
}


def test_an_export_computes_only_its_table(
    client, manager, data, fixed_today, django_assert_num_queries
):
    client.force_login(manager)
    for name, queries in CODE_EXPORT_QUERIES.items():
        with django_assert_num_queries(ADMIN_REQUEST + 2 + queries):
            response = client.get(CODE, {"period": "30d", "export": name})
            assert response.status_code == 200, name
            b"".join(response.streaming_content)


# -- access -------------------------------------------------------------------------------


def _exports():
    return [f"{url}?export={name}" for url, names in TABLES.items() for name in names]


def test_staff_read_every_page_but_export_nothing(client, staff, world, fixed_today):  # noqa: F811
    client.force_login(staff)
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
        assert b'class="export"' not in response.content, url
    for url in _exports():
        assert client.get(url).status_code == 403, url


def test_managers_and_admins_read_and_export(client, manager, world, fixed_today):  # noqa: F811
    for account in (manager, f.UserFactory(groups=["Admins"])):
        client.force_login(account)
        for url in PAGES:
            response = client.get(url)
            assert response.status_code == 200, url
            assert b'class="export"' in response.content, url
        for url in _exports():
            assert client.get(url).status_code == 200, url


def test_a_staff_account_in_no_group_gets_403(client, world):  # noqa: F811
    client.force_login(f.UserFactory(username="nobody"))
    for url in PAGES + _exports():
        assert client.get(url).status_code == 403, url
    # The executions list needs chats.view_codeexecution, the others chats.view_message.
    account = f.UserFactory(username="messages-only")
    account.user_permissions.add(Permission.objects.get(codename="view_message"))
    client.force_login(account)
    assert client.get(CODE).status_code == 200
    assert client.get(EXECUTIONS).status_code == 403


def test_anonymous_is_sent_to_the_login_page(client, world):  # noqa: F811
    for url in PAGES + _exports():
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next=/admin/quality/"), url


def test_admin_index_links_the_pages_by_permission(client, staff, world):  # noqa: F811
    client.force_login(staff)
    index = client.get(reverse("admin:index")).content.decode()
    for url in (CODE, FEEDBACK, ACTIVITY, SQL, reverse("reports:list")):
        assert f'href="{url}"' in index, url
    client.force_login(f.UserFactory(username="nobody"))
    index = client.get(reverse("admin:index")).content.decode()
    assert f'href="{CODE}"' not in index
