"""The deep-analysis report pages: the list's figures equal plain SQL on the
raw reports (in UTC and America/New_York), its filters and CSV export, the
report reader (goal, questions, plan, steps, figures from our plotly.js,
synthesis, conclusion, the stored HTML sanitised against a hostile report),
the analysis results of the same app user's chats beside it, query counts
and access.
"""

import csv
import datetime as dt
import html
import io
import json
import re
from decimal import Decimal
from html.parser import HTMLParser
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse

from core.pages.formats import csv_value
from core.tests import factories as f
from reports import metrics
from reports.models import DeepAnalysisReport
from usage.metrics import Period, Scope
from usage.templatetags.figures import change, figure
from usage.tests.conftest import TODAY, fixed_today, manager, staff, utc  # noqa: F401
from usage.tests.test_dashboards import (
    OUT_OF_RANGE,
    OUT_OF_RANGE_MESSAGE,
    figures_of,
    tables_of,
)

pytestmark = pytest.mark.django_db

LIST = reverse("reports:list")
THIRTY_DAYS = Period(dt.date(2024, 2, 14), TODAY)
EIGHT_PLACES = Decimal("0.00000001")

HOSTILE = """
<h1 onclick="alert(1)">Churn report</h1>
<script>alert('script')</script>
<img src="javascript:alert(2)" onerror="alert(3)" alt="chart">
<a href="javascript:alert(4)">bad link</a>
<a href="JaVaScRiPt:alert(5)">bad link 2</a>
<a href="https://example.com/churn">good link</a>
<iframe src="https://evil.example/"></iframe>
<svg onload="alert(6)"><circle r="4"/></svg>
<p style="background:url(javascript:alert(7))">styled paragraph</p>
<form action="https://evil.example/"><input name="secret"></form>
<object data="movie.swf"></object>
<math><mi xlink:href="javascript:alert(8)">x</mi></math>
<noscript><p title="</noscript><img src=x onerror=alert(9)>"></p></noscript>
<table><thead><tr><th>segment</th></tr></thead><tbody><tr><td>monthly</td></tr></tbody></table>
"""

FIGURE = {
    "data": [{"type": "bar", "x": ["a", "b"], "y": [1, 2]}],
    "layout": {
        "title": {"text": "</script><script>alert('figure')</script>"},
        "width": 1200,
        "height": 420,
    },
}


@pytest.fixture(params=["UTC", "America/New_York"])
def time_zone(request, settings):
    settings.TIME_ZONE = request.param
    return request.param


