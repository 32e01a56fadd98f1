"""Deep-analysis report pages for Staff, Managers and Admins, inside the
admin's frame: a filtered list (figures, a table exportable as CSV as on the
cost pages) and one report as a reader sees it.

Thin views (core.pages.views): parse the filter bar, call reports.metrics,
render or export. Both need ``reports.view_deepanalysisreport``; the
analysis results beside a report also ``reports.view_analysisresult``.
"""

from django.contrib import admin
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from core.pages.tables import Column, Table
from core.pages.views import Page, admin_page, render_page

from . import metrics
from .filters import ReportFilter
from .models import DeepAnalysisReport

VIEW_PERMISSION = "reports.view_deepanalysisreport"

REPORT_COLUMNS = [
    Column("created_at", "Created", "datetime"),
    Column("goal", "Goal"),
    Column("user", "App user"),
    Column("status", "Status"),
    Column("progress", "Progress", "share"),
    Column("duration", "Duration", "duration"),
    Column("credits", "Credits", "number"),
    Column("tokens", "Tokens", "number"),
    Column("cost", "Cost (est.)", "money"),
]


def report_url(row):
    return reverse("reports:detail", args=[row["pk"]])


def reports_table(view):
    """The reports of the filter, newest first: a page of them, or exported
    the first EXPORT_LIMIT."""
    found = metrics.report_list(view.period, view.scope, view.options["status"])
    return Table(
        "reports",
        "Reports",
        REPORT_COLUMNS,
        metrics.report_rows(view.rows_of(found)),
        link=report_url,
        link_keeps_query=False,
        note="Newest first. Duration as the application stored it, else end − start.",
    )


def list_figures(view):
    return {"figures": metrics.report_headline(view.period, view.scope, view.options["status"])}


REPORTS = Page(
    "reports/list.html",
    "Deep-analysis reports",
    "reports",
    {"reports": reports_table},
    list_figures,
)


@admin_page(VIEW_PERMISSION)
def report_list(request):
    filters = ReportFilter(request.GET)
    return render_page(request, REPORTS, filters, status=filters.status_value())


@admin_page(VIEW_PERMISSION)
def report_detail(request, pk):
    report = get_object_or_404(
        DeepAnalysisReport.objects.select_related("user__organization", "source"), pk=pk
    )
    can_see_results = request.user.has_perm("reports.view_analysisresult")
    context = {
        **admin.site.each_context(request),
        "title": str(report),
        "report": report,
        "duration": metrics.duration(report),
        "questions": metrics.markdown(report.deep_questions),
        "plan": metrics.lines(report.deep_plan),
        "conclusion": metrics.markdown(report.final_conclusion),
        "steps": metrics.steps(report),
        # each figure's JSON in a json_script block of its own id
        "figures": [(f"report-figure-{n}", f) for n, f in enumerate(metrics.figures(report))],
        "synthesis": metrics.synthesis(report),
        "html_report": metrics.html(report),
        "results": metrics.results_beside(report) if can_see_results else None,
    }
    return render(request, "reports/detail.html", context)
