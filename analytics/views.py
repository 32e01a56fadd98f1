"""Quality, activity and text-to-SQL pages for Staff, Managers and Admins,
inside the admin's frame.

Thin views (core.pages.views): parse the filter bar, hand the page's
declared tables (analytics.tables) and figures and charts (analytics.charts)
to ``render_page``, which renders, or exports one table computing only it
(``?export=<table>``, which needs usage.export_usage as on the cost pages).
Every page needs ``chats.view_message`` (403 without it): Staff read the
same conversations, code and SQL in the transcripts.
"""

from core.pages.views import Page, admin_page, render_page

from . import charts, tables
from .filters import ActivityFilter, ExecutionFilter, QualityFilter

VIEW_PERMISSION = "chats.view_message"

CODE = Page("quality/code.html", "Code execution", "quality-code", tables.CODE, charts.code)
EXECUTIONS = Page(
    "quality/executions.html",
    "Code executions",
    "quality-executions",
    {"executions": tables.executions},
    charts.executions,
)
FEEDBACK = Page(
    "quality/feedback.html",
    "Feedback and mistakes",
    "quality-feedback",
    tables.FEEDBACK,
    charts.feedback,
)
ACTIVITY = Page(
    "quality/activity.html", "Activity", "quality-activity", tables.ACTIVITY, charts.activity
)
TEXT_TO_SQL = Page(
    "quality/text_to_sql.html",
    "Text-to-SQL",
    "quality-text-to-sql",
    tables.TEXT_TO_SQL,
    charts.text_to_sql,
)


@admin_page(VIEW_PERMISSION)
def code(request):
    return render_page(request, CODE, QualityFilter(request.GET))


@admin_page("chats.view_codeexecution")
def execution_list(request):
    filters = ExecutionFilter(request.GET)
    return render_page(request, EXECUTIONS, filters, group=filters.group())


@admin_page(VIEW_PERMISSION)
def feedback(request):
    return render_page(request, FEEDBACK, QualityFilter(request.GET))


@admin_page(VIEW_PERMISSION)
def activity(request):
    return render_page(request, ACTIVITY, ActivityFilter(request.GET))


@admin_page(VIEW_PERMISSION)
def text_to_sql(request):
    return render_page(request, TEXT_TO_SQL, QualityFilter(request.GET))