@pytest.fixture
def library(settings):
    """Reports of three app users (two organisations, one without), one
    anonymous, in every status, with NULL durations and end times, at
    23:59:59 / 00:00:00 UTC and New York's midnight; and the DS-ML agent's
    analysis results in chats of one of them."""
    acme = f.OrganizationFactory(name="Acme", slug="acme")
    globex = f.OrganizationFactory(name="Globex", slug="globex")
    ann = f.AppUserFactory(email="ann@acme.test", organization=acme)
    cat = f.AppUserFactory(email="cat@globex.test", organization=globex)
    dan = f.AppUserFactory(email="dan@solo.test", organization=None)
    numbers = iter(range(1, 100))

    def report(who, status, created, **extra):
        n = next(numbers)
        return f.DeepAnalysisReportFactory(
            user=who,
            status=status,
            created_at=created,
            start_time=created,
            goal=f"Goal {n}: why did churn rise?",
            report_uuid=f"uuid-{n}",
            **extra,
        )

    done = DeepAnalysisReport.Status.COMPLETED
    failed = DeepAnalysisReport.Status.FAILED
    running = DeepAnalysisReport.Status.RUNNING
    pending = DeepAnalysisReport.Status.PENDING
    reader = report(
        ann,
        done,
        utc(2024, 3, 13, 23, 59, 59),
        duration_seconds=300,
        end_time=utc(2024, 3, 14, 0, 4, 59),
        credits_consumed=17,
        total_tokens_used=150_000,
        estimated_cost=Decimal("0.86000000"),
        html_report=HOSTILE,
        deep_questions="1. Which segments churned?\n2. When did it start?",
        deep_plan="Step 1: clean the data\nStep 2: model churn",
        summaries=[
            "preprocessing_agent: Removed 27 duplicate rows.",
            "statistical_analytics_agent: Monthly plans churn 2x more.",
            "a plain note without a step name",
        ],
        plotly_figures=[FIGURE, json.dumps(FIGURE), {"no": "data"}, "not json"],
        synthesis=["Monthly plans churn most.", "Support tickets predict churn."],
        final_conclusion="Churn rose among **monthly** plans.",
        analysis_code="# preprocessing_agent\ndf = df.drop_duplicates()",
        progress_percentage=100,
    )
    report(
        ann,
        failed,
        utc(2024, 3, 14, 0, 0, 0),
        duration_seconds=None,
        end_time=utc(2024, 3, 14, 0, 2),
        credits_consumed=5,
        total_tokens_used=20_000,
        estimated_cost=Decimal("0.1"),
        progress_percentage=40,
    )
    report(
        cat,
        done,
        utc(2024, 3, 14, 4),
        duration_seconds=600,
        credits_consumed=20,
        total_tokens_used=200_000,
        estimated_cost=Decimal("1.25"),
    )
    report(
        cat,
        running,
        utc(2024, 3, 15, 2),
        duration_seconds=None,
        end_time=None,
        credits_consumed=0,
        total_tokens_used=5_000,
        estimated_cost=Decimal("0.01"),
        progress_percentage=60,
    )
    report(
        dan,
        pending,
        utc(2024, 3, 10, 4, 59, 59),
        credits_consumed=0,
        total_tokens_used=0,
        estimated_cost=Decimal(0),
        progress_percentage=0,
        summaries=None,
        plotly_figures=None,
        synthesis={"finding": "a map"},
        html_report=None,
    )
    report(
        None,
        done,
        utc(2024, 2, 20, 12),
        duration_seconds=120,
        credits_consumed=10,
        total_tokens_used=50_000,
        estimated_cost=Decimal("0.5"),
    )
    report(
        dan,
        done,
        utc(2024, 1, 5, 12),
        duration_seconds=100,
        credits_consumed=1,
        total_tokens_used=1_000,
        estimated_cost=Decimal("0.01"),
    )

    ds_chat = f.ChatFactory(user=ann, organization=acme, title="ann's DS-ML session")
    other_chat = f.ChatFactory(user=cat, organization=globex, title="cat's DS-ML session")
    results = [
        f.AnalysisResultFactory(
            chat=ds_chat,
            analysis_type="statistical",
            result_data={"correlation": 0.42},
            created_at=utc(2024, 3, 12, 10),
        ),
        f.AnalysisResultFactory(
            chat=ds_chat,
            analysis_type="ml",
            file=None,
            result_data={"clusters": 3},
            created_at=utc(2024, 3, 13, 10),
        ),
        f.AnalysisResultFactory(
            chat=other_chat,
            analysis_type="csv",
            result_data={"rows": 10},
            created_at=utc(2024, 3, 13, 11),
        ),
    ]
    return SimpleNamespace(
        acme=acme,
        globex=globex,
        ann=ann,
        cat=cat,
        dan=dan,
        reader=reader,
        ds_chat=ds_chat,
        other_chat=other_chat,
        results=results,
    )


@pytest.fixture
def as_manager(client, manager, library, fixed_today):  # noqa: F811
    client.force_login(manager)
    return client


def get_page(client, url, **params):
    response = client.get(url, params)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


# -- the list's figures against plain SQL -----------------------------------------------


def _aware(value):
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def money(value):
    return Decimal(str(value)).quantize(EIGHT_PLACES)


