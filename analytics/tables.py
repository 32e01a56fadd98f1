"""Tables of the quality, activity and text-to-SQL pages, declared once for
the HTML and the CSV: each a function of the page's request
(core.pages.views.PageRequest) that asks analytics.metrics for its rows
only, so that an export computes its own table and nothing else."""

from types import SimpleNamespace

from django.urls import reverse

from chats.views import transcript_url
from core.pages.figures import ratio
from core.pages.tables import Column, Table

from . import metrics

EXECUTIONS_URL = "quality:executions"
RUN_TIME_NOTE = (
    "No run time is stored: \u201cTo last update\u201d is updated_at − created_at of the "
    "execution (its first run to its last update, retries included), unknown where either "
    "is missing or both are equal."
)


def transcript(chat_id, message_id=None):
    """A chat's transcript, at one of its messages when given (None without a chat)."""
    if chat_id is None:
        return None
    if message_id is None:
        return reverse("review:transcript", args=[chat_id])
    return transcript_url(SimpleNamespace(chat_id=chat_id, pk=message_id))


def _row_transcript(row):
    return transcript(row["chat_id"], row["message_id"])


def bucket(n):
    return f"{n} or more" if n == metrics.EXECUTION_COUNT_BUCKETS else str(n)


def _outcome(success):
    return {True: "succeeded", False: "failed"}.get(success, "unknown")


# -- code execution ------------------------------------------------------------


def error_types(view):
    return Table(
        "error_types",
        "Failures by error type",
        [
            Column("error_type", "Error type"),
            Column("executions", "Failed executions", "number"),
            Column("agents", "Agents", "number"),
            Column("example", "Example"),
        ],
        metrics.failures_by_error_type(view.period, view.scope),
        link=lambda r: view.url(EXECUTIONS_URL, error_type=r["error_type"]),
        link_keeps_query=False,
        note="The exception class at the start of the last line of each stored error "
        "message (or the whole line); an execution counts once per type it shows.",
    )


def failing_agents(view):
    return Table(
        "agents",
        "Failures by agent",
        [
            Column("agent", "Agent"),
            Column("executions", "Failed", "number"),
            Column("share", "Share", "share"),
            Column("chats", "Chats", "number"),
        ],
        metrics.failures_by_agent(view.period, view.scope),
        link=lambda r: view.url(EXECUTIONS_URL, agent=r["agent"]),
        link_keeps_query=False,
        note="Agents named in failed_agents or as keys of error_messages; the share is of "
        "all failed executions (one may name several agents).",
    )


def per_chat(view):
    return Table(
        "per_chat",
        "Executions per chat",
        [Column("bucket", "Executions in the chat"), Column("chats", "Chats", "number")],
        [
            {"bucket": bucket(n), "chats": chats}
            for n, chats in metrics.executions_per_chat(view.period, view.scope)
        ],
    )


def success_by_model(view):
    return Table(
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
        metrics.success_by_model(view.period, view.scope),
    )


def busiest_chats(view):
    return Table(
        "busiest_chats",
        "Chats with the most executions",
        [
            Column("chat__title", "Chat"),
            Column("executions", "Executions", "number"),
            Column("failures", "Failed", "number"),
        ],
        metrics.busiest_chats(view.period, view.scope),
        link=lambda r: transcript(r["chat_id"]),
        link_keeps_query=False,
    )


def slowest_executions(view):
    return Table(
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
            for e in metrics.slowest_executions(view.period, view.scope)
        ],
        link=_row_transcript,
        link_keeps_query=False,
        note=RUN_TIME_NOTE,
    )


def most_retried(view):
    return Table(
        "most_retried",
        "Most retried answers",
        [
            Column("message__chat__title", "Chat"),
            Column("runs", "Executions", "number"),
            Column("changed", "With changed code", "number"),
            Column("failures", "Failed", "number"),
            Column("last", "Last run", "datetime"),
        ],
        metrics.most_retried(view.period, view.scope),
        link=lambda r: transcript(r["message__chat_id"], r["message_id"]),
        link_keeps_query=False,
        note="Answers whose code ran more than once, or whose latest code differs from "
        "the initial code.",
    )


CODE = {
    "error_types": error_types,
    "agents": failing_agents,
    "per_chat": per_chat,
    "models": success_by_model,
    "busiest_chats": busiest_chats,
    "slowest": slowest_executions,
    "most_retried": most_retried,
}

EXECUTION_COLUMNS = [
    Column("created_at", "Created", "datetime"),
    Column("chat", "Chat"),
    Column("user", "App user"),
    Column("model_name", "Model"),
    Column("outcome", "Outcome"),
    Column("errors", "Errors (agent: type)"),
    Column("run_time", "To last update", "duration"),
]


def execution_rows(executions):
    errors = metrics.execution_errors(e.pk for e in executions)
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


def executions(view):
    """One group of the code page's executions (options: outcome, error_type,
    agent), a page of them or, exported, the first EXPORT_LIMIT."""
    group = view.options["group"]
    found = metrics.execution_list(view.period, view.scope, *group)
    return Table(
        "executions",
        "Executions",
        EXECUTION_COLUMNS,
        execution_rows(view.rows_of(found)),
        link=_row_transcript,
        link_keeps_query=False,
        note="Each row opens the answer in its chat's transcript. " + RUN_TIME_NOTE,
    )


# -- feedback ------------------------------------------------------------------


def queue_url(period, scope, row):
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


def distribution(view):
    found = metrics.rating_distribution(view.period, view.scope)
    total = sum(n for _, n in found)
    return Table(
        "distribution",
        "Rating distribution",
        [
            Column("stars", "Rating"),
            Column("ratings", "Ratings", "number"),
            Column("share", "Share", "share"),
        ],
        [{"stars": "★" * rating, "ratings": n, "share": ratio(n, total)} for rating, n in found],
    )


