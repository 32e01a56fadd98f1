"""A chat as a reviewer reads it: one page of messages with everything attached.

A fixed number of queries whatever the chat's length: the chat, the page's
messages (with feedback and flagger joined), their code executions, the
chat's files and analysis results, and its usage totals.
"""

import difflib
import json
from dataclasses import dataclass

from django.db.models import Count, Prefetch, Q, Sum

from .models import Chat, CodeExecution, Message
from .rendering import render_many

PAGE_SIZE = 100
RESULT_ROWS_SHOWN = 50

METADATA_FIELDS = (
    ("persona", "persona"),
    ("tone", "tone"),
    ("behavior", "behaviour"),
    ("context_type", "context"),
    ("agent_type", "agent"),
    ("turn_number", "turn"),
    ("confidence", "confidence"),
    ("signal_strength", "signal strength"),
    ("context_clarity", "context clear"),
    ("needs_knowledge", "needs knowledge"),
)


def code_diff(initial, latest):
    """[(css class, line)] of a unified diff from the first to the last code."""
    if not initial or not latest or initial == latest:
        return []
    lines = difflib.unified_diff(
        initial.splitlines(), latest.splitlines(), "initial", "latest", lineterm=""
    )
    classes = {"+": "added", "-": "removed", "@": "hunk"}
    # The "--- initial" / "+++ latest" file headers are not removed/added lines.
    return [
        ("header" if n < 2 else classes.get(line[:1], "context"), line)
        for n, line in enumerate(lines)
    ]


def result_table(result):
    """A text-to-SQL result as (columns, rows, more) or None to show JSON."""
    if isinstance(result, dict) and isinstance(result.get("columns"), list):
        rows = result.get("rows") or result.get("data") or []
        if isinstance(rows, list):
            return (
                result["columns"],
                rows[:RESULT_ROWS_SHOWN],
                max(0, len(rows) - RESULT_ROWS_SHOWN),
            )
    if isinstance(result, list) and result and all(isinstance(r, dict) for r in result):
        columns = list(result[0])
        rows = [[r.get(c) for c in columns] for r in result[:RESULT_ROWS_SHOWN]]
        return columns, rows, max(0, len(result) - RESULT_ROWS_SHOWN)
    return None


def pretty(value):
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@dataclass
class ExecutionView:
    execution: CodeExecution
    diff: list
    errors: list  # [(agent, message)]


@dataclass
class MessageView:
    message: Message
    html: str
    metadata: list  # [(label, value)]
    feedback: object
    executions: list
    result: tuple | None
    result_json: str | None


def _errors(error_messages, failed_agents=None):
    if isinstance(error_messages, dict):
        # jsonb (PostgreSQL) does not keep key order: show the errors in the
        # order the agents failed, any others after them by name.
        agents = failed_agents if isinstance(failed_agents, list) else []
        order = {str(agent): n for n, agent in reversed(list(enumerate(agents)))}
        errors = [(str(agent), str(text)) for agent, text in error_messages.items()]
        return sorted(errors, key=lambda error: (order.get(error[0], len(order)), error[0]))
    if error_messages:
        return [("", pretty(error_messages))]
    return []


def _view(message, html):
    feedback = getattr(message, "feedback", None)  # joined; None when absent
    metadata = [
        (label, getattr(message, name))
        for name, label in METADATA_FIELDS
        if getattr(message, name) not in (None, "", False)
    ]
    table = result_table(message.query_result) if message.query_result is not None else None
    return MessageView(
        message=message,
        html=html,
        metadata=metadata,
        feedback=feedback,
        executions=[
            ExecutionView(
                e,
                code_diff(e.initial_code, e.latest_code),
                _errors(e.error_messages, e.failed_agents),
            )
            for e in message.code_executions.all()
        ],
        result=table,
        result_json=pretty(message.query_result)
        if message.query_result is not None and table is None
        else None,
    )


def page_of(chat, page=None, at=None):
    """(page, pages, total, [MessageView]): one page of a chat's messages in order.

    ``at`` (a message id) picks the page that holds that message.
    """
    messages = Message.objects.filter(chat=chat).order_by("created_at", "id")
    total = messages.count()
    pages = max(1, -(-total // PAGE_SIZE))
    if at is not None:
        target = messages.filter(pk=at).values_list("created_at", flat=True).first()
        if target is not None:
            before = messages.filter(
                Q(created_at__lt=target) | Q(created_at=target, pk__lt=at)
            ).count()
            page = before // PAGE_SIZE + 1
    page = min(max(int(page or 1), 1), pages)
    rows = list(
        messages.select_related("feedback", "mistake_flagged_by").prefetch_related(
            Prefetch("code_executions", queryset=CodeExecution.objects.order_by("created_at", "id"))
        )[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    )
    html = render_many({m.content for m in rows})
    return page, pages, total, [_view(m, html[m.content]) for m in rows]


def chat_extras(chat):
    """The chat's files, analysis results and usage totals."""
    files = list(chat.uploaded_files.order_by("upload_timestamp", "id"))
    # The apps above chats attach analysis results (reports) and ledger rows
    # (usage) to a chat; they are read through those reverse relations, so
    # chats imports neither app.
    results = list(chat.analysis_results.select_related("file").order_by("created_at"))
    usage = list(
        chat.usage_records.order_by()
        .values("model_name", "provider")
        .annotate(
            requests=Count("id"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cost=Sum("cost"),
        )
        .order_by("model_name")
    )
    totals = {
        "requests": sum(u["requests"] for u in usage),
        "prompt": sum(u["prompt"] or 0 for u in usage),
        "completion": sum(u["completion"] or 0 for u in usage),
        "cost": sum((u["cost"] or 0) for u in usage),
    }
    return {
        "files": files,
        "results": [(r, pretty(r.result_data)) for r in results],
        "usage": usage,
        "usage_totals": totals,
    }


def get_chat(pk):
    return Chat.objects.select_related("user", "organization", "source").get(pk=pk)