class Raw:
    def __init__(self, zone):
        self.zone = ZoneInfo(zone)

    def reports(self, period, scope, status=None):
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT r.id, r.created_at, r.status, r.duration_seconds, r.credits_consumed,
                       r.total_tokens_used, r.estimated_cost, r.user_id, u.organization_id
                FROM reports_deepanalysisreport r LEFT JOIN core_appuser u ON u.id = r.user_id
                """
            )
            rows = cursor.fetchall()
        found = []
        for pk, created, state, duration, credits, tokens, cost, user, org in rows:
            day = _aware(created).astimezone(self.zone).date()
            if not period.start <= day <= period.end:
                continue
            if scope.user_id is not None and user != scope.user_id:
                continue
            if scope.organization_id is not None and org != scope.organization_id:
                continue
            if status and state != status:
                continue
            found.append(
                {
                    "id": pk,
                    "created_at": _aware(created),
                    "status": state,
                    "duration": duration,
                    "credits": credits,
                    "tokens": tokens,
                    "cost": money(cost),
                }
            )
        return found

    def totals(self, period, scope, status=None):
        rows = self.reports(period, scope, status)
        completed = [r for r in rows if r["status"] == "completed"]
        durations = [r["duration"] for r in completed if r["duration"] is not None]
        return {
            "reports": len(rows),
            "completed": len(completed),
            "failed": sum(r["status"] == "failed" for r in rows),
            "average_duration": sum(durations) / len(durations) if durations else None,
            "credits": sum(r["credits"] for r in rows),
            "tokens": sum(r["tokens"] for r in rows),
            "cost": sum((r["cost"] for r in rows), Decimal(0)),
            "completed_share": len(completed) / len(rows) if rows else None,
        }


def periods():
    return [
        *(Period.preset(name, today=TODAY) for name in ("today", "7d", "30d", "90d")),
        Period(dt.date(2024, 3, 8), dt.date(2024, 3, 8)),  # no report that day
        Period(dt.date(2024, 3, 13), dt.date(2024, 3, 15)),
    ]


def scopes(data):
    return [
        Scope(),
        Scope(user_id=data.ann.pk),
        Scope(organization_id=data.globex.pk),
        Scope(user_id=data.dan.pk),
    ]


def test_list_figures_and_rows_equal_plain_sql(library, time_zone):
    raw = Raw(time_zone)
    for period in periods():
        for scope in scopes(library):
            for status in (None, "completed", "failed"):
                where = (period, scope, status)
                got = metrics.report_totals(period, scope, status)
                expected = raw.totals(period, scope, status)
                assert money(got.pop("cost")) == expected.pop("cost"), where
                assert got == pytest.approx(expected), where
                expected_ids = [
                    r["id"]
                    for r in sorted(
                        raw.reports(period, scope, status),
                        key=lambda r: (r["created_at"], r["id"]),
                        reverse=True,
                    )
                ]
                assert [r.pk for r in metrics.report_list(period, scope, status)] == expected_ids


def test_list_figures_concrete(library, time_zone):
    today = metrics.report_totals(Period.preset("today", TODAY), Scope())

    if time_zone == "UTC":
        # 14 Mar: ann's failed one at 00:00:00 and cat's completed one at 04:00.
        assert (today["reports"], today["completed"], today["failed"]) == (2, 1, 1)
    else:
        # 14 Mar in New York: cat's at 04:00 UTC (midnight) and cat's running
        # one at 02:00 UTC on 15 Mar; ann's two are on 13 Mar.
        assert (today["reports"], today["completed"], today["failed"]) == (2, 1, 0)
    assert today["average_duration"] == 600


def test_duration_falls_back_to_end_minus_start(library):
    failed = DeepAnalysisReport.objects.get(status="failed")
    running = DeepAnalysisReport.objects.get(status="running")

    assert metrics.duration(library.reader) == 300
    assert metrics.duration(failed) == 120  # no duration stored: 00:00:00 → 00:02:00
    assert metrics.duration(running) is None


# -- the list page -------------------------------------------------------------------


def expected_figures(period, scope, status=None):
    return {
        f.key: (
            figure(f.value, f.kind),
            f"{change(f.change)} vs {figure(f.previous, f.kind)}"
            if f.change is not None
            else "no earlier figure",
        )
        for f in metrics.report_headline(period, scope, status)
    }


def test_list_page_shows_figures_and_links_each_report(as_manager, library):
    page = get_page(as_manager, LIST, period="30d")

    assert figures_of(page) == expected_figures(THIRTY_DAYS, Scope())
    assert figures_of(page)["reports"][0] == "5"
    rows = tables_of(page)["reports"]
    found = list(metrics.report_list(THIRTY_DAYS, Scope()))
    assert [row[1] for row in rows] == [str(r) for r in found]
    reader = next(row for row in rows if row[1] == str(library.reader))
    assert reader == [
        "13 Mar 2024 23:59",
        str(library.reader),
        "ann@acme.test",
        "Completed",
        "100.0%",
        "5 min 00 s",
        "17",
        "150,000",
        "$0.86",
    ]
    assert [row[2:4] for row in rows if row[2] == "anonymous"] == [["anonymous", "Completed"]]
    links = re.findall(r'<td class="datetime"><a href="(/admin/reports/\d+/)">', page)
    assert links == [reverse("reports:detail", args=[r.pk]) for r in found]


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"period": "30d", "status": "completed"}, ("completed",) * 3),
        ({"period": "30d", "status": "running"}, ()),
        # 15 Mar 02:00 UTC (running) is tomorrow in UTC
        (
            {"period": "90d"},
            ("completed", "failed", "completed", "pending", "completed", "completed"),
        ),
    ],
)
def test_list_page_filters_by_status_and_date(as_manager, library, query, expected):
    page = get_page(as_manager, LIST, **query)

    statuses = [row[3].lower() for row in tables_of(page)["reports"]]
    period = THIRTY_DAYS if query["period"] == "30d" else Period.preset("90d", TODAY)
    found = metrics.report_list(period, Scope(), query.get("status"))
    assert statuses == [r.status for r in found] == list(expected)
    assert figures_of(page) == expected_figures(period, Scope(), query.get("status"))


def test_list_page_filters_by_app_user_and_organisation(as_manager, library):
    by_user = tables_of(get_page(as_manager, LIST, period="30d", user=library.ann.pk))["reports"]
    by_org = tables_of(get_page(as_manager, LIST, period="30d", organization=library.globex.pk))[
        "reports"
    ]

    assert {row[2] for row in by_user} == {"ann@acme.test"} and len(by_user) == 2
    # The organisation is the app user's.
    assert {row[2] for row in by_org} == {"cat@globex.test"} and len(by_org) == 1


def test_list_export_equals_the_rows(as_manager, library):
    response = as_manager.get(LIST, {"period": "90d", "export": "reports"})

    assert response.status_code == 200
    period = Period.preset("90d", TODAY)
    assert response["Content-Disposition"] == (
        f'attachment; filename="reports-reports-{period.start}-to-{period.end}.csv"'
    )
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "Created",
        "Goal",
        "App user",
        "Status",
        "Progress (%)",
        "Duration (s)",
        "Credits",
        "Tokens",
        "Cost (est.) (USD)",
    ]
    found = metrics.report_rows(metrics.report_list(Period.preset("90d", TODAY), Scope()))
    keys = [
        "created_at",
        "goal",
        "user",
        "status",
        "progress",
        "duration",
        "credits",
        "tokens",
        "cost",
    ]
    kinds = ["datetime", "text", "text", "text", "share", "duration", "number", "number", "money"]
    assert rows[1:] == [
        [
            "" if r[k] is None else str(csv_value(r[k], kind))
            for k, kind in zip(keys, kinds, strict=True)
        ]
        for r in found
    ]
    assert len(rows) == 1 + 6


# -- the report page -----------------------------------------------------------------


def report_url(report):
    return reverse("reports:detail", args=[report.pk])


def _section(page, element_id):
    return page.split(f'id="{element_id}"')[1].split("</section>")[0]


def test_report_page_shows_every_part(as_manager, library):
    page = get_page(as_manager, report_url(library.reader))

    assert "<h1>Goal 1: why did churn rise?</h1>" in page
    questions = _section(page, "questions")
    assert "<ol>" in questions and "<li>Which segments churned?</li>" in questions
    assert re.findall(r"<li>(.*?)</li>", _section(page, "plan")) == [
        "Step 1: clean the data",
        "Step 2: model churn",
    ]
    steps = re.findall(r"<li><strong>(.*?)</strong> (.*?)</li>", _section(page, "steps"), re.S)
    assert steps == [
        ("preprocessing_agent", "Removed 27 duplicate rows."),
        ("statistical_analytics_agent", "Monthly plans churn 2x more."),
        ("Step 3", "a plain note without a step name"),
    ]
    assert re.findall(r"<li>(.*?)</li>", _section(page, "synthesis")) == [
        "Monthly plans churn most.",
        "Support tickets predict churn.",
    ]
    assert "Churn rose among <strong>monthly</strong> plans." in _section(page, "conclusion")
    assert "5 min 00 s" in page and "$0.86" in page and "150,000" in page
    assert "df = df.drop_duplicates()" in page


def test_report_figures_are_drawn_from_json_script_blocks(as_manager, library):
    page = get_page(as_manager, report_url(library.reader))

    blocks = re.findall(
        r'<div class="plot" data-chart="(report-figure-\d)"></div>'
        r'<script id="(report-figure-\d)" type="application/json">(.*?)</script>',
        page,
    )
    # The figure, the same stored as a JSON string; not the one without
    # data, nor the text that is not JSON.
    assert [(chart, block) for chart, block, _ in blocks] == [
        ("report-figure-0", "report-figure-0"),
        ("report-figure-1", "report-figure-1"),
    ]
    for _, _, text in blocks:
        drawn = json.loads(text)
        assert drawn["data"] == FIGURE["data"]
        # Its fixed width dropped, so it fits the page.
        assert drawn["layout"] == {
            "title": FIGURE["layout"]["title"],
            "height": 420,
            "autosize": True,
        }
    # The title cannot close the script block.
    assert "</script><script>alert('figure')" not in page
    # plotly.js is ours, loaded once.
    assert page.count("vendor/plotly.min.js") == 1 and "cdn" not in page.lower()


def test_hostile_html_report_is_sanitised(as_manager, library):
    page = get_page(as_manager, report_url(library.reader))

    report = page.split('<article class="report-html">')[1].split("</article>")[0]
    tags = Tags()
    tags.feed(report)
    # Only the sanitiser's allow-list of tags; no event handler, no style,
    # no javascript: URL in any attribute.
    assert {tag for tag, _ in tags.found} <= {
        "h1",
        "img",
        "a",
        "p",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
    for tag, attrs in tags.found:
        for name, value in attrs:
            assert not name.startswith("on") and name != "style", (tag, name)
            assert "javascript:" not in (value or "").lower(), (tag, name, value)
    assert "<script" not in report.lower()
    # What is safe stays: headings, text, tables and http(s) links.
    assert "Churn report</h1>" in report
    assert '<a href="https://example.com/churn" rel="noopener noreferrer nofollow">' in report
    assert "<td>monthly</td>" in report
    assert "styled paragraph" in report
    # Nowhere else on the page does any of it run.
    assert "alert('script')" not in page
    assert 'onerror="alert' not in page


class Tags(HTMLParser):
    """Every start tag of an HTML fragment with its attributes."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, attrs))


