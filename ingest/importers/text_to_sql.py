"""The text-to-SQL analytics app (seeds/text-to-sql-schema.md).

``query_analytics`` splits in two: the query-level columns land in
``usage.QueryAnalytics``, its LLM call (tokens, ``llm_model``,
``llm_cost_estimate``) in a ``usage.ModelUsage`` ledger row linked by
``QueryAnalytics.usage``, so all LLM spend is in one ledger.
"""

from chats.models import Chat, Message
from core.models import (
    ApiKey,
    AppUser,
    AuditLog,
    DatabaseConnection,
    DatabaseSchema,
    Event,
    QueryTemplate,
    RefreshToken,
    SystemConfig,
    UserSession,
)
from usage.models import PerformanceMetric, QueryAnalytics

from .converters import (
    boolean,
    decimal,
    integer,
    json_value,
    number,
    provider_of,
    role,
    timestamp,
)
from .spec import Col, Fk, Mapping, Table


def query_usage(values, usage):
    """The LLM call behind a question: present when the row names a model,
    tokens or a cost. Priced from ModelPrice when the cost is NULL."""
    if all(v is None for v in usage.values()):
        return None
    model_name = usage.get("model_name") or "unknown"
    return {
        **usage,
        "model_name": model_name,
        "provider": provider_of(model_name),
        "user_id": values.get("user_id"),
        "timestamp": values.get("timestamp") or values.get("created_at"),
        # The source timed the SQL, not the LLM call.
        "request_time_ms": None,
    }


