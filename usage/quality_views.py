"""Quality, activity and text-to-SQL pages for Staff, Managers and Admins,
inside the admin's frame.

Thin views, as usage.views: read the filter bar, call usage.quality, render
or export one table (usage.views.render_or_export: ?export=<table>, which needs
usage.export_usage as on the cost pages). Every page needs
``chats.view_message`` (403 without it): Staff read the same conversations,
code and SQL in the transcripts.
"""

from types import SimpleNamespace

from django.core.paginator import Paginator
from django.urls import reverse

from chats.views import staff_page, transcript_url

from . import quality
from . import quality_charts as charts
from .quality_filters import ActivityFilter, ExecutionFilter, QualityFilter
from .tables import Column, Table
from .views import render_or_export

VIEW_PERMISSION = "chats.view_message"
PAGE_SIZE = 50
EXPORT_LIMIT = 10_000  # rows of a list page's CSV


def _url(request, name, **params):
    """A page's URL with this page's filters, changed by ``params``."""
    query = request.GET.copy()
    for key in ("export", "page", "sort", "outcome", "error_type", "agent"):
        query.pop(key, None)
    for key, value in params.items():
        query[key] = value
    return f"{reverse(name)}?{query.urlencode()}"


def pager_query(request):
    """This page's query string without its page number (the pager's links)."""
    query = request.GET.copy()
    for key in ("export", "page"):
        query.pop(key, None)
    return query.urlencode()


def _transcript(chat_id, message_id=None):
    if chat_id is None:
        return None
    if message_id is None:
        return reverse("review:transcript", args=[chat_id])
    return transcript_url(SimpleNamespace(chat_id=chat_id, pk=message_id))


def _context(filters, title):
    """(period, scope, the page's context) from its filter bar."""
    period, scope, errors = filters.resolve()
    return period, scope, {"title": title, "filters": filters, "errors": errors, "period": period}


# -- code execution ------------------------------------------------------------

RUN_TIME_NOTE = (
    "No run time is stored: \u201cTo last update\u201d is updated_at − created_at of the "
    "execution (its first run to its last update, retries included), unknown where either "
    "is missing or both are equal."
)