def test_text_of_a_report_is_escaped(as_manager, library):
    library.reader.goal = "<script>alert('goal')</script>"
    library.reader.summaries = ["agent: <img src=x onerror=alert(1)>"]
    library.reader.save()

    page = get_page(as_manager, report_url(library.reader))

    assert "<script>alert('goal')" not in page
    assert "&lt;script&gt;alert(&#x27;goal&#x27;)&lt;/script&gt;" in page
    assert "<img src=x onerror" not in page


def test_analysis_results_of_the_same_app_user_are_beside_the_report(as_manager, library):
    page = get_page(as_manager, report_url(library.reader))

    aside = page.split('id="analysis-results"')[1].split("</aside>")[0]
    assert "A report is not linked to a chat" in aside
    links = re.findall(r'<a href="(/admin/review/chats/\d+/)">', aside)
    # ann's two results, newest first, each opening its chat; not cat's.
    assert links == [reverse("review:transcript", args=[library.ds_chat.pk])] * 2
    shown = re.findall(r'<pre class="json">(.*?)</pre>', aside, re.S)
    assert [html.unescape(x) for x in shown] == [
        json.dumps({"clusters": 3}, indent=2),
        json.dumps({"correlation": 0.42}, indent=2),
    ]
    assert "cat&#x27;s DS-ML session" not in aside
    # A report of an anonymous app user has none.
    anonymous = DeepAnalysisReport.objects.get(user__isnull=True)
    aside = get_page(as_manager, report_url(anonymous)).split('id="analysis-results"')[1]
    assert "No analysis results in this app user" in aside


