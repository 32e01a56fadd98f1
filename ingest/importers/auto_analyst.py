"""Auto-Analyst (seeds/auto-analyst-schema.md): users, chats, messages, the
model-usage ledger, code executions, feedback, deep-analysis reports, agent
templates and template preferences. Every key is an INTEGER primary key."""

from chats.models import Chat, CodeExecution, Message, MessageFeedback
from core.models import AgentTemplate, AppUser, UserTemplatePreference
from reports.models import DeepAnalysisReport
from usage.models import ModelUsage

from .converters import boolean, decimal, integer, json_value, number, role, timestamp
from .spec import Col, Fk, Mapping, Table

# A ledger row is its model, tokens, cost and time: an invalid or impossible
# one refuses the row (core.bounds); the sizes and flags are droppable.
LEDGER_DEFINING = frozenset(
    {"model_name", "provider", "prompt_tokens", "completion_tokens", "total_tokens", "cost"}
    | {"timestamp"}
)

MAPPING = Mapping(
    kind="auto_analyst",
    identifying=("users", "chats", "messages", "model_usage"),
    tables=(
        Table(
            "users",
            AppUser,
            pk="user_id",
            columns={
                "username": Col("username"),
                "email": Col("email"),
                "created_at": Col("created_at", timestamp),
            },
        ),
        Table(
            "chats",
            Chat,
            pk="chat_id",
            columns={
                "user_id": Fk("user", AppUser),
                "title": Col("title"),
                "created_at": Col("created_at", timestamp),
            },
        ),
        Table(
            "messages",
            Message,
            pk="message_id",
            defining=frozenset({"sender", "content"}),
            columns={
                "chat_id": Fk("chat", Chat),
                "sender": Col("role", role),
                "content": Col("content"),
                "timestamp": Col("created_at", timestamp),
            },
        ),
        Table(
            "model_usage",
            ModelUsage,
            pk="usage_id",
            defining=LEDGER_DEFINING,
            columns={
                "user_id": Fk("user", AppUser),
                "chat_id": Fk("chat", Chat),
                "model_name": Col("model_name"),
                "provider": Col("provider"),
                "prompt_tokens": Col("prompt_tokens", integer),
                "completion_tokens": Col("completion_tokens", integer),
                "total_tokens": Col("total_tokens", integer),
                "query_size": Col("query_size", integer),
                "response_size": Col("response_size", integer),
                "cost": Col("cost", decimal),
                "timestamp": Col("timestamp", timestamp),
                "is_streaming": Col("is_streaming", boolean),
                "request_time_ms": Col("request_time_ms", integer),
            },
        ),
        Table(
            "code_executions",
            CodeExecution,
            pk="execution_id",
            updated_at="updated_at",
            columns={
                "message_id": Fk("message", Message),
                "chat_id": Fk("chat", Chat),
                "user_id": Fk("user", AppUser),
                "initial_code": Col("initial_code"),
                "latest_code": Col("latest_code"),
                "is_successful": Col("is_successful", boolean),
                "output": Col("output"),
                "model_provider": Col("model_provider"),
                "model_name": Col("model_name"),
                # TEXT columns holding JSON: invalid JSON is dropped, the run kept.
                "failed_agents": Col("failed_agents", json_value),
                "error_messages": Col("error_messages", json_value),
                "created_at": Col("created_at", timestamp),
                "updated_at": Col("updated_at", timestamp),
            },
        ),
        Table(
            "message_feedback",
            MessageFeedback,
            pk="feedback_id",
            updated_at="updated_at",
            defining=frozenset({"rating"}),
            columns={
                "message_id": Fk("message", Message),
                "rating": Col("rating", integer),
                "model_name": Col("model_name"),
                "model_provider": Col("model_provider"),
                "temperature": Col("temperature", number),
                "max_tokens": Col("max_tokens", integer),
                "created_at": Col("created_at", timestamp),
                "updated_at": Col("updated_at", timestamp),
            },
        ),
        Table(
            "deep_analysis_reports",
            DeepAnalysisReport,
            pk="report_id",
            updated_at="updated_at",
            # A report is its goal and where it stands (no status would read "pending").
            defining=frozenset({"goal", "status"}),
            columns={
                "report_uuid": Col("report_uuid"),
                "user_id": Fk("user", AppUser),
                "goal": Col("goal"),
                "status": Col("status"),
                "start_time": Col("start_time", timestamp),
                "end_time": Col("end_time", timestamp),
                "duration_seconds": Col("duration_seconds", integer),
                "deep_questions": Col("deep_questions"),
                "deep_plan": Col("deep_plan"),
                "summaries": Col("summaries", json_value),
                "analysis_code": Col("analysis_code"),
                "plotly_figures": Col("plotly_figures", json_value),
                "synthesis": Col("synthesis", json_value),
                "final_conclusion": Col("final_conclusion"),
                "html_report": Col("html_report"),
                "progress_percentage": Col("progress_percentage", integer),
                "total_tokens_used": Col("total_tokens_used", integer),
                "estimated_cost": Col("estimated_cost", decimal),
                "credits_consumed": Col("credits_consumed", integer),
                "created_at": Col("created_at", timestamp),
                "updated_at": Col("updated_at", timestamp),
            },
        ),
        Table(
            "agent_templates",
            AgentTemplate,
            pk="template_id",
            columns={
                "template_name": Col("template_name"),
                "display_name": Col("display_name"),
                "description": Col("description"),
                "prompt_template": Col("prompt_template"),
                "icon_url": Col("icon_url"),
                "category": Col("category"),
                "is_premium_only": Col("is_premium_only", boolean),
                "variant_type": Col("variant_type"),
                "is_active": Col("is_active", boolean),
                "created_at": Col("created_at", timestamp),
            },
        ),
        Table(
            "user_template_preferences",
            UserTemplatePreference,
            pk="preference_id",
            columns={
                "user_id": Fk("user", AppUser),
                "template_id": Fk("template", AgentTemplate),
                "is_enabled": Col("is_enabled", boolean),
                "usage_count": Col("usage_count", integer),
                "last_used_at": Col("last_used_at", timestamp),
                "created_at": Col("created_at", timestamp),
            },
        ),
    ),
)