MAPPING = Mapping(
    kind="text_to_sql",
    identifying=("users", "chat_sessions", "chat_messages", "query_analytics"),
    ignored={"alembic_version": "migration bookkeeping, replaced by Django migrations"},
    tables=(
        Table(
            "users",
            AppUser,
            pk="id",
            updated_at="updated_at",
            columns={
                "email": Col("email"),
                "password_hash": Col("password_hash"),
                "full_name": Col("full_name"),
                "company": Col("company"),
                "role": Col("role"),
                "is_active": Col("is_active", boolean),
                "created_at": Col("created_at", timestamp),
                "updated_at": Col("updated_at", timestamp),
                "last_login": Col("last_login", timestamp),
                "token_usage": Col("token_usage", integer),
                "preferences": Col("preferences", json_value),
            },
        ),
        Table(
            "refresh_tokens",
            RefreshToken,
            pk="id",
            columns={
                "user_id": Fk("user", AppUser),
                "token_hash": Col("token_hash"),
                "expires_at": Col("expires_at", timestamp),
                "revoked_at": Col("revoked_at", timestamp),
                "is_active": Col("is_active", boolean),
                "is_revoked": Col("is_revoked", boolean),
                "device_info": Col("device_info", json_value),
                "created_at": Col("created_at", timestamp),
            },
        ),
        Table(
            "api_keys",
            ApiKey,
            pk="id",
            columns={
                "user_id": Fk("user", AppUser),
                "key_name": Col("key_name"),
                "key_hash": Col("key_hash"),
                "key_prefix": Col("key_prefix"),
                "permissions": Col("permissions", json_value),
                "is_active": Col("is_active", boolean),
                "created_at": Col("created_at", timestamp),
                "expires_at": Col("expires_at", timestamp),
                "last_used": Col("last_used", timestamp),
                "usage_count": Col("usage_count", integer),
            },
        ),
        Table(
            "chat_sessions",
            Chat,
            pk="id",
            updated_at="updated_at",
            columns={
                "user_id": Fk("user", AppUser),
                "title": Col("title"),
                "is_active": Col("is_active", boolean),
                "created_at": Col("created_at", timestamp),
                "updated_at": Col("updated_at", timestamp),
                "last_message_at": Col("last_message_at", timestamp),
                "message_count": Col("message_count", integer),
            },
        ),
        Table(
            "chat_messages",
            Message,
            pk="id",
            defining=frozenset({"message_type", "content"}),
            columns={
                "session_id": Fk("chat", Chat),
                "message_type": Col("role", role),
                "content": Col("content"),
                "query_id": Col("query_id"),
                "sql_query": Col("sql_query"),
                "query_result": Col("query_result", json_value),
                "execution_time": Col("execution_time", number),
                "error_message": Col("error_message"),
                "timestamp": Col("created_at", timestamp),
                "sequence_number": Col("sequence_number", integer),
            },
        ),
        Table(
            "query_analytics",
            QueryAnalytics,
            pk="id",
            columns={
                "query_id": Col("query_id"),
                "user_id": Fk("user", AppUser),
                "question": Col("question"),
                "sql_query": Col("sql_query"),
                "execution_time": Col("execution_time", number),
                "row_count": Col("row_count", integer),
                "success": Col("success", boolean),
                "error_message": Col("error_message"),
                "chart_type": Col("chart_type"),
                "prompt_tokens": Col("usage.prompt_tokens", integer),
                "completion_tokens": Col("usage.completion_tokens", integer),
                "total_tokens": Col("usage.total_tokens", integer),
                "llm_model": Col("usage.model_name"),
                "llm_cost_estimate": Col("usage.cost", decimal),
                "timestamp": Col("timestamp", timestamp),
                "created_at": Col("created_at", timestamp),
            },
            ledger=query_usage,
            ledger_link="usage",
        ),
        Table(
            "user_sessions",
            UserSession,
            pk="id",
            columns={
                "user_id": Fk("user", AppUser),
                "session_start": Col("session_start", timestamp),
                "session_end": Col("session_end", timestamp),
                "ip_address": Col("ip_address"),
                "user_agent": Col("user_agent"),
                "queries_count": Col("queries_count", integer),
                "is_active": Col("is_active", boolean),
            },
        ),
        Table(
            "database_connections",
            DatabaseConnection,
            pk="id",
            updated_at="updated_at",
            columns={
                "user_id": Fk("user", AppUser),
                "connection_name": Col("connection_name"),
                "db_type": Col("db_type"),
                "db_host": Col("db_host"),
                "db_port": Col("db_port", integer),
                "db_user": Col("db_user"),
                "encrypted_db_password": Col("encrypted_db_password"),
                "db_name": Col("db_name"),
                "created_at": Col("created_at", timestamp),
                "updated_at": Col("updated_at", timestamp),
            },
        ),
        Table(
            "database_schemas",
            DatabaseSchema,
            pk="id",
            updated_at="last_updated",
            columns={
                "database_name": Col("database_name"),
                "table_name": Col("table_name"),
                "schema_info": Col("schema_info", json_value),
                "last_updated": Col("last_updated", timestamp),
                "row_count": Col("row_count", integer),
                "table_size": Col("table_size", integer),
            },
        ),
        Table(
            "audit_logs",
            AuditLog,
            pk="id",
            columns={
                "user_id": Fk("user", AppUser),
                "action": Col("action"),
                "resource_type": Col("resource_type"),
                "resource_id": Col("resource_id"),
                "old_values": Col("old_values", json_value),
                "new_values": Col("new_values", json_value),
                "ip_address": Col("ip_address"),
                "user_agent": Col("user_agent"),
                "timestamp": Col("timestamp", timestamp),
                "success": Col("success", boolean),
                "error_message": Col("error_message"),
            },
        ),
        Table(
            "events",
            Event,
            pk="id",
            columns={
                "event_type": Col("event_type"),
                "user_id": Fk("user", AppUser),
                "event_data": Col("event_data", json_value),
                "timestamp": Col("timestamp", timestamp),
                "ip_address": Col("ip_address"),
                "user_agent": Col("user_agent"),
                "session_id": Col("session_id"),
            },
        ),
        Table(
            "performance_metrics",
            PerformanceMetric,
            pk="id",
            columns={
                "metric_name": Col("metric_name"),
                "metric_value": Col("metric_value", number),
                "metric_unit": Col("metric_unit"),
                "timestamp": Col("timestamp", timestamp),
                "additional_data": Col("additional_data", json_value),
            },
        ),
        Table(
            "query_templates",
            QueryTemplate,
            pk="id",
            updated_at="updated_at",
            columns={
                "user_id": Fk("user", AppUser),
                "name": Col("name"),
                "description": Col("description"),
                "question_template": Col("question_template"),
                "sql_template": Col("sql_template"),
                "category": Col("category"),
                "is_public": Col("is_public", boolean),
                "is_verified": Col("is_verified", boolean),
                "usage_count": Col("usage_count", integer),
                "created_at": Col("created_at", timestamp),
                "updated_at": Col("updated_at", timestamp),
            },
        ),
        Table(
            "system_config",
            SystemConfig,
            pk="id",
            updated_at="updated_at",
            columns={
                "config_key": Col("config_key"),
                "config_value": Col("config_value", json_value),
                "description": Col("description"),
                "is_sensitive": Col("is_sensitive", boolean),
                "created_at": Col("created_at", timestamp),
                "updated_at": Col("updated_at", timestamp),
                "updated_by": Col("updated_by"),
            },
        ),
    ),
)