@staff_page(VIEW_PERMISSION)
def code(request):
    filters = QualityFilter(request.GET)
    period, scope, context = _context(filters, "Code execution")
    per_day = quality.success_per_day(period, scope)
    error_types = quality.failures_by_error_type(period, scope)
    per_chat = quality.executions_per_chat(period, scope)
    by_model = quality.success_by_model(period, scope)
    agents = quality.failures_by_agent(period, scope)
    executions_url = "quality:executions"
    tables = {
        "error_types": lambda: Table(
            "error_types",
            "Failures by error type",
            [
                Column("error_type", "Error type"),
                Column("executions", "Failed executions", "number"),
                Column("agents", "Agents", "number"),
                Column("example", "Example"),
            ],
            error_types,
            link=lambda r: _url(request, executions_url, error_type=r["error_type"]),
            link_keeps_query=False,
            note="The exception class at the start of the last line of each stored error "
            "message (or the whole line); an execution counts once per type it shows.",
        ),
        "agents": lambda: Table(
            "agents",
            "Failures by agent",
            [
                Column("agent", "Agent"),
                Column("executions", "Failed", "number"),
                Column("share", "Share", "share"),
                Column("chats", "Chats", "number"),
            ],
            agents,
            link=lambda r: _url(request, executions_url, agent=r["agent"]),
            link_keeps_query=False,
            note="Agents named in failed_agents or as keys of error_messages; the share is of "
            "all failed executions (one may name several agents).",
        ),
        "per_chat": lambda: Table(
            "per_chat",
            "Executions per chat",
            [Column("bucket", "Executions in the chat"), Column("chats", "Chats", "number")],
            [{"bucket": _bucket(n), "chats": chats} for n, chats in per_chat],
        ),
        "models": lambda: Table(
            "models",
            "Success rate by model",
            [
                Column("model_name", "Model"),
                Column("model_provider", "Provider"),
                Column("executions", "Executions", "number"),
                Column("success_rate", "Success rate", "share"),
                Column("failures", "Failed", "number"),
                Column("retried_share", "Code changed", "share"),
            ],
            by_model,
        ),
        "busiest_chats": lambda: Table(
            "busiest_chats",
            "Chats with the most executions",
            [
                Column("chat__title", "Chat"),
                Column("executions", "Executions", "number"),
                Column("failures", "Failed", "number"),
            ],
            quality.busiest_chats(period, scope),
            link=lambda r: _transcript(r["chat_id"]),
            link_keeps_query=False,
        ),
        "slowest": lambda: Table(
            "slowest",
            "Slowest executions",
            [
                Column("created_at", "Created", "datetime"),
                Column("chat", "Chat"),
                Column("model_name", "Model"),
                Column("run_time", "To last update", "duration"),
                Column("outcome", "Outcome"),
            ],
            [
                {
                    "created_at": e.created_at,
                    "chat": e.chat.title if e.chat else None,
                    "model_name": e.model_name,
                    "run_time": e.run_time,
                    "outcome": "succeeded" if e.is_successful else "failed",
                    "chat_id": e.chat_id,
                    "message_id": e.message_id,
                }
                for e in quality.slowest_executions(period, scope)
            ],
            link=lambda r: _transcript(r["chat_id"], r["message_id"]),
            link_keeps_query=False,
            note=RUN_TIME_NOTE,
        ),
        "most_retried": lambda: Table(
            "most_retried",
            "Most retried answers",
            [
                Column("message__chat__title", "Chat"),
                Column("runs", "Executions", "number"),
                Column("changed", "With changed code", "number"),
                Column("failures", "Failed", "number"),
                Column("last", "Last run", "datetime"),
            ],
            quality.most_retried(period, scope),
            link=lambda r: _transcript(r["message__chat_id"], r["message_id"]),
            link_keeps_query=False,
            note="Answers whose code ran more than once, or whose latest code differs from "
            "the initial code.",
        ),
    }
    top_types = error_types[:10]
    context.update(
        figures=quality.execution_headline(period, scope),
        charts={
            "per_day": charts.volume_and_rate(
                [d for d, *_ in per_day],
                [n for _, n, _, _ in per_day],
                [r for *_, r in per_day],
                "Executions",
                "Success rate",
            ),
            "error_types": charts.bars(
                [r["error_type"] for r in top_types],
                [r["executions"] for r in top_types],
                "failed executions",
                horizontal=True,
            ),
            "agents": charts.bars(
                [r["agent"] for r in agents[:10]],
                [r["executions"] for r in agents[:10]],
                "failed executions",
                horizontal=True,
            ),
            "per_chat": charts.bars(
                [_bucket(n) for n, _ in per_chat], [c for _, c in per_chat], "chats"
            ),
            "models": charts.bars(
                [r["model_name"] or "not recorded" for r in by_model],
                [r["success_rate"] for r in by_model],
                "success rate",
                horizontal=True,
                tickformat=".0%",
            ),
        },
    )
    return render_or_export(request, "quality/code.html", tables, context, "quality-code")


def _bucket(n):
    return f"{n} or more" if n == quality.EXECUTION_COUNT_BUCKETS else str(n)


EXECUTION_COLUMNS = [
    Column("created_at", "Created", "datetime"),
    Column("chat", "Chat"),
    Column("user", "App user"),
    Column("model_name", "Model"),
    Column("outcome", "Outcome"),
    Column("errors", "Errors (agent: type)"),
    Column("run_time", "To last update", "duration"),
]


def _execution_rows(executions):
    errors = quality.execution_errors(e.pk for e in executions)
    return [
        {
            "created_at": e.created_at,
            "chat": e.chat.title if e.chat else None,
            "user": (str(e.chat.user) if e.chat.user else "anonymous") if e.chat else None,
            "model_name": e.model_name,
            "outcome": "succeeded" if e.is_successful else "failed",
            "errors": "; ".join(
                f"{agent}: {kind}" if agent else kind for agent, kind, _ in errors.get(e.pk, [])
            ),
            # 0 s (never updated after it was created) or less: unknown
            "run_time": e.run_time if e.run_time and e.run_time.total_seconds() > 0 else None,
            "chat_id": e.chat_id,
            "message_id": e.message_id,
        }
        for e in executions
    ]


