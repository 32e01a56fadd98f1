"""What the deep-analysis report pages show: the list's figures and rows
(aggregated in the database, for a page kit's Period and Scope), and a
report's parts read from its stored text and JSON.

A report's organisation is its app user's. There is no foreign key from a
report to a chat: the DS-ML agent's analysis results shown beside a report
are those in chats of the same app user (``results_beside``).
"""

import json

from django.db.models import Avg, Count, DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.safestring import mark_safe

from chats.rendering import render_markdown, sanitise
from chats.transcript import pretty
from core.pages.figures import headline, ratio
from core.pages.period import Fields, in_period, scoped

from .models import AnalysisResult, DeepAnalysisReport

REPORT = Fields("user_id", "user__organization_id", source=None)
COMPLETED = DeepAnalysisReport.Status.COMPLETED
FAILED = DeepAnalysisReport.Status.FAILED
RESULTS_BESIDE = 20


def reports(period, scope, status=None):
    """Reports created in the period, in scope, of one status or any."""
    found = scoped(DeepAnalysisReport.objects.filter(in_period(period)), scope, REPORT)
    if status:
        found = found.filter(status=status)
    return found.order_by()


def report_totals(period, scope, status=None):
    """Reports, completed share, failures, average duration of completed
    reports (seconds), credits, tokens and estimated cost."""
    row = reports(period, scope, status).aggregate(
        reports=Count("id"),
        completed=Count("id", filter=Q(status=COMPLETED)),
        failed=Count("id", filter=Q(status=FAILED)),
        average_duration=Avg("duration_seconds", filter=Q(status=COMPLETED)),
        credits=Coalesce(Sum("credits_consumed"), 0),
        tokens=Coalesce(Sum("total_tokens_used"), 0),
        cost=Coalesce(Sum("estimated_cost"), Value(0), output_field=DecimalField()),
    )
    row["completed_share"] = ratio(row["completed"], row["reports"])
    return row


REPORT_HEADLINE = [
    ("reports", "Reports", "number"),
    ("completed_share", "Completed", "share"),
    ("failed", "Failed", "number"),
    ("average_duration", "Average duration (completed)", "duration"),
    ("credits", "Credits consumed", "number"),
    ("tokens", "Tokens", "number"),
    ("cost", "Estimated cost", "money"),
]


def report_headline(period, scope, status=None):
    return headline(report_totals, period, scope, REPORT_HEADLINE, status=status)


def report_list(period, scope, status=None):
    """The list's reports, newest first, with their app user."""
    return reports(period, scope, status).select_related("user").order_by("-created_at", "-id")


def duration(report):
    """Seconds: duration_seconds as stored, else end_time − start_time."""
    if report.duration_seconds is not None:
        return report.duration_seconds
    if report.start_time and report.end_time and report.end_time >= report.start_time:
        return (report.end_time - report.start_time).total_seconds()
    return None


def report_rows(found):
    """Table rows (dicts) of report objects."""
    return [
        {
            "pk": r.pk,
            "created_at": r.created_at,
            "goal": str(r),
            "user": str(r.user) if r.user else "anonymous",
            "status": r.get_status_display(),
            "progress": r.progress_percentage / 100,
            "duration": duration(r),
            "credits": r.credits_consumed,
            "tokens": r.total_tokens_used,
            "cost": r.estimated_cost,
        }
        for r in found
    ]


# -- one report ------------------------------------------------------------------


def steps(report):
    """Each pipeline step's summary as (step, text); ``summaries`` is a list
    of "agent: text" strings, of {agent/step/name, summary/text} objects, or
    a map step → text."""
    summaries = report.summaries
    if isinstance(summaries, dict):
        return [(str(name), _text(value)) for name, value in summaries.items()]
    if not isinstance(summaries, list):
        return [] if summaries in (None, "") else [("", _text(summaries))]
    found = []
    for number, item in enumerate(summaries, 1):
        if isinstance(item, dict):
            name = item.get("agent") or item.get("step") or item.get("name") or f"Step {number}"
            text = item.get("summary") or item.get("text") or item.get("content") or item
            found.append((str(name), _text(text)))
            continue
        text = _text(item)
        head, colon, rest = text.partition(": ")
        if colon and head and " " not in head:
            found.append((head, rest))
        else:
            found.append((f"Step {number}", text))
    return found


def _text(value):
    return value if isinstance(value, str) else pretty(value)


def figures(report):
    """The stored plotly figures that can be drawn: [{data, layout}]; each is
    kept to its data and layout (no frames or config), its fixed width
    dropped so it fits the page. A figure stored as a JSON string is read."""
    stored = report.plotly_figures
    if isinstance(stored, dict):
        stored = [stored]
    drawn = []
    for item in stored if isinstance(stored, list) else []:
        if isinstance(item, str):
            try:
                item = json.loads(item)
            except ValueError:
                continue
        if not isinstance(item, dict) or not isinstance(item.get("data"), list):
            continue
        layout = item.get("layout") if isinstance(item.get("layout"), dict) else {}
        layout = {key: value for key, value in layout.items() if key not in ("width", "template")}
        drawn.append({"data": item["data"], "layout": {**layout, "autosize": True}})
    return drawn


def synthesis(report):
    """(list of findings, or None; the stored JSON when it is not a list of texts)."""
    value = report.synthesis
    if value in (None, "", []):
        return None, None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value, None
    if isinstance(value, str):
        return [value], None
    return None, pretty(value)


def html(report):
    """The stored HTML report sanitised by nh3 (chats.rendering.sanitise): no
    script, event handler or javascript: URL survives. None when empty."""
    if not report.html_report:
        return None
    return mark_safe(sanitise(report.html_report))  # noqa: S308 (sanitised by nh3)


def lines(text):
    """The non-blank lines of a stored text (the plan: one step a line)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def markdown(text):
    """Stored plain or markdown text (questions, plan, conclusion) as safe HTML."""
    return render_markdown(text) if text else None


def results_beside(report, limit=RESULTS_BESIDE):
    """The DS-ML agent's analysis results in chats of the report's app user,
    newest first, with their chat and file: [(result, pretty result data)]."""
    if report.user_id is None:
        return []
    found = (
        AnalysisResult.objects.filter(chat__user_id=report.user_id)
        .select_related("chat", "file")
        .order_by("-created_at", "-id")[:limit]
    )
    return [(result, pretty(result.result_data)) for result in found]