def test_a_report_without_parts_says_so(as_manager, library):
    pending = DeepAnalysisReport.objects.get(status="pending")

    page = get_page(as_manager, report_url(pending))

    assert "No step has reported yet." in page
    assert 'id="figures"' not in page and 'id="html-report"' not in page
    # A synthesis that is not a list of texts is shown as its JSON.
    assert "&quot;finding&quot;: &quot;a map&quot;" in _section(page, "synthesis")
    assert "vendor/plotly.min.js" not in page  # no figure: no plotly.js


def test_unknown_report_is_404(as_manager):
    assert as_manager.get(reverse("reports:detail", args=[999_999])).status_code == 404


@pytest.mark.parametrize(("start", "end"), OUT_OF_RANGE)
def test_custom_periods_out_of_range_are_a_form_error(as_manager, start, end):
    query = {"period": "custom", "start": start, "end": end}
    page = get_page(as_manager, LIST, **query)
    assert OUT_OF_RANGE_MESSAGE in html.unescape(page)
    assert as_manager.get(LIST, {**query, "export": "reports"}).status_code == 200


# -- query counts ---------------------------------------------------------------------

# Four queries of an admin request: the session, the staff account, its own
# permissions, its groups' permissions.
ADMIN_REQUEST = 4


def test_query_counts(as_manager, library, django_assert_num_queries):
    for n in range(30):
        f.DeepAnalysisReportFactory(user=library.cat, created_at=utc(2024, 3, 1 + n % 13))
        f.AnalysisResultFactory(chat=library.ds_chat)
    # List: the filter bar's organisation select (1: its model and provider
    # are left out, so no choices are read); headline now and before (2); the
    # paginator's count (1); the page of reports with their app users (1).
    with django_assert_num_queries(ADMIN_REQUEST + 5):
        assert as_manager.get(LIST, {"period": "30d"}).status_code == 200
    # Report: the report with its app user, organisation and source (1); the
    # analysis results with their chats and files (1).
    with django_assert_num_queries(ADMIN_REQUEST + 2):
        assert as_manager.get(report_url(library.reader)).status_code == 200
    # Export: only its table, every report of the filter (1); no headline.
    with django_assert_num_queries(ADMIN_REQUEST + 1):
        response = as_manager.get(LIST, {"period": "30d", "export": "reports"})
        b"".join(response.streaming_content)


# -- access ---------------------------------------------------------------------------


def test_staff_managers_and_admins_read_the_reports(client, staff, manager, library, fixed_today):  # noqa: F811
    for account in (staff, manager, f.UserFactory(groups=["Admins"])):
        client.force_login(account)
        assert client.get(LIST).status_code == 200
        page = client.get(report_url(library.reader)).content.decode()
        assert 'id="analysis-results"' in page
        export = client.get(LIST, {"export": "reports"})
        # Exports are the Managers' right (usage.export_usage), as on the cost pages.
        assert export.status_code == (403 if account == staff else 200)


def test_without_the_rights_there_is_nothing_to_see(client, library):
    for url in (LIST, report_url(library.reader)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=/admin/reports/")
    client.force_login(f.UserFactory(username="nobody"))
    for url in (LIST, report_url(library.reader), f"{LIST}?export=reports"):
        assert client.get(url).status_code == 403, url
    # Reports without analysis results: the report, not the results beside it.
    reader = f.UserFactory(username="reports-only")
    reader.user_permissions.add(Permission.objects.get(codename="view_deepanalysisreport"))
    client.force_login(reader)
    page = client.get(report_url(library.reader)).content.decode()
    assert "Goal 1" in page and 'id="analysis-results"' not in page