@staff_page("chats.view_codeexecution")
def execution_list(request):
    filters = ExecutionFilter(request.GET)
    period, scope, context = _context(filters, "Code executions")
    outcome, error_type, agent = filters.group()
    found = quality.execution_list(period, scope, outcome, error_type, agent)
    exporting = bool(request.GET.get("export"))
    page = None if exporting else Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    tables = {
        "executions": lambda: Table(
            "executions",
            "Executions",
            EXECUTION_COLUMNS,
            _execution_rows(list(found[:EXPORT_LIMIT]) if exporting else page.object_list),
            link=lambda r: _transcript(r["chat_id"], r["message_id"]),
            link_keeps_query=False,
            note="Each row opens the answer in its chat's transcript. " + RUN_TIME_NOTE,
        ),
    }
    context.update(
        page_obj=page,
        pager_query=pager_query(request),
        group={"outcome": outcome, "error_type": error_type, "agent": agent},
    )
    return render_or_export(
        request, "quality/executions.html", tables, context, "quality-executions"
    )


# -- feedback ------------------------------------------------------------------


def _queue_url(period, scope, row):
    """The feedback queue (chats.views) showing this model's ratings."""
    params = {
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "model": row["model_name"] or "",
        "provider": row["model_provider"] or "",
        "organization": scope.organization_id or "",
        "user": scope.user_id or "",
        "source": scope.source_id or "",
    }
    query = "&".join(f"{k}={v}" for k, v in params.items() if v != "")
    return f"{reverse('review:feedback_queue')}?{query}"


RATING_COLUMNS = [
    Column("ratings", "Ratings", "number"),
    Column("average", "Average", "rating"),
    Column("low_share", "Rated 1–2 ★", "share"),
]


@staff_page(VIEW_PERMISSION)
def feedback(request):
    filters = QualityFilter(request.GET)
    period, scope, context = _context(filters, "Feedback and mistakes")
    distribution = quality.rating_distribution(period, scope)
    total = sum(n for _, n in distribution)
    per_day = quality.rating_per_day(period, scope)
    temperature = quality.rating_by_temperature(period, scope)
    mistakes = quality.mistakes_per_day(period, scope)
    tables = {
        "distribution": lambda: Table(
            "distribution",
            "Rating distribution",
            [
                Column("stars", "Rating"),
                Column("ratings", "Ratings", "number"),
                Column("share", "Share", "share"),
            ],
            [
                {"stars": "★" * rating, "ratings": n, "share": quality.ratio(n, total)}
                for rating, n in distribution
            ],
        ),
        "models": lambda: Table(
            "models",
            "Lowest-rated models",
            [Column("model_name", "Model"), Column("model_provider", "Provider"), *RATING_COLUMNS],
            quality.rating_by_model(period, scope),
            link=lambda r: _queue_url(period, scope, r),
            link_keeps_query=False,
            note="Lowest average first; each model opens its ratings in the feedback queue.",
        ),
        "agents": lambda: Table(
            "agents",
            "Lowest-rated agents",
            [Column("agent", "Agent"), Column("known_from", "Agent known from"), *RATING_COLUMNS],
            quality.rating_by_agent(period, scope),
            note="Only the DS-ML agent stores an answer's agent (\u201cmessage agent\u201d). "
            "Auto-Analyst does not; for its answers an agent is counted when the answer's "
            "code by that agent failed (\u201ccode failed\u201d), so those rows read "
            "\u201cratings of answers whose code by this agent failed\u201d.",
        ),
        "temperature": lambda: Table(
            "temperature",
            "Ratings by temperature",
            [Column("band", "Temperature"), *RATING_COLUMNS],
            temperature,
            note="The temperature stored with the feedback (the rated call's setting).",
        ),
        "max_tokens": lambda: Table(
            "max_tokens",
            "Ratings by max tokens",
            [Column("band", "Max tokens"), *RATING_COLUMNS],
            quality.rating_by_max_tokens(period, scope),
        ),
        "mistakes": lambda: Table(
            "mistakes",
            "Mistakes flagged by model",
            [
                Column("model_name", "Model"),
                Column("answers", "Answers", "number"),
                Column("mistakes", "Flagged", "number"),
                Column("share", "Share", "share"),
            ],
            quality.mistakes_by_model(period, scope),
            note="Assistant messages that carry a model (AI Chat v2), by the day the answer "
            "was written. Providers are not stored on messages: a provider filter empties it.",
        ),
    }
    days = [d for d, *_ in per_day]
    context.update(
        figures=quality.feedback_headline(period, scope),
        charts={
            "distribution": charts.bars(
                [f"{r} ★" for r, _ in distribution], [n for _, n in distribution], "ratings"
            ),
            "per_day": charts.volume_and_line(
                days,
                [n for _, n, _ in per_day],
                [a for *_, a in per_day],
                "Ratings",
                "Average rating",
                "average ★",
                range=[0, 5.1],
                dtick=1,
            ),
            "temperature": charts.bars(
                [r["band"] for r in temperature],
                [r["average"] for r in temperature],
                "average ★",
                horizontal=True,
            ),
            "mistakes": charts.volume_and_line(
                [d for d, *_ in mistakes],
                [m for *_, m in mistakes],
                [quality.ratio(m, n) for _, n, m in mistakes],
                "Mistakes flagged",
                "Share of answers",
                "share of answers",
                tickformat=".1%",
            ),
        },
    )
    return render_or_export(request, "quality/feedback.html", tables, context, "quality-feedback")


