"""The quality pages and the report reader in a real browser (Debian's
Chromium through Playwright), on the demo data set (ingest.demo, small scale):
a Manager logs in through the admin form, opens each page, every plotly
chart draws from our own plotly.js, and a screenshot of each is saved as
test-artifacts/quality-*.png and test-artifacts/report.png.
"""

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission

from analytics import metrics as quality
from core import roles
from core.tests import factories as f
from ingest.demo.builder import build_demo, tqdm_progress
from reports.models import DeepAnalysisReport
from usage.metrics import Period, Scope
from usage.tests.conftest import PASSWORD

# The live server runs in another thread: the data must be committed.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def _role_groups(transactional_db):
    """The Staff, Managers and Admins groups, made again if a flush took them
    (see usage/tests/test_dashboard_browser.py for why)."""
    for name, dotted in roles.GROUPS.items():
        group, created = Group.objects.get_or_create(name=name)
        if created:
            for item in dotted:
                app_label, codename = item.split(".")
                group.permissions.add(
                    Permission.objects.get(content_type__app_label=app_label, codename=codename)
                )
    admins, created = Group.objects.get_or_create(name="Admins")
    if created:
        admins.permissions.set(
            Permission.objects.filter(content_type__app_label__in=roles.ADMIN_APPS)
        )


@pytest.fixture
def demo(time_zone):
    """The demo data set, small; a completed report whose app user also has
    DS-ML agent chats with analysis results (the demo's applications have
    separate users, so one is made here)."""
    build_demo(seed=11, scale=0.15, days=60, progress=tqdm_progress(enabled=False))
    report = (
        DeepAnalysisReport.objects.filter(status="completed", plotly_figures__isnull=False)
        .select_related("user")
        .order_by("-created_at")
        .first()
    )
    chat = f.ChatFactory(
        user=report.user,
        organization=report.user.organization,
        title="Churn drivers in the CRM export",
    )
    for kind, data in (
        ("statistical", {"correlation": {"tenure": -0.35, "support_calls": 0.41}}),
        ("ml", {"model": "gradient_boosting", "auc": 0.87}),
    ):
        f.AnalysisResultFactory(chat=chat, analysis_type=kind, result_data=data)
    return report


def _manager():
    return f.UserFactory(username="manager", groups=["Managers"], password=make_password(PASSWORD))


def _charts_drawn(page, count):
    page.wait_for_function(
        f"document.querySelectorAll('.plot').length === {count} && "
        "[...document.querySelectorAll('.plot')].every(p => p.querySelector('.main-svg'))",
        timeout=20_000,
    )


def test_manager_reads_every_quality_page(live_server, page, login, screenshot, demo):
    _manager()
    login(page, "manager", PASSWORD)
    period = Period.preset("30d")
    executions = quality.execution_totals(period, Scope())
    assert executions["failures"] > 0

    for name, path, charts, figure_key in (
        ("code", "/admin/quality/code/", 5, "executions"),
        ("feedback", "/admin/quality/feedback/", 4, "ratings"),
        ("activity", "/admin/quality/activity/", 4, "active_users"),
        ("text-to-sql", "/admin/quality/text-to-sql/", 3, "queries"),
    ):
        response = page.goto(f"{live_server.url}{path}?period=30d")
        assert response.status == 200, path
        _charts_drawn(page, charts)
        shown = page.locator(f"#figure-{figure_key} .figure-value").inner_text()
        assert shown not in ("", "–", "0"), (path, shown)
        assert page.locator(".dash-table tbody tr").count() > 3, path
        screenshot(page, f"quality-{name}")

    # The most frequent error type opens its failing executions …
    page.goto(f"{live_server.url}/admin/quality/code/?period=30d")
    first = page.locator("#table-error_types tbody tr").first
    kind = first.locator("td").first.inner_text()
    count = int(first.locator("td").nth(1).inner_text().replace(",", ""))
    first.locator("a").click()
    page.wait_for_load_state()
    assert "/admin/quality/code/executions/" in page.url
    assert page.locator("#table-executions tbody tr").count() == min(count, 50)
    assert f"with error type {kind}" in page.locator(".group").inner_text()
    screenshot(page, "quality-executions")
    # … and each execution its answer in the chat's transcript.
    page.locator("#table-executions tbody tr a").first.click()
    page.wait_for_load_state()
    assert "/admin/review/chats/" in page.url and "#message-" in page.url
    assert page.locator(".transcript").count() == 1


def test_manager_reads_a_report(live_server, page, login, screenshot, demo):
    _manager()
    login(page, "manager", PASSWORD)

    response = page.goto(f"{live_server.url}/admin/reports/?period=90d")

    assert response.status == 200
    assert page.locator("#table-reports tbody tr").count() > 5
    screenshot(page, "quality-reports")
    page.goto(f"{live_server.url}/admin/reports/{demo.pk}/")
    _charts_drawn(page, len(demo.plotly_figures))
    assert page.locator("#figures .plot .main-svg").count() >= len(demo.plotly_figures)
    assert page.locator("#goal").inner_text().endswith(demo.goal)
    assert page.locator("#steps li").count() == len(demo.summaries)
    assert page.locator(".report-html h2").count() >= 3
    assert page.locator(".report-html script").count() == 0
    assert page.locator("#analysis-results .result").count() == 2
    path = screenshot(page, "report")
    assert path.stat().st_size > 50_000


def test_staff_read_the_pages_without_exports(live_server, page, login, demo):
    f.UserFactory(username="staffer", groups=["Staff"], password=make_password(PASSWORD))
    login(page, "staffer", PASSWORD)

    for path in ("/admin/quality/code/", "/admin/quality/activity/", "/admin/reports/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        assert page.locator("a.export").count() == 0, path
    response = page.goto(f"{live_server.url}/admin/quality/code/?export=error_types")
    assert response.status == 403
