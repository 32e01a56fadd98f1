"""Deep-analysis report pages for Staff, Managers and Admins, inside the
admin's frame: a filtered list (figures, a table exportable as CSV as on the
cost pages) and one report as a reader sees it.

Thin views: read the filter bar, call reports.metrics, render or export
(usage.views.render_or_export). Both need ``reports.view_deepanalysisreport``; the
analysis results beside a report also ``reports.view_analysisresult``.
"""

from django.contrib import admin
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from chats.views import staff_page
from usage.quality_views import EXPORT_LIMIT, PAGE_SIZE, pager_query
from usage.tables import Column, Table
from usage.views import render_or_export

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


@staff_page(VIEW_PERMISSION)
def report_list(request):
    filters = ReportFilter(request.GET)
    period, scope, errors = filters.resolve()
    status = filters.status_value()
    found = metrics.report_list(period, scope, status)
    exporting = bool(request.GET.get("export"))
    page = None if exporting else Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    tables = {
        "reports": lambda: Table(
            "reports",
            "Reports",
            REPORT_COLUMNS,
            metrics.report_rows(found[:EXPORT_LIMIT] if exporting else page.object_list),
            link=lambda row: reverse("reports:detail", args=[row["pk"]]),
            link_keeps_query=False,
            note="Newest first. Duration as the application stored it, else end − start.",
        )
    }
    context = {
        "title": "Deep-analysis reports",
        "filters": filters,
        "errors": errors,
        "period": period,
        "figures": metrics.report_headline(period, scope, status),
        "page_obj": page,
        "pager_query": pager_query(request),
    }
    return render_or_export(request, "reports/list.html", tables, context, "reports")


@staff_page(VIEW_PERMISSION)
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