# -- activity ------------------------------------------------------------------

USAGE_COLUMNS = [
    Column("chats", "Chats", "number"),
    Column("messages", "Messages", "number"),
    Column("active_users", "Active app users", "number"),
    Column("requests", "LLM requests", "number"),
    Column("tokens", "Tokens", "number"),
]


@staff_page(VIEW_PERMISSION)
def activity(request):
    filters = ActivityFilter(request.GET)
    period, scope, context = _context(filters, "Activity")
    active = quality.active_users_per_day(period, scope)
    new = quality.new_users_per_day(period, scope)
    volume = quality.chats_and_messages_per_day(period, scope)
    sessions = quality.sessions_per_day(period, scope)
    weeks = quality.active_users_per_week(period, scope)
    week_count, cohort_rows = quality.cohorts(period, scope)
    days = period.each_day()
    tables = {
        "weeks": lambda: Table(
            "weeks",
            "Active app users per week",
            [
                Column("week", "Week of", "date"),
                Column("users", "Active app users", "number"),
                Column("days", "Days in the period"),
            ],
            [{"week": w, "users": n, "days": f"{d} of 7"} for w, n, d in weeks],
        ),
        "months": lambda: Table(
            "months",
            "Active app users per month",
            [
                Column("month", "Month", "date"),
                Column("users", "Active app users", "number"),
                Column("days", "Days in the period"),
            ],
            [
                {"month": m, "users": n, "days": f"{d} of {length}"}
                for m, n, d, length in quality.active_users_per_month(period, scope)
            ],
        ),
        "cohorts": lambda: Table(
            "cohorts",
            "Returning app users by sign-up week",
            [
                Column("cohort", "Signed up in the week of", "date"),
                Column("users", "App users", "number"),
                *(Column(f"w{k}", f"Week {k}", "share") for k in range(week_count)),
            ],
            cohort_rows,
            note="Share of each week's new app users who wrote a message k weeks later "
            "(week 0: the sign-up week). Weeks run Monday to Sunday; the last may be partial.",
        ),
        "sources": lambda: Table(
            "sources",
            "Usage by source application",
            [Column("label", "Source"), *USAGE_COLUMNS],
            quality.usage_by_source(period, scope),
        ),
        "organizations": lambda: Table(
            "organizations",
            "Usage by organisation (top 20 by messages)",
            [Column("label", "Organisation"), *USAGE_COLUMNS],
            quality.usage_by_organization(period, scope),
            note="Chats and messages by the chat's organisation; LLM requests and tokens from "
            "the usage ledger's roll-up.",
        ),
    }
    context.update(
        figures=quality.activity_headline(period, scope),
        charts={
            "users": charts.lines(
                days,
                [
                    ("Active app users", [n for _, n in active]),
                    ("New app users", [n for _, n in new]),
                ],
                "app users",
            ),
            "volume": charts.volume_and_line(
                days,
                [c for _, c, _ in volume],
                [m for *_, m in volume],
                "Chats started",
                "Messages",
                "messages",
            ),
            "sessions": charts.volume_and_line(
                days,
                [n for _, n, _ in sessions],
                [None if s is None else s / 60 for *_, s in sessions],
                "Sessions",
                "Average length (min)",
                "minutes",
            ),
            "weeks": charts.bars(
                [w.isoformat() for w, *_ in weeks], [n for _, n, *_ in weeks], "active app users"
            ),
        },
    )
    return render_or_export(request, "quality/activity.html", tables, context, "quality-activity")