def rated_models(view):
    return Table(
        "models",
        "Lowest-rated models",
        [Column("model_name", "Model"), Column("model_provider", "Provider"), *RATING_COLUMNS],
        metrics.rating_by_model(view.period, view.scope),
        link=lambda r: queue_url(view.period, view.scope, r),
        link_keeps_query=False,
        note="Lowest average first; each model opens its ratings in the feedback queue.",
    )


def rated_agents(view):
    return Table(
        "agents",
        "Lowest-rated agents",
        [Column("agent", "Agent"), Column("known_from", "Agent known from"), *RATING_COLUMNS],
        metrics.rating_by_agent(view.period, view.scope),
        note="Only the DS-ML agent stores an answer's agent (\u201cmessage agent\u201d). "
        "Auto-Analyst does not; for its answers an agent is counted when the answer's "
        "code by that agent failed (\u201ccode failed\u201d), so those rows read "
        "\u201cratings of answers whose code by this agent failed\u201d.",
    )


def temperature(view):
    return Table(
        "temperature",
        "Ratings by temperature",
        [Column("band", "Temperature"), *RATING_COLUMNS],
        metrics.rating_by_temperature(view.period, view.scope),
        note="The temperature stored with the feedback (the rated call's setting).",
    )


def max_tokens(view):
    return Table(
        "max_tokens",
        "Ratings by max tokens",
        [Column("band", "Max tokens"), *RATING_COLUMNS],
        metrics.rating_by_max_tokens(view.period, view.scope),
    )


def mistakes(view):
    return Table(
        "mistakes",
        "Mistakes flagged by model",
        [
            Column("model_name", "Model"),
            Column("answers", "Answers", "number"),
            Column("mistakes", "Flagged", "number"),
            Column("share", "Share", "share"),
        ],
        metrics.mistakes_by_model(view.period, view.scope),
        note="Assistant messages that carry a model (AI Chat v2), by the day the answer "
        "was written. Providers are not stored on messages: a provider filter empties it.",
    )


FEEDBACK = {
    "distribution": distribution,
    "models": rated_models,
    "agents": rated_agents,
    "temperature": temperature,
    "max_tokens": max_tokens,
    "mistakes": mistakes,
}


# -- activity ------------------------------------------------------------------

USAGE_COLUMNS = [
    Column("chats", "Chats", "number"),
    Column("messages", "Messages", "number"),
    Column("active_users", "Active app users", "number"),
    Column("requests", "LLM requests", "number"),
    Column("tokens", "Tokens", "number"),
]


def weeks(view):
    return Table(
        "weeks",
        "Active app users per week",
        [
            Column("week", "Week of", "date"),
            Column("users", "Active app users", "number"),
            Column("days", "Days in the period"),
        ],
        [
            {"week": w, "users": n, "days": f"{d} of 7"}
            for w, n, d in metrics.active_users_per_week(view.period, view.scope)
        ],
    )


def months(view):
    return Table(
        "months",
        "Active app users per month",
        [
            Column("month", "Month", "date"),
            Column("users", "Active app users", "number"),
            Column("days", "Days in the period"),
        ],
        [
            {"month": m, "users": n, "days": f"{d} of {length}"}
            for m, n, d, length in metrics.active_users_per_month(view.period, view.scope)
        ],
    )


def cohorts(view):
    week_count, rows = metrics.cohorts(view.period, view.scope)
    return Table(
        "cohorts",
        "Returning app users by sign-up week",
        [
            Column("cohort", "Signed up in the week of", "date"),
            Column("users", "App users", "number"),
            *(Column(f"w{k}", f"Week {k}", "share") for k in range(week_count)),
        ],
        rows,
        note="Share of each week's new app users who wrote a message k weeks later "
        "(week 0: the sign-up week). Weeks run Monday to Sunday; the last may be partial.",
    )


def sources(view):
    return Table(
        "sources",
        "Usage by source application",
        [Column("label", "Source"), *USAGE_COLUMNS],
        metrics.usage_by_source(view.period, view.scope),
    )


def organizations(view):
    return Table(
        "organizations",
        "Usage by organisation (top 20 by messages)",
        [Column("label", "Organisation"), *USAGE_COLUMNS],
        metrics.usage_by_organization(view.period, view.scope),
        note="Chats and messages by the chat's organisation; LLM requests and tokens from "
        "the usage ledger's roll-up.",
    )


ACTIVITY = {
    "weeks": weeks,
    "months": months,
    "cohorts": cohorts,
    "sources": sources,
    "organizations": organizations,
}


# -- text-to-SQL -----------------------------------------------------------------


def frequent_errors(view):
    return Table(
        "errors",
        "Most frequent errors",
        [
            Column("error_message", "Error"),
            Column("queries", "Queries", "number"),
            Column("last", "Last seen", "datetime"),
        ],
        metrics.frequent_errors(view.period, view.scope),
        link=_row_transcript,
        link_keeps_query=False,
        note="Failed queries grouped by their error text; each opens the chat of the "
        "latest such query (none when it came through the API).",
    )


def result_sizes(view):
    return Table(
        "rows",
        "Rows returned",
        [
            Column("band", "Result size"),
            Column("queries", "Queries", "number"),
            Column("share", "Share", "share"),
        ],
        metrics.rows_returned(view.period, view.scope),
        note="Failed queries return no row count (\u201cnot recorded\u201d).",
    )


def slowest_queries(view):
    return Table(
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
            for q in metrics.slowest_queries(view.period, view.scope)
        ],
        link=_row_transcript,
        link_keeps_query=False,
    )


TEXT_TO_SQL = {"errors": frequent_errors, "rows": result_sizes, "slowest": slowest_queries}