# -- text-to-SQL -----------------------------------------------------------------


@staff_page(VIEW_PERMISSION)
def text_to_sql(request):
    filters = QualityFilter(request.GET)
    period, scope, context = _context(filters, "Text-to-SQL")
    per_day = quality.queries_per_day(period, scope)
    bands = quality.rows_returned(period, scope)
    days = [d for d, *_ in per_day]
    tables = {
        "errors": lambda: Table(
            "errors",
            "Most frequent errors",
            [
                Column("error_message", "Error"),
                Column("queries", "Queries", "number"),
                Column("last", "Last seen", "datetime"),
            ],
            quality.frequent_errors(period, scope),
            link=lambda r: _transcript(r["chat_id"], r["message_id"]),
            link_keeps_query=False,
            note="Failed queries grouped by their error text; each opens the chat of the "
            "latest such query (none when it came through the API).",
        ),
        "rows": lambda: Table(
            "rows",
            "Rows returned",
            [
                Column("band", "Result size"),
                Column("queries", "Queries", "number"),
                Column("share", "Share", "share"),
            ],
            bands,
            note="Failed queries return no row count (\u201cnot recorded\u201d).",
        ),
        "slowest": lambda: Table(
            "slowest",
            "Slowest queries",
            [
                Column("question", "Question"),
                Column("execution_time", "Execution time", "duration"),
                Column("row_count", "Rows", "number"),
                Column("outcome", "Outcome"),
                Column("user", "App user"),
                Column("timestamp", "Asked", "datetime"),
            ],
            [
                {
                    "question": q.question,
                    "execution_time": q.execution_time,
                    "row_count": q.row_count,
                    "outcome": _outcome(q.success),
                    "user": str(q.user) if q.user else "anonymous",
                    "timestamp": q.timestamp,
                    "chat_id": q.chat_id,
                    "message_id": q.message_id,
                }
                for q in quality.slowest_queries(period, scope)
            ],
            link=lambda r: _transcript(r["chat_id"], r["message_id"]),
            link_keeps_query=False,
        ),
    }
    context.update(
        figures=quality.query_headline(period, scope),
        charts={
            "per_day": charts.stacked(
                days,
                [
                    ("Succeeded", [s for _, _, s, _, _ in per_day], "#74c476"),
                    ("Failed", [f for _, _, _, f, _ in per_day], "#fb6a4a"),
                    ("Outcome unknown", [n - s - f for _, n, s, f, _ in per_day], "#bdbdbd"),
                ],
                "queries",
            ),
            "time": charts.lines(
                days, [("Average execution time (s)", [t for *_, t in per_day])], "seconds"
            ),
            "rows": charts.bars(
                [b["band"] for b in bands],
                [b["queries"] for b in bands],
                "queries",
                horizontal=True,
            ),
        },
    )
    return render_or_export(
        request, "quality/text_to_sql.html", tables, context, "quality-text-to-sql"
    )


def _outcome(success):
    return {True: "succeeded", False: "failed"}.get(success, "unknown")
