"""Source databases of the four analyst applications, for the importer tests.

``build(kind, connection, dialect)`` creates the tables and columns of the
kind's schema document (shared/seeds/…) and fills them with a handful of
rows, awkward ones included: NULLs, anonymous chats, unicode, times at
23:59:59 and 00:00:00, zero and NULL costs, huge token counts, and the rows
the unified schema must refuse, listed in ``BAD_ROWS`` with a word of their
expected reason, and the values it must drop while keeping their rows, in
``DROPPED``. ``CHANGES`` adds and changes rows for the incremental tests.

The same DDL serves SQLite and PostgreSQL (``dialect``): types in braces
are translated, and PostgreSQL gets no REFERENCES clauses so that the
orphan rows can be written there too (SQLite does not enforce them by
default). Check constraints the schema documents are kept where they do not
forbid a bad row the tests need (ai-chat-v2's role check is kept).
"""

import re
import sqlite3
from contextlib import contextmanager

import psycopg
import psycopg.types.string
from django.conf import settings

KINDS = ("auto_analyst", "ds_ml_agent", "text_to_sql", "ai_chat_v2")

TYPES = {
    "sqlite": {"DATETIME": "DATETIME", "TIMESTAMPTZ": "DATETIME", "UUID": "VARCHAR(36)"},
    "postgres": {
        "DATETIME": "TIMESTAMP",
        "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE",
        "UUID": "UUID",
    },
}

DDL = {
    # seeds/auto-analyst-schema.md (+ -design.md): INTEGER keys, TEXT JSON columns.
    "auto_analyst": """
CREATE TABLE users (
    user_id INTEGER PRIMARY KEY,
    username VARCHAR NOT NULL UNIQUE,
    email VARCHAR NOT NULL UNIQUE,
    created_at {DATETIME}
);
CREATE TABLE chats (
    chat_id INTEGER PRIMARY KEY,
    user_id INTEGER REFERENCES users(user_id) ON DELETE CASCADE,
    title VARCHAR DEFAULT 'New Chat',
    created_at {DATETIME}
);
CREATE TABLE messages (
    message_id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL REFERENCES chats(chat_id) ON DELETE CASCADE,
    sender VARCHAR NOT NULL,
    content TEXT NOT NULL,
    timestamp {DATETIME}
);
CREATE TABLE model_usage (
    usage_id INTEGER PRIMARY KEY,
    user_id INTEGER REFERENCES users(user_id) ON DELETE SET NULL,
    chat_id INTEGER REFERENCES chats(chat_id) ON DELETE SET NULL,
    model_name VARCHAR(100) NOT NULL,
    provider VARCHAR(50) NOT NULL,
    prompt_tokens BIGINT DEFAULT 0,
    completion_tokens BIGINT DEFAULT 0,
    total_tokens BIGINT DEFAULT 0,
    query_size INTEGER DEFAULT 0,
    response_size INTEGER DEFAULT 0,
    cost FLOAT DEFAULT 0.0,
    timestamp {DATETIME},
    is_streaming BOOLEAN DEFAULT FALSE,
    request_time_ms INTEGER DEFAULT 0
);
CREATE TABLE code_executions (
    execution_id INTEGER PRIMARY KEY,
    message_id INTEGER REFERENCES messages(message_id) ON DELETE CASCADE,
    chat_id INTEGER REFERENCES chats(chat_id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(user_id) ON DELETE SET NULL,
    initial_code TEXT,
    latest_code TEXT,
    is_successful BOOLEAN DEFAULT FALSE,
    output TEXT,
    model_provider VARCHAR(50),
    model_name VARCHAR(100),
    failed_agents TEXT,
    error_messages TEXT,
    created_at {DATETIME},
    updated_at {DATETIME}
);
CREATE TABLE message_feedback (
    feedback_id INTEGER PRIMARY KEY,
    message_id INTEGER REFERENCES messages(message_id) ON DELETE CASCADE,
    rating INTEGER,
    model_name VARCHAR(100),
    model_provider VARCHAR(50),
    temperature FLOAT,
    max_tokens INTEGER,
    created_at {DATETIME},
    updated_at {DATETIME}
);
CREATE TABLE deep_analysis_reports (
    report_id INTEGER PRIMARY KEY,
    report_uuid VARCHAR(100) NOT NULL UNIQUE,
    user_id INTEGER REFERENCES users(user_id) ON DELETE CASCADE,
    goal TEXT NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'pending',
    start_time {DATETIME},
    end_time {DATETIME},
    duration_seconds INTEGER,
    deep_questions TEXT,
    deep_plan TEXT,
    summaries JSON,
    analysis_code TEXT,
    plotly_figures JSON,
    synthesis JSON,
    final_conclusion TEXT,
    html_report TEXT,
    progress_percentage INTEGER DEFAULT 0,
    total_tokens_used INTEGER DEFAULT 0,
    estimated_cost FLOAT DEFAULT 0.0,
    credits_consumed INTEGER DEFAULT 0,
    created_at {DATETIME},
    updated_at {DATETIME}
);
CREATE TABLE agent_templates (
    template_id INTEGER PRIMARY KEY,
    template_name VARCHAR(100) NOT NULL UNIQUE,
    display_name VARCHAR(200),
    description TEXT NOT NULL,
    prompt_template TEXT NOT NULL,
    icon_url VARCHAR(500),
    category VARCHAR(50),
    is_premium_only BOOLEAN DEFAULT FALSE,
    variant_type VARCHAR(20) DEFAULT 'individual',
    is_active BOOLEAN DEFAULT TRUE,
    created_at {DATETIME}
);
CREATE TABLE user_template_preferences (
    preference_id INTEGER PRIMARY KEY,
    user_id INTEGER REFERENCES users(user_id) ON DELETE CASCADE,
    template_id INTEGER REFERENCES agent_templates(template_id) ON DELETE CASCADE,
    is_enabled BOOLEAN DEFAULT TRUE,
    usage_count INTEGER DEFAULT 0,
    last_used_at {DATETIME},
    created_at {DATETIME},
    UNIQUE (user_id, template_id)
);
CREATE INDEX idx_messages_chat_timestamp ON messages(chat_id, timestamp DESC);
CREATE INDEX idx_model_usage_user_time ON model_usage(user_id, timestamp DESC);
""",
    # seeds/ds-ml-agent-schema.md: string session ids, integer ids elsewhere.
    "ds_ml_agent": """
CREATE TABLE chatbot_sessions (
    id VARCHAR PRIMARY KEY,
    org_id VARCHAR NOT NULL,
    user_id VARCHAR,
    starred BOOLEAN DEFAULT FALSE,
    created_at {DATETIME},
    updated_at {DATETIME},
    expires_at {DATETIME},
    is_active BOOLEAN DEFAULT TRUE,
    session_metadata JSON
);
CREATE INDEX ix_chatbot_sessions_org_id ON chatbot_sessions(org_id);
CREATE TABLE chatbot_conversation_states (
    id INTEGER PRIMARY KEY,
    session_id VARCHAR REFERENCES chatbot_sessions(id) ON DELETE CASCADE,
    turn_number INTEGER,
    user_message TEXT,
    agent_response TEXT,
    agent_type VARCHAR,
    created_at {DATETIME},
    context_data JSON
);
CREATE TABLE chatbot_uploaded_files (
    id INTEGER PRIMARY KEY,
    session_id VARCHAR REFERENCES chatbot_sessions(id) ON DELETE CASCADE,
    filename VARCHAR,
    file_path VARCHAR(500),
    file_type VARCHAR,
    file_size INTEGER,
    upload_timestamp {DATETIME},
    is_processed BOOLEAN DEFAULT FALSE,
    file_metadata JSON
);
CREATE TABLE chatbot_analysis_results (
    id INTEGER PRIMARY KEY,
    session_id VARCHAR REFERENCES chatbot_sessions(id) ON DELETE CASCADE,
    analysis_type VARCHAR,
    file_id INTEGER REFERENCES chatbot_uploaded_files(id),
    result_data JSON,
    visualizations JSON,
    created_at {DATETIME},
    result_metadata JSON
);
""",
    # seeds/text-to-sql-schema.md: UUID (VARCHAR(36)) keys for what users own,
    # integer keys for the logs and settings tables.
    "text_to_sql": """
CREATE TABLE users (
    id VARCHAR(36) PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE,
    password_hash VARCHAR(255) NOT NULL,
    full_name VARCHAR(100) NOT NULL,
    company VARCHAR(100),
    role VARCHAR(20) NOT NULL,
    is_active BOOLEAN NOT NULL,
    created_at {DATETIME} NOT NULL,
    updated_at {DATETIME},
    last_login {DATETIME},
    token_usage INTEGER NOT NULL,
    preferences JSON
);
CREATE TABLE refresh_tokens (
    id VARCHAR(36) PRIMARY KEY,
    user_id VARCHAR(36) REFERENCES users(id),
    token_hash VARCHAR(255) UNIQUE,
    expires_at {DATETIME},
    revoked_at {DATETIME},
    is_active BOOLEAN,
    is_revoked BOOLEAN,
    device_info JSON,
    created_at {DATETIME}
);
CREATE TABLE api_keys (
    id VARCHAR(36) PRIMARY KEY,
    user_id VARCHAR(36) REFERENCES users(id),
    key_name VARCHAR(100),
    key_hash VARCHAR(255) UNIQUE,
    key_prefix VARCHAR(20),
    permissions JSON,
    is_active BOOLEAN,
    created_at {DATETIME},
    expires_at {DATETIME},
    last_used {DATETIME},
    usage_count INTEGER
);
CREATE TABLE chat_sessions (
    id VARCHAR(36) PRIMARY KEY,
    user_id VARCHAR(36) REFERENCES users(id),
    title VARCHAR(255),
    is_active BOOLEAN,
    created_at {DATETIME},
    updated_at {DATETIME},
    last_message_at {DATETIME},
    message_count INTEGER
);
CREATE TABLE chat_messages (
    id VARCHAR(36) PRIMARY KEY,
    session_id VARCHAR(36) REFERENCES chat_sessions(id),
    message_type VARCHAR(20),
    content TEXT,
    query_id VARCHAR(36),
    sql_query TEXT,
    query_result JSON,
    execution_time FLOAT,
    error_message TEXT,
    timestamp {DATETIME},
    sequence_number INTEGER
);
CREATE TABLE query_analytics (
    id VARCHAR(36) PRIMARY KEY,
    query_id VARCHAR(36),
    user_id VARCHAR(36) REFERENCES users(id),
    question TEXT,
    sql_query TEXT,
    execution_time FLOAT,
    row_count INTEGER,
    success BOOLEAN,
    error_message TEXT,
    chart_type VARCHAR(50),
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    llm_model VARCHAR(100),
    llm_cost_estimate FLOAT,
    timestamp {DATETIME},
    created_at {DATETIME}
);
CREATE TABLE user_sessions (
    id VARCHAR(36) PRIMARY KEY,
    user_id VARCHAR(36) REFERENCES users(id),
    session_start {DATETIME},
    session_end {DATETIME},
    ip_address VARCHAR(45),
    user_agent TEXT,
    queries_count INTEGER,
    is_active BOOLEAN
);
CREATE TABLE database_connections (
    id VARCHAR(36) PRIMARY KEY,
    user_id VARCHAR(36) REFERENCES users(id),
    connection_name VARCHAR(100),
    db_type VARCHAR(50),
    db_host VARCHAR(255),
    db_port INTEGER,
    db_user VARCHAR(100),
    encrypted_db_password TEXT,
    db_name VARCHAR(255),
    created_at {DATETIME},
    updated_at {DATETIME}
);
CREATE TABLE database_schemas (
    id INTEGER PRIMARY KEY,
    database_name VARCHAR(255),
    table_name VARCHAR(255),
    schema_info JSON,
    last_updated {DATETIME},
    row_count BIGINT,
    table_size BIGINT
);
CREATE TABLE audit_logs (
    id INTEGER PRIMARY KEY,
    user_id VARCHAR(36) REFERENCES users(id),
    action VARCHAR(50),
    resource_type VARCHAR(100),
    resource_id VARCHAR(100),
    old_values JSON,
    new_values JSON,
    ip_address VARCHAR(45),
    user_agent TEXT,
    timestamp {DATETIME},
    success BOOLEAN,
    error_message TEXT
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    event_type VARCHAR(100),
    user_id VARCHAR(36) REFERENCES users(id),
    event_data JSON,
    timestamp {DATETIME},
    ip_address VARCHAR(45),
    user_agent TEXT,
    session_id VARCHAR(100)
);
CREATE TABLE performance_metrics (
    id INTEGER PRIMARY KEY,
    metric_name VARCHAR(100),
    metric_value FLOAT,
    metric_unit VARCHAR(50),
    timestamp {DATETIME},
    additional_data JSON
);
CREATE TABLE query_templates (
    id VARCHAR(36) PRIMARY KEY,
    user_id VARCHAR(36) REFERENCES users(id),
    name VARCHAR(200),
    description TEXT,
    question_template TEXT,
    sql_template TEXT,
    category VARCHAR(100),
    is_public BOOLEAN,
    is_verified BOOLEAN,
    usage_count INTEGER,
    created_at {DATETIME},
    updated_at {DATETIME}
);
CREATE TABLE system_config (
    id INTEGER PRIMARY KEY,
    config_key VARCHAR(100) UNIQUE,
    config_value JSON,
    description TEXT,
    is_sensitive BOOLEAN,
    created_at {DATETIME},
    updated_at {DATETIME},
    updated_by VARCHAR(255)
);
CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);
""",
    # seeds/ai-chat-v2-schema.md: UUID keys, times with time zone.
    "ai_chat_v2": """
CREATE TABLE users (
    id {UUID} PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE,
    name VARCHAR(255) NOT NULL,
    hashed_password VARCHAR(255) NOT NULL,
    is_active BOOLEAN DEFAULT TRUE,
    created_at {TIMESTAMPTZ},
    updated_at {TIMESTAMPTZ}
);
CREATE TABLE sessions (
    id {UUID} PRIMARY KEY,
    title VARCHAR(255) NOT NULL,
    user_id {UUID} NOT NULL REFERENCES users(id),
    created_at {TIMESTAMPTZ},
    updated_at {TIMESTAMPTZ}
);
CREATE INDEX ix_sessions_user_id ON sessions(user_id);
CREATE TABLE messages (
    id {UUID} PRIMARY KEY,
    session_id {UUID} NOT NULL REFERENCES sessions(id),
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    persona TEXT,
    tone TEXT,
    behavior TEXT,
    context_type TEXT,
    confidence FLOAT,
    signal_strength FLOAT,
    context_clarity INTEGER,
    needs_knowledge INTEGER DEFAULT 0,
    model_name TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    is_mistake INTEGER DEFAULT 0,
    mistake_note TEXT,
    created_at {DATETIME}
);
CREATE INDEX ix_messages_session_id ON messages(session_id);
""",
}


def ddl(kind, dialect):
    text = DDL[kind]
    for name, sql_type in TYPES[dialect].items():
        text = text.replace("{" + name + "}", sql_type)
    if dialect == "postgres":
        text = re.sub(r"\s+REFERENCES \w+\(\w+\)( ON DELETE (CASCADE|SET NULL))?", "", text)
        text = text.replace("FLOAT", "DOUBLE PRECISION")
    return [s.strip() for s in text.split(";") if s.strip()]


def uid(n):
    """A readable UUID: uid(1) → '00000000-0000-4000-8000-000000000001'."""
    return f"00000000-0000-4000-8000-{n:012d}"


# Rows per kind: table → (columns, rows). Row comments name what is awkward.
# fmt: off
ROWS = {
    "auto_analyst": {
        "users": (
            ("user_id", "username", "email", "created_at"),
            [
                (1, "alice", "alice@example.com", "2025-01-31 23:59:59"),
                (2, "bob", "bob@example.com", None),  # NULL created_at
                (3, "Zoë 🚀", "zoe@example.com", "2025-02-01 00:00:00.000001"),
                (4, "alice2", "Alice@Example.com", "2025-02-02 10:00:00"),  # BAD: e-mail case
                (5, "carol", "carol@example.com", "2025-06-01 00:00:00"),
                (6, "dave", "not-an-e-mail", "2025-06-01 00:00:00"),  # DROPPED: e-mail
            ],
        ),
        "chats": (
            ("chat_id", "user_id", "title", "created_at"),
            [
                (10, 1, "Sales Q4", "2025-01-31 23:59:59"),
                (11, None, None, "2025-02-01 00:00:00"),  # anonymous, NULL title
                (12, 2, "Unicode 📊 データ", "2025-02-03 12:00:00"),
                (13, 99, "orphan", "2025-02-03 12:00:00"),  # BAD: no user 99
                (14, 4, "of a refused user", "2025-02-03 12:00:00"),  # BAD: parent refused
                (16, 3, "", "2025-02-04 08:00:00"),  # empty title
            ],
        ),
        "messages": (
            ("message_id", "chat_id", "sender", "content", "timestamp"),
            [
                (100, 10, "user", "Load the CSV", "2025-01-31 23:59:58"),
                (101, 10, "ai", "**Done** — 12,450 rows.", "2025-01-31 23:59:59"),
                (102, 11, "user", "héllo 你好", "2025-02-01 00:00:00"),
                (103, 11, "robot", "beep", "2025-02-01 00:00:01"),  # BAD: role
                (104, 13, "user", "in a refused chat", "2025-02-03 12:00:00"),  # BAD
                (105, 777, "user", "chat missing", "2025-02-03 12:00:00"),  # BAD
                (106, 12, "ai", "", None),  # empty content, NULL time
            ],
        ),
        "model_usage": (
            ("usage_id", "user_id", "chat_id", "model_name", "provider", "prompt_tokens",
             "completion_tokens", "total_tokens", "query_size", "response_size", "cost",
             "timestamp", "is_streaming", "request_time_ms"),
            [
                (1000, 1, 10, "gpt-4o-mini", "openai", 1200, 300, 1500, 40, 900, 0.00036,
                 "2025-01-31 23:59:59", True, 850),
                (1001, None, 11, "claude-3-5-haiku-latest", "anthropic", 10, 5, 15, 3, 4, 0.0,
                 "2025-02-01 00:00:00", False, 120),  # anonymous, zero cost
                (1002, 2, 12, "gpt-4o", "openai", 1000, 2000, 3000, 10, 20, None,
                 "2025-02-03 12:00:00", False, 300),  # NULL cost: priced from ModelPrice
                (1003, 1, None, "mystery-model", "acme", 7, 8, 15, 1, 1, None,
                 "2025-02-03 12:00:01", False, None),  # NULL cost, no price: stays NULL
                (1004, 3, 16, "gemini-1.5-pro", "google", 600_000_000, 300_000_000,
                 900_000_000, 5, 5, 1234.56789, "2025-02-04 08:00:00", True, 99000),  # huge
                (1005, 99, 10, "gpt-4o-mini", "openai", 1, 1, 2, 0, 0, 0.1, "2025-02-05 00:00:00",
                 False, 1),  # DROPPED: user 99 missing, stored without its user
                (1006, 1, 13, "gpt-4o-mini", "openai", 1, 1, 2, 0, 0, 0.1, "2025-02-05 00:00:00",
                 False, 1),  # DROPPED: chat 13 refused, stored without its chat
                (1007, 5, None, "gpt-4o-mini", "openai", None, None, None, None, None, 0.25,
                 "2025-02-05 23:59:59.999999", None, None),  # NULL tokens and flags
            ],
        ),
        "code_executions": (
            ("execution_id", "message_id", "chat_id", "user_id", "initial_code", "latest_code",
             "is_successful", "output", "model_provider", "model_name", "failed_agents",
             "error_messages", "created_at", "updated_at"),
            [
                (1, 101, 10, 1, "df = load()", "df = load('x.csv')", True, "12450 rows", "openai",
                 "gpt-4o-mini", '["planner"]', '{"planner": "timeout"}', "2025-01-31 23:59:59",
                 "2025-02-01 00:00:00"),
                (2, 101, 10, None, None, None, False, None, None, None, None, None,
                 "2025-02-01 00:00:00", None),
                (3, 100, 10, 1, "x", "x", False, "boom", "openai", "gpt-4o", "[not json", None,
                 "2025-02-01 00:00:00", "2025-02-01 00:00:00"),  # DROPPED: JSON
                (4, 104, 10, 1, "y", "y", True, "", "openai", "gpt-4o", "[]", "{}",
                 "2025-02-01 00:00:00", "2025-02-01 00:00:00"),  # BAD: message refused
            ],
        ),
        "message_feedback": (
            ("feedback_id", "message_id", "rating", "model_name", "model_provider", "temperature",
             "max_tokens", "created_at", "updated_at"),
            [
                (1, 101, 5, "gpt-4o-mini", "openai", 0.7, 2048, "2025-02-01 00:00:00",
                 "2025-02-01 00:00:00"),
                (2, 100, 7, "gpt-4o-mini", "openai", 0.7, 2048, "2025-02-01 00:00:00",
                 "2025-02-01 00:00:00"),  # BAD: rating 7
                (3, 102, None, None, None, None, None, "2025-02-01 00:00:00", None),
                # BAD: second feedback of message 101
                (4, 101, 2, None, None, None, None, "2025-02-01 00:00:00", "2025-02-01 00:00:00"),
            ],
        ),
        "deep_analysis_reports": (
            ("report_id", "report_uuid", "user_id", "goal", "status", "start_time", "end_time",
             "duration_seconds", "deep_questions", "deep_plan", "summaries", "analysis_code",
             "plotly_figures", "synthesis", "final_conclusion", "html_report",
             "progress_percentage", "total_tokens_used", "estimated_cost", "credits_consumed",
             "created_at", "updated_at"),
            [
                (1, "rep-0001", 1, "Why did Q4 sales drop?", "completed", "2025-01-31 23:00:00",
                 "2025-01-31 23:59:59", 3599, "1. Which region?", "plan",
                 '["summary one", "summary two"]', "import pandas",
                 '[{"data": [{"type": "bar", "y": [1, 2]}]}]', '["insight"]', "Region X.",
                 "<h1>Report</h1><script>alert(1)</script>", 100, 52000, 0.42, 3,
                 "2025-01-31 23:00:00", "2025-01-31 23:59:59"),
                (2, "rep-0002", None, "Anonymous goal", "pending", None, None, None, None, None,
                 None, None, None, None, None, None, 0, 0, 0.0, 0, "2025-02-01 00:00:00", None),
                # BAD: status
                (3, "rep-0003", 1, "bad status", "exploded", None, None, None, None, None, None,
                 None, None, None, None, None, 0, 0, 0.0, 0, "2025-02-01 00:00:00", None),
                # DROPPED: progress 150
                (4, "rep-0004", 1, "bad progress", "running", None, None, None, None, None, None,
                 None, None, None, None, None, 150, 0, 0.0, 0, "2025-02-01 00:00:00", None),
            ],
        ),
        "agent_templates": (
            ("template_id", "template_name", "display_name", "description", "prompt_template",
             "icon_url", "category", "is_premium_only", "variant_type", "is_active", "created_at"),
            [
                (1, "sql_agent", "SQL Agent", "Writes SQL", "You write SQL.",
                 "https://example.com/sql.png", "data", False, "individual", True,
                 "2025-01-01 00:00:00"),
                (2, "planner", None, "Plans", "You plan.", None, None, True, "planner", False,
                 "2025-01-01 00:00:00"),
                (3, "odd_agent", "Odd", "Odd", "Odd", None, None, False, "sometimes", True,
                 "2025-01-01 00:00:00"),  # DROPPED: variant_type
            ],
        ),
        "user_template_preferences": (
            ("preference_id", "user_id", "template_id", "is_enabled", "usage_count", "last_used_at",
             "created_at"),
            [
                (1, 1, 1, True, 5, "2025-02-01 00:00:00", "2025-01-05 00:00:00"),
                (2, 2, 2, False, 0, None, "2025-01-05 00:00:00"),
                (3, 1, 3, True, 1, None, "2025-01-05 00:00:00"),  # template: variant dropped
            ],
        ),
    },
    "ds_ml_agent": {
        "chatbot_sessions": (
            ("id", "org_id", "user_id", "starred", "created_at", "updated_at", "expires_at",
             "is_active", "session_metadata"),
            [
                ("sess_a7f3c9d2e1b4", "org_acme_corp", "user_john_doe_123", True,
                 "2025-11-27 08:15:30", "2025-11-27 13:42:15", "2025-12-27 08:15:30", True,
                 '{"project_name": "Q4 Sales Analysis", "tags": ["sales", "quarterly"]}'),
                ("sess_b8e4d0c3f2a5", "org_acme_corp", "user_jane_smith_456", False,
                 "2025-11-26 14:30:00", "2025-11-26 16:45:22", "2025-12-26 14:30:00", True,
                 '{"project_name": "Customer Segmentation"}'),
                ("sess_c9f5e1d4a3b6", "org_techstart_inc", None, True, "2025-11-25 00:00:00",
                 "2025-11-27 23:59:59", None, False, None),  # anonymous, no metadata
                ("sess_bad_org", "org with spaces!", "user_x", False, "2025-11-25 09:00:00",
                 "2025-11-25 09:00:00", None, True, None),  # BAD: org_id not a slug
            ],
        ),
        "chatbot_conversation_states": (
            ("id", "session_id", "turn_number", "user_message", "agent_response", "agent_type",
             "created_at", "context_data"),
            [
                (1, "sess_a7f3c9d2e1b4", 1, "Load the sales data from the CSV file",
                 "I've loaded the sales data: 12,450 rows.", "csv_analysis", "2025-11-27 08:25:10",
                 '{"active_dataframe": "sales_data_2024"}'),
                (2, "sess_a7f3c9d2e1b4", 2, "Show me the summary statistics", None,
                 "statistical_analysis", "2025-11-27 23:59:59", None),  # unanswered
                (3, "sess_b8e4d0c3f2a5", 1, "Segmente les clients 👥", "k=4, silhouette 0.72",
                 "ml_analysis", "2025-11-26 00:00:00", '{"n_clusters": 4}'),
                # BAD: session missing
                (4, "sess_missing", 1, "hello?", "hi", "csv_analysis", "2025-11-26 00:00:00", None),
                # BAD: session refused
                (5, "sess_bad_org", 1, "hello", None, None, "2025-11-26 00:00:00", None),
            ],
        ),
        "chatbot_uploaded_files": (
            ("id", "session_id", "filename", "file_path", "file_type", "file_size",
             "upload_timestamp", "is_processed", "file_metadata"),
            [
                (42, "sess_a7f3c9d2e1b4", "sales_data_2024.csv",
                 "/uploads/org_acme_corp/sess_a7f3c9d2e1b4/sales_data_2024.csv", "csv", 2457600,
                 "2025-11-27 08:20:45", True,
                 '{"columns": ["date", "region"], "row_count": 12450}'),
                (43, "sess_b8e4d0c3f2a5", "customer_profiles.xlsx",
                 "/uploads/org_acme_corp/sess_b8e4d0c3f2a5/customer_profiles.xlsx", "xlsx", None,
                 "2025-11-26 14:35:20", False, None),
                (44, "sess_missing", "x.csv", "/uploads/x.csv", "csv", 1, "2025-11-26 14:35:20",
                 False, None),  # BAD: session missing
            ],
        ),
        "chatbot_analysis_results": (
            ("id", "session_id", "analysis_type", "file_id", "result_data", "visualizations",
             "created_at", "result_metadata"),
            [
                (156, "sess_a7f3c9d2e1b4", "statistical", 42,
                 '{"correlation": 0.87, "insights": ["strong"]}',
                 '["/visualizations/sess_a7f3c9d2e1b4/heatmap_156.png"]', "2025-11-27 13:42:20",
                 '{"execution_time_ms": 1250}'),
                (157, "sess_b8e4d0c3f2a5", "ml", None, '{"n_clusters": 4}', None,
                 "2025-11-26 15:12:45", None),  # no file
                # DROPPED: file 999 missing, stored without its file
                (158, "sess_a7f3c9d2e1b4", "ml", 999, None, None, "2025-11-26 15:12:45", None),
            ],
        ),
    },
    "text_to_sql": {
        "users": (
            ("id", "email", "password_hash", "full_name", "company", "role", "is_active",
             "created_at", "updated_at", "last_login", "token_usage", "preferences"),
            [
                (uid(1), "ana@example.com", "$2b$12$hash-ana", "Ana Lima", "Acme", "admin", True,
                 "2025-01-31 23:59:59", "2025-02-01 00:00:00", "2025-02-10 09:00:00", 12000,
                 '{"theme": "dark", "model": "gpt-4o-mini"}'),
                (uid(2), "ben@example.com", "$2b$12$hash-ben", "Bén Ødegård", None, "viewer", False,
                 "2025-02-01 00:00:00", None, None, 0, None),
                (uid(3), "root@example.com", "$2b$12$hash-root", "Root", None, "superuser", True,
                 "2025-02-01 00:00:00", None, None, 0, None),  # DROPPED: role
                (uid(4), "ANA@example.com", "$2b$12$hash-ana2", "Ana Again", None, "viewer", True,
                 "2025-02-01 00:00:00", None, None, 0, None),  # BAD: e-mail case
            ],
        ),
        "refresh_tokens": (
            ("id", "user_id", "token_hash", "expires_at", "revoked_at", "is_active", "is_revoked",
             "device_info", "created_at"),
            [
                (uid(11), uid(1), "tok-hash-1", "2025-03-01 00:00:00", None, True, False,
                 '{"browser": "Firefox", "os": "Linux"}', "2025-02-01 00:00:00"),
                (uid(12), uid(3), "tok-hash-2", "2025-03-01 00:00:00", None, True, False, None,
                 "2025-02-01 00:00:00"),  # of the user whose role was dropped
            ],
        ),
        "api_keys": (
            ("id", "user_id", "key_name", "key_hash", "key_prefix", "permissions", "is_active",
             "created_at", "expires_at", "last_used", "usage_count"),
            [
                (uid(21), uid(1), "ci", "key-hash-1", "tts_ab12", '["read", "query"]', True,
                 "2025-02-01 00:00:00", None, "2025-02-09 23:59:59", 42),
            ],
        ),
        "chat_sessions": (
            ("id", "user_id", "title", "is_active", "created_at", "updated_at", "last_message_at",
             "message_count"),
            [
                (uid(31), uid(1), "Revenue by region", True, "2025-02-01 00:00:00",
                 "2025-02-01 00:05:00", "2025-02-01 00:05:00", 3),
                (uid(32), uid(2), None, False, "2025-02-02 23:59:59", None, None, None),
            ],
        ),
        "chat_messages": (
            ("id", "session_id", "message_type", "content", "query_id", "sql_query", "query_result",
             "execution_time", "error_message", "timestamp", "sequence_number"),
            [
                (uid(41), uid(31), "user", "Revenue by region?", None, None, None, None, None,
                 "2025-02-01 00:00:00", 1),
                (uid(42), uid(31), "assistant", "Here it is.", uid(51),
                 "SELECT region, SUM(revenue) FROM sales GROUP BY region",
                 '[{"region": "EU", "revenue": 1.5}]', 0.42, None, "2025-02-01 00:05:00", 2),
                (uid(43), uid(31), "system", "Query failed, retrying", None, None, None, None,
                 "timeout", "2025-02-01 00:04:00", 3),
                (uid(44), uid(31), "narrator", "…", None, None, None, None, None,
                 "2025-02-01 00:06:00", 4),  # BAD: role
                (uid(45), uid(39), "user", "lost", None, None, None, None, None,
                 "2025-02-01 00:06:00", 1),  # BAD: session missing
            ],
        ),
        "query_analytics": (
            ("id", "query_id", "user_id", "question", "sql_query", "execution_time", "row_count",
             "success", "error_message", "chart_type", "prompt_tokens", "completion_tokens",
             "total_tokens", "llm_model", "llm_cost_estimate", "timestamp", "created_at"),
            [
                (uid(51), uid(51), uid(1), "Revenue by region?",
                 "SELECT region, SUM(revenue) FROM sales GROUP BY region", 0.42, 12, True, None,
                 "bar", 850, 120, 970, "gpt-4o-mini", 0.0002, "2025-02-01 00:05:00",
                 "2025-02-01 00:05:00"),
                (uid(52), uid(52), uid(2), "Churn last month?", None, None, None, False,
                 "no table churn", None, 400, 50, 450, "claude-3-5-haiku-latest", None,
                 "2025-02-02 23:59:59", "2025-02-02 23:59:59"),  # NULL cost: priced
                (uid(53), None, None, "Anonymous, no LLM", None, None, None, None, None, None, None,
                 None, None, None, None, "2025-02-03 00:00:00", None),  # no ledger row
                (uid(54), uid(54), uid(1), "Top 10 customers", "SELECT …", 1.5, 10, True, None,
                 "table", 100, 10, 110, "llama-3.3-70b-versatile", 0.0, "2025-02-04 00:00:00",
                 "2025-02-04 00:00:00"),  # zero cost
                # of the user whose role was dropped
                (uid(55), uid(55), uid(3), "by user 3", None, None, None, True, None, None,
                 1, 1, 2, "gpt-4o", 0.01, "2025-02-04 00:00:00", "2025-02-04 00:00:00"),
            ],
        ),
        "user_sessions": (
            ("id", "user_id", "session_start", "session_end", "ip_address", "user_agent",
             "queries_count", "is_active"),
            [
                (uid(61), uid(1), "2025-02-01 00:00:00", "2025-02-01 23:59:59", "192.168.1.10",
                 "Mozilla/5.0", 5, False),
                (uid(62), uid(2), "2025-02-02 00:00:00", None, "2001:db8::1", None, 0, True),
                # DROPPED: ip
                (uid(63), uid(2), "2025-02-02 00:00:00", None, "not-an-ip", None, 0, True),
            ],
        ),
        "database_connections": (
            ("id", "user_id", "connection_name", "db_type", "db_host", "db_port", "db_user",
             "encrypted_db_password", "db_name", "created_at", "updated_at"),
            [
                (uid(71), uid(1), "warehouse", "postgresql", "db.internal", 5432, "analyst",
                 "gAAAAAB-encrypted", "sales", "2025-02-01 00:00:00", "2025-02-01 00:00:00"),
            ],
        ),
        "database_schemas": (
            ("id", "database_name", "table_name", "schema_info", "last_updated", "row_count",
             "table_size"),
            [
                (1, "sales", "orders", '{"columns": [{"name": "id", "type": "int"}]}',
                 "2025-02-01 00:00:00", 3_000_000_000, 9_000_000_000),
                (2, "sales", "regions", None, None, None, None),
            ],
        ),
        "audit_logs": (
            ("id", "user_id", "action", "resource_type", "resource_id", "old_values", "new_values",
             "ip_address", "user_agent", "timestamp", "success", "error_message"),
            [
                (1, uid(1), "login", "user", uid(1), None, '{"ok": true}', "10.0.0.1", "curl/8",
                 "2025-02-01 00:00:00", True, None),
                (2, None, "delete", "chat_session", uid(33), '{"title": "old"}', None, None, None,
                 "2025-02-01 23:59:59", False, "not found"),
            ],
        ),
        "events": (
            ("id", "event_type", "user_id", "event_data", "timestamp", "ip_address", "user_agent",
             "session_id"),
            [
                (1, "query_run", uid(1), '{"rows": 12}', "2025-02-01 00:05:00", "10.0.0.1",
                 "Mozilla/5.0", "sess-1"),
                (2, "page_view", None, None, "2025-02-01 00:00:00", None, None, None),
            ],
        ),
        "performance_metrics": (
            ("id", "metric_name", "metric_value", "metric_unit", "timestamp", "additional_data"),
            [
                (1, "query_latency", 123.4, "ms", "2025-02-01 00:00:00", '{"p": 95}'),
                (2, "cache_hit_ratio", 0.0, None, "2025-02-01 23:59:59", None),
            ],
        ),
        "query_templates": (
            ("id", "user_id", "name", "description", "question_template", "sql_template",
             "category", "is_public", "is_verified", "usage_count", "created_at", "updated_at"),
            [
                (uid(81), uid(1), "Top customers", "By revenue", "Top {n} customers?",
                 "SELECT * FROM customers LIMIT {n}", "sales", True, False, 3,
                 "2025-02-01 00:00:00", "2025-02-01 00:00:00"),
                (uid(82), None, "Orphaned template", None, "q", "s", None, False, False, 0,
                 "2025-02-01 00:00:00", None),
            ],
        ),
        "system_config": (
            ("id", "config_key", "config_value", "description", "is_sensitive", "created_at",
             "updated_at", "updated_by"),
            [
                (1, "llm.default_model", '"gpt-4o-mini"', "Default model", False,
                 "2025-02-01 00:00:00", "2025-02-01 00:00:00", "ana@example.com"),
                (2, "openai.api_key", '"sk-secret"', None, True, "2025-02-01 00:00:00", None, None),
                (3, "limits", '{"rows": 1000, "timeout_s": 30}', "Query limits", False,
                 "2025-02-01 00:00:00", "2025-02-01 00:00:00", None),
            ],
        ),
        "alembic_version": (
            ("version_num",),
            [
                ("8e2fbd009a9c",),
            ],
        ),
    },
    "ai_chat_v2": {
        "users": (
            ("id", "email", "name", "hashed_password", "is_active", "created_at", "updated_at"),
            [
                (uid(1), "mia@example.com", "Mia", "$2b$12$mia", True, "2025-01-31 23:59:59+00:00",
                 "2025-02-01 00:00:00+00:00"),
                (uid(2), "noah@example.com", "Nóah 🙂", "$2b$12$noah", False,
                 "2025-03-01 01:30:00+02:00", None),  # +02:00: the day before in UTC
            ],
        ),
        "sessions": (
            ("id", "title", "user_id", "created_at", "updated_at"),
            [
                (uid(11), "First chat", uid(1), "2025-02-01 00:00:00+00:00",
                 "2025-02-01 00:10:00+00:00"),
                (uid(12), "Zweites Gespräch", uid(2), "2025-02-02 23:59:59+00:00", None),
                # BAD: user missing
                (uid(13), "of a missing user", uid(9), "2025-02-03 00:00:00+00:00", None),
            ],
        ),
        "messages": (
            ("id", "session_id", "role", "content", "persona", "tone", "behavior", "context_type",
             "confidence", "signal_strength", "context_clarity", "needs_knowledge", "model_name",
             "prompt_tokens", "completion_tokens", "is_mistake", "mistake_note", "created_at"),
            [
                (uid(21), uid(11), "user", "Hi", None, None, None, None, None, None, None, 0, None,
                 None, None, 0, None, "2025-02-01 00:00:00"),
                # ledger row, priced
                (uid(22), uid(11), "assistant", "Hello! 👋", "analyst", "casual", "normal",
                 "general", 0.9, 0.8, 1, 0, "gpt-4o-mini", 12, 30, 0, None, "2025-02-01 00:00:01"),
                (uid(23), uid(11), "assistant", "The total is 42.", None, "technical", "cautious",
                 "data", None, 1.0, 0, 1, "gemini-2.0-flash", 900_000_000, 5, 1, "wrong number",
                 "2025-02-01 23:59:59"),  # huge tokens, flagged mistake
                # no ledger row
                (uid(24), uid(12), "assistant", "No tokens recorded", "legacy", None, None, None,
                 0.0, None, None, 0, "gpt-4", None, None, 0, None, "2025-02-03 00:00:00"),
                (uid(25), uid(12), "assistant", "too sure", None, None, None, None, 2.0, None, None,
                 0, "gpt-4o-mini", 1, 1, 0, None, "2025-02-03 00:00:00"),  # DROPPED: confidence 2.0
                # DROPPED: signal_strength -1
                (uid(26), uid(12), "assistant", "negative", None, None, None, None, None, -1.0,
                 None, 0, "gpt-4o-mini", 1, 1, 0, None, "2025-02-03 00:00:00"),
                # BAD: session refused
                (uid(27), uid(13), "user", "in a refused session", None, None, None, None, None,
                 None, None, 0, None, None, None, 0, None, "2025-02-03 00:00:00"),
                # ledger row: model 'unknown', unpriced
                (uid(28), uid(12), "assistant", "model unknown", None, None, None, None, None, None,
                 None, 0, None, 5, 5, 0, None, "2025-02-03 00:00:00"),
                (uid(29), uid(12), "user", "clarity 2", None, None, None, None, None, None, 2, 0,
                 None, None, None, 0, None, "2025-02-03 00:00:00"),  # DROPPED: clarity 2
            ],
        ),
    },
}
# fmt: on

# (table, source pk) → a word the refusal reason must contain: rows that cannot
# be stored meaningfully (no parent, an invalid defining value, a duplicate
# identity, an impossible quantity).
BAD_ROWS = {
    "auto_analyst": {
        ("users", "4"): "differs only in case",
        ("chats", "13"): "parent refused/missing",
        ("chats", "14"): "parent refused/missing",
        ("messages", "103"): "not one of",
        ("messages", "104"): "parent refused/missing",
        ("messages", "105"): "parent refused/missing",
        ("code_executions", "4"): "parent refused/missing",
        ("message_feedback", "2"): "chats_feedback_rating_1_5",
        ("message_feedback", "4"): "message",
        ("deep_analysis_reports", "3"): "not one of",
    },
    "ds_ml_agent": {
        ("chatbot_sessions", "sess_bad_org"): "not a slug",
        ("chatbot_conversation_states", "4"): "parent refused/missing",
        ("chatbot_conversation_states", "5"): "parent refused/missing",
        ("chatbot_uploaded_files", "44"): "parent refused/missing",
    },
    "text_to_sql": {
        ("users", uid(4)): "differs only in case",
        ("chat_messages", uid(44)): "not one of",
        ("chat_messages", uid(45)): "parent refused/missing",
    },
    "ai_chat_v2": {
        ("sessions", uid(13)): "parent refused/missing",
        ("messages", uid(27)): "parent refused/missing",
    },
}

# (table, source pk) → {source column: a word of the reason}: values outside
# the unified schema in a column that does not define the row, and links to a
# parent missing or refused where the row outlives its parent (SET_NULL: a
# ledger row's user or chat). The row lands with that column as if the source
# had NULL (NULL or the field's default).
DROPPED = {
    "auto_analyst": {
        ("users", "6"): {"email": "valid email"},
        ("model_usage", "1005"): {"user_id": "parent user missing at source"},
        ("model_usage", "1006"): {"chat_id": "parent chat refused"},
        ("code_executions", "3"): {"failed_agents": "invalid JSON"},
        ("deep_analysis_reports", "4"): {"progress_percentage": "reports_report_progress_0_100"},
        ("agent_templates", "3"): {"variant_type": "not one of"},
    },
    "ds_ml_agent": {
        ("chatbot_analysis_results", "158"): {"file_id": "parent file missing at source"},
    },
    "text_to_sql": {
        ("users", uid(3)): {"role": "not one of"},
        ("user_sessions", uid(63)): {"ip_address": "IP"},
    },
    "ai_chat_v2": {
        ("messages", uid(25)): {"confidence": "chats_message_confidence_0_1"},
        ("messages", uid(26)): {"signal_strength": "chats_message_signal_strength_0_1"},
        ("messages", uid(29)): {"context_clarity": "not a boolean"},
    },
}


# Later changes at the source, for the incremental tests: SQL statements, and
# per table the (created, updated) counts the next run must report. Only
# changes a run can see are counted: an INTEGER-keyed table without
# updated_at shows new rows only (a change there needs --full).
CHANGES = {
    "auto_analyst": (
        [
            "INSERT INTO users VALUES (7, 'erin', 'erin@example.com', '2025-07-01 00:00:00')",
            "INSERT INTO chats VALUES (17, 7, 'New one', '2025-07-01 00:00:00')",
            "INSERT INTO messages VALUES (107, 17, 'user', 'hi again', '2025-07-01 00:00:01')",
            "INSERT INTO model_usage VALUES (1008, 7, 17, 'gpt-4o-mini', 'openai', 5, 5, 10, "
            "1, 1, 0.001, '2025-07-01 00:00:02', FALSE, 10)",
            "UPDATE messages SET content = 'edited, unseen without --full' WHERE message_id = 100",
            "UPDATE code_executions SET latest_code = 'df = load(\"y.csv\")', "
            "updated_at = '2025-07-01 00:00:00' WHERE execution_id = 1",
            "UPDATE message_feedback SET rating = 4, updated_at = '2025-07-01 00:00:00' "
            "WHERE feedback_id = 1",
            "DELETE FROM messages WHERE message_id = 106",
        ],
        {
            "users": (1, 0),
            "chats": (1, 0),
            "messages": (1, 0),
            "model_usage": (1, 0),
            "code_executions": (0, 1),
            "message_feedback": (0, 1),
        },
    ),
    "ds_ml_agent": (
        [
            "INSERT INTO chatbot_sessions VALUES ('sess_new', 'org_new_co', 'user_new', FALSE, "
            "'2025-12-01 00:00:00', '2025-12-01 00:00:00', NULL, TRUE, NULL)",
            "INSERT INTO chatbot_conversation_states VALUES (6, 'sess_new', 1, 'hi', 'hello', "
            "'csv_analysis', '2025-12-01 00:00:01', NULL)",
            "UPDATE chatbot_sessions SET starred = FALSE, updated_at = '2025-12-01 00:00:00' "
            "WHERE id = 'sess_a7f3c9d2e1b4'",
        ],
        {
            "chatbot_sessions": (1, 1),
            "chatbot_conversation_states": (1, 0),
        },
    ),
    "text_to_sql": (
        [
            f"UPDATE users SET company = 'Globex', updated_at = '2025-07-01 00:00:00' "
            f"WHERE id = '{uid(2)}'",
            f"UPDATE chat_messages SET content = 'Here it is (edited).' WHERE id = '{uid(42)}'",
            f"INSERT INTO query_analytics VALUES ('{uid(56)}', NULL, '{uid(2)}', 'New?', NULL, "
            "NULL, NULL, TRUE, NULL, NULL, 10, 10, 20, 'gpt-4o-mini', NULL, "
            "'2025-07-01 00:00:00', '2025-07-01 00:00:00')",
            f"UPDATE query_analytics SET prompt_tokens = 900 WHERE id = '{uid(51)}'",
            "INSERT INTO events VALUES (3, 'logout', NULL, NULL, '2025-07-01 00:00:00', NULL, "
            "NULL, NULL)",
        ],
        {
            "users": (0, 1),
            "chat_messages": (0, 1),
            "query_analytics": (1, 1),
            "events": (1, 0),
        },
    ),
    "ai_chat_v2": (
        [
            f"UPDATE messages SET is_mistake = 1, mistake_note = 'rude' WHERE id = '{uid(22)}'",
            f"UPDATE messages SET completion_tokens = 31 WHERE id = '{uid(22)}'",
            f"INSERT INTO messages (id, session_id, role, content, model_name, prompt_tokens, "
            f"completion_tokens, created_at) VALUES ('{uid(30)}', '{uid(11)}', 'assistant', "
            "'new answer', 'gpt-4o-mini', 100, 200, '2025-07-01 00:00:00')",
        ],
        {"messages": (1, 1)},
    ),
}


# Rows CHANGES deletes at the source: reported by the next run, kept here.
DELETED = {"auto_analyst": {("messages", "106")}}


def build_sqlite(kind, path):
    """Create and fill the SQLite source database of ``kind`` at ``path``."""
    with sqlite3.connect(path) as connection:
        fill(kind, connection, "sqlite")
    connection.close()
    return path


def fill(kind, connection, dialect):
    cursor = connection.cursor()
    for statement in ddl(kind, dialect):
        cursor.execute(statement)
    mark = "?" if dialect == "sqlite" else "%s"
    for table, (columns, rows) in ROWS[kind].items():
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join([mark] * len(columns))
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
    connection.commit()


def execute(connection, statements):
    cursor = connection.cursor()
    for statement in statements:
        cursor.execute(statement)
    connection.commit()


def postgres_admin_url():
    """A URL of the PostgreSQL server the tests run on, for CREATE DATABASE."""
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgresql://{user}{password}@{host}:{port}/postgres"


@contextmanager
def postgres_source(kind, name):
    """A PostgreSQL database ``name`` holding ``kind``'s source rows; dropped after."""
    admin_url = postgres_admin_url()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(url) as connection:
            fill(kind, connection, "postgres")
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- running an import and reading what it left -----------------------------------


def run_import(kind, url, report, *args):
    """``manage.py import_source`` → (stdout, stderr, report lines)."""
    from io import StringIO

    from django.core.management import call_command

    out, err = StringIO(), StringIO()
    call_command(
        "import_source",
        kind,
        str(url),
        "--no-progress",
        "--rejects",
        str(report),
        *args,
        stdout=out,
        stderr=err,
    )
    return out.getvalue(), err.getvalue(), read_report(report)


def read_report(path):
    import json
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def summary_counts(stdout):
    """{table: {read, created, updated, unchanged, refused, deleted_at_source}}."""
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("table "))
    names = header.split()[1:-1]
    counts = {}
    for line in lines[lines.index(header) + 2 :]:
        cells = line.split()
        if not cells or cells[0].startswith("-") or cells[0] == "total":
            break
        counts[cells[0]] = dict(zip(names, map(int, cells[1:-1]), strict=True))
    return counts


def source_rows(url, table):
    """Every row of ``table`` in the source, by plain SQL, as dicts."""
    if str(url).startswith("postgres"):
        with psycopg.connect(url) as connection:
            # JSON as its text, as SQLite gives it (a JSON string is not text).
            for name in ("json", "jsonb"):
                connection.adapters.register_loader(name, psycopg.types.string.TextLoader)
            cursor = connection.execute(f'SELECT * FROM "{table}"')
            names = [d.name for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]
    connection = sqlite3.connect(str(url).removeprefix("sqlite:///"))
    try:
        cursor = connection.execute(f'SELECT * FROM "{table}"')
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]
    finally:
        connection.close()


def source_row(url, sql):
    """The first row of ``sql`` run on the source."""
    if str(url).startswith("postgres"):
        with psycopg.connect(url) as connection:
            return connection.execute(sql).fetchone()
    connection = sqlite3.connect(str(url).removeprefix("sqlite:///"))
    try:
        return connection.execute(sql).fetchone()
    finally:
        connection.close()


# --- the entity map (shared/entity_map.json), the spec the tests check against ------

# fmt: off
ENTITY_MAP = {
    "auto_analyst": {
        "users": {"user_id": "core.AppUser.source_pk", "username": "core.AppUser.username",
         "email": "core.AppUser.email", "created_at": "core.AppUser.created_at"},
        "chats": {"chat_id": "chats.Chat.source_pk", "user_id": "chats.Chat.user",
         "title": "chats.Chat.title", "created_at": "chats.Chat.created_at"},
        "messages": {"message_id": "chats.Message.source_pk", "chat_id": "chats.Message.chat",
         "sender": "chats.Message.role", "content": "chats.Message.content",
         "timestamp": "chats.Message.created_at"},
        "model_usage": {"usage_id": "usage.ModelUsage.source_pk",
         "user_id": "usage.ModelUsage.user", "chat_id": "usage.ModelUsage.chat",
         "model_name": "usage.ModelUsage.model_name", "provider": "usage.ModelUsage.provider",
         "prompt_tokens": "usage.ModelUsage.prompt_tokens",
         "completion_tokens": "usage.ModelUsage.completion_tokens",
         "total_tokens": "usage.ModelUsage.total_tokens",
         "query_size": "usage.ModelUsage.query_size",
         "response_size": "usage.ModelUsage.response_size", "cost": "usage.ModelUsage.cost",
         "timestamp": "usage.ModelUsage.timestamp", "is_streaming": "usage.ModelUsage.is_streaming",
         "request_time_ms": "usage.ModelUsage.request_time_ms"},
        "code_executions": {"execution_id": "chats.CodeExecution.source_pk",
         "message_id": "chats.CodeExecution.message", "chat_id": "chats.CodeExecution.chat",
         "user_id": "chats.CodeExecution.user", "initial_code": "chats.CodeExecution.initial_code",
         "latest_code": "chats.CodeExecution.latest_code",
         "is_successful": "chats.CodeExecution.is_successful",
         "output": "chats.CodeExecution.output",
         "model_provider": "chats.CodeExecution.model_provider",
         "model_name": "chats.CodeExecution.model_name",
         "failed_agents": "chats.CodeExecution.failed_agents",
         "error_messages": "chats.CodeExecution.error_messages",
         "created_at": "chats.CodeExecution.created_at",
         "updated_at": "chats.CodeExecution.updated_at"},
        "message_feedback": {"feedback_id": "chats.MessageFeedback.source_pk",
         "message_id": "chats.MessageFeedback.message", "rating": "chats.MessageFeedback.rating",
         "model_name": "chats.MessageFeedback.model_name",
         "model_provider": "chats.MessageFeedback.model_provider",
         "temperature": "chats.MessageFeedback.temperature",
         "max_tokens": "chats.MessageFeedback.max_tokens",
         "created_at": "chats.MessageFeedback.created_at",
         "updated_at": "chats.MessageFeedback.updated_at"},
        "deep_analysis_reports": {"report_id": "reports.DeepAnalysisReport.source_pk",
         "report_uuid": "reports.DeepAnalysisReport.report_uuid",
         "user_id": "reports.DeepAnalysisReport.user", "goal": "reports.DeepAnalysisReport.goal",
         "status": "reports.DeepAnalysisReport.status",
         "start_time": "reports.DeepAnalysisReport.start_time",
         "end_time": "reports.DeepAnalysisReport.end_time",
         "duration_seconds": "reports.DeepAnalysisReport.duration_seconds",
         "deep_questions": "reports.DeepAnalysisReport.deep_questions",
         "deep_plan": "reports.DeepAnalysisReport.deep_plan",
         "summaries": "reports.DeepAnalysisReport.summaries",
         "analysis_code": "reports.DeepAnalysisReport.analysis_code",
         "plotly_figures": "reports.DeepAnalysisReport.plotly_figures",
         "synthesis": "reports.DeepAnalysisReport.synthesis",
         "final_conclusion": "reports.DeepAnalysisReport.final_conclusion",
         "html_report": "reports.DeepAnalysisReport.html_report",
         "progress_percentage": "reports.DeepAnalysisReport.progress_percentage",
         "total_tokens_used": "reports.DeepAnalysisReport.total_tokens_used",
         "estimated_cost": "reports.DeepAnalysisReport.estimated_cost",
         "credits_consumed": "reports.DeepAnalysisReport.credits_consumed",
         "created_at": "reports.DeepAnalysisReport.created_at",
         "updated_at": "reports.DeepAnalysisReport.updated_at"},
        "agent_templates": {"template_id": "core.AgentTemplate.source_pk",
         "template_name": "core.AgentTemplate.template_name",
         "display_name": "core.AgentTemplate.display_name",
         "description": "core.AgentTemplate.description",
         "prompt_template": "core.AgentTemplate.prompt_template",
         "icon_url": "core.AgentTemplate.icon_url", "category": "core.AgentTemplate.category",
         "is_premium_only": "core.AgentTemplate.is_premium_only",
         "variant_type": "core.AgentTemplate.variant_type",
         "is_active": "core.AgentTemplate.is_active",
         "created_at": "core.AgentTemplate.created_at"},
        "user_template_preferences": {"preference_id": "core.UserTemplatePreference.source_pk",
         "user_id": "core.UserTemplatePreference.user",
         "template_id": "core.UserTemplatePreference.template",
         "is_enabled": "core.UserTemplatePreference.is_enabled",
         "usage_count": "core.UserTemplatePreference.usage_count",
         "last_used_at": "core.UserTemplatePreference.last_used_at",
         "created_at": "core.UserTemplatePreference.created_at"},
    },
    "ds_ml_agent": {
        "chatbot_sessions": {"id": "chats.Chat.source_pk", "org_id": "chats.Chat.organization",
         "user_id": "chats.Chat.user", "starred": "chats.Chat.starred",
         "created_at": "chats.Chat.created_at", "updated_at": "chats.Chat.updated_at",
         "expires_at": "chats.Chat.expires_at", "is_active": "chats.Chat.is_active",
         "session_metadata": "chats.Chat.metadata"},
        "chatbot_conversation_states": {"id": "chats.Message.source_pk",
         "session_id": "chats.Message.chat", "turn_number": "chats.Message.turn_number",
         "user_message": "chats.Message.content", "agent_response": "chats.Message.content",
         "agent_type": "chats.Message.agent_type", "created_at": "chats.Message.created_at",
         "context_data": "chats.Message.context_data"},
        "chatbot_uploaded_files": {"id": "chats.UploadedFile.source_pk",
         "session_id": "chats.UploadedFile.chat", "filename": "chats.UploadedFile.filename",
         "file_path": "chats.UploadedFile.file_path", "file_type": "chats.UploadedFile.file_type",
         "file_size": "chats.UploadedFile.file_size",
         "upload_timestamp": "chats.UploadedFile.upload_timestamp",
         "is_processed": "chats.UploadedFile.is_processed",
         "file_metadata": "chats.UploadedFile.file_metadata"},
        "chatbot_analysis_results": {"id": "reports.AnalysisResult.source_pk",
         "session_id": "reports.AnalysisResult.chat",
         "analysis_type": "reports.AnalysisResult.analysis_type",
         "file_id": "reports.AnalysisResult.file",
         "result_data": "reports.AnalysisResult.result_data",
         "visualizations": "reports.AnalysisResult.visualizations",
         "created_at": "reports.AnalysisResult.created_at",
         "result_metadata": "reports.AnalysisResult.result_metadata"},
    },
    "text_to_sql": {
        "users": {"id": "core.AppUser.source_pk", "email": "core.AppUser.email",
         "password_hash": "core.AppUser.password_hash", "full_name": "core.AppUser.full_name",
         "company": "core.AppUser.company", "role": "core.AppUser.role",
         "is_active": "core.AppUser.is_active", "created_at": "core.AppUser.created_at",
         "updated_at": "core.AppUser.updated_at", "last_login": "core.AppUser.last_login",
         "token_usage": "core.AppUser.token_usage", "preferences": "core.AppUser.preferences"},
        "refresh_tokens": {"id": "core.RefreshToken.source_pk", "user_id": "core.RefreshToken.user",
         "token_hash": "core.RefreshToken.token_hash", "expires_at": "core.RefreshToken.expires_at",
         "revoked_at": "core.RefreshToken.revoked_at", "is_active": "core.RefreshToken.is_active",
         "is_revoked": "core.RefreshToken.is_revoked",
         "device_info": "core.RefreshToken.device_info",
         "created_at": "core.RefreshToken.created_at"},
        "api_keys": {"id": "core.ApiKey.source_pk", "user_id": "core.ApiKey.user",
         "key_name": "core.ApiKey.key_name", "key_hash": "core.ApiKey.key_hash",
         "key_prefix": "core.ApiKey.key_prefix", "permissions": "core.ApiKey.permissions",
         "is_active": "core.ApiKey.is_active", "created_at": "core.ApiKey.created_at",
         "expires_at": "core.ApiKey.expires_at", "last_used": "core.ApiKey.last_used",
         "usage_count": "core.ApiKey.usage_count"},
        "chat_sessions": {"id": "chats.Chat.source_pk", "user_id": "chats.Chat.user",
         "title": "chats.Chat.title", "is_active": "chats.Chat.is_active",
         "created_at": "chats.Chat.created_at", "updated_at": "chats.Chat.updated_at",
         "last_message_at": "chats.Chat.last_message_at",
         "message_count": "chats.Chat.message_count"},
        "chat_messages": {"id": "chats.Message.source_pk", "session_id": "chats.Message.chat",
         "message_type": "chats.Message.role", "content": "chats.Message.content",
         "query_id": "chats.Message.query_id", "sql_query": "chats.Message.sql_query",
         "query_result": "chats.Message.query_result",
         "execution_time": "chats.Message.execution_time",
         "error_message": "chats.Message.error_message", "timestamp": "chats.Message.created_at",
         "sequence_number": "chats.Message.sequence_number"},
        "query_analytics": {"id": "usage.QueryAnalytics.source_pk",
         "query_id": "usage.QueryAnalytics.query_id", "user_id": "usage.QueryAnalytics.user",
         "question": "usage.QueryAnalytics.question", "sql_query": "usage.QueryAnalytics.sql_query",
         "execution_time": "usage.QueryAnalytics.execution_time",
         "row_count": "usage.QueryAnalytics.row_count", "success": "usage.QueryAnalytics.success",
         "error_message": "usage.QueryAnalytics.error_message",
         "chart_type": "usage.QueryAnalytics.chart_type",
         "prompt_tokens": "usage.ModelUsage.prompt_tokens",
         "completion_tokens": "usage.ModelUsage.completion_tokens",
         "total_tokens": "usage.ModelUsage.total_tokens",
         "llm_model": "usage.ModelUsage.model_name", "llm_cost_estimate": "usage.ModelUsage.cost",
         "timestamp": "usage.QueryAnalytics.timestamp",
         "created_at": "usage.QueryAnalytics.created_at"},
        "user_sessions": {"id": "core.UserSession.source_pk", "user_id": "core.UserSession.user",
         "session_start": "core.UserSession.session_start",
         "session_end": "core.UserSession.session_end", "ip_address": "core.UserSession.ip_address",
         "user_agent": "core.UserSession.user_agent",
         "queries_count": "core.UserSession.queries_count",
         "is_active": "core.UserSession.is_active"},
        "database_connections": {"id": "core.DatabaseConnection.source_pk",
         "user_id": "core.DatabaseConnection.user",
         "connection_name": "core.DatabaseConnection.connection_name",
         "db_type": "core.DatabaseConnection.db_type", "db_host": "core.DatabaseConnection.db_host",
         "db_port": "core.DatabaseConnection.db_port", "db_user": "core.DatabaseConnection.db_user",
         "encrypted_db_password": "core.DatabaseConnection.encrypted_db_password",
         "db_name": "core.DatabaseConnection.db_name",
         "created_at": "core.DatabaseConnection.created_at",
         "updated_at": "core.DatabaseConnection.updated_at"},
        "database_schemas": {"id": "core.DatabaseSchema.source_pk",
         "database_name": "core.DatabaseSchema.database_name",
         "table_name": "core.DatabaseSchema.table_name",
         "schema_info": "core.DatabaseSchema.schema_info",
         "last_updated": "core.DatabaseSchema.last_updated",
         "row_count": "core.DatabaseSchema.row_count",
         "table_size": "core.DatabaseSchema.table_size"},
        "audit_logs": {"id": "core.AuditLog.source_pk", "user_id": "core.AuditLog.user",
         "action": "core.AuditLog.action", "resource_type": "core.AuditLog.resource_type",
         "resource_id": "core.AuditLog.resource_id", "old_values": "core.AuditLog.old_values",
         "new_values": "core.AuditLog.new_values", "ip_address": "core.AuditLog.ip_address",
         "user_agent": "core.AuditLog.user_agent", "timestamp": "core.AuditLog.timestamp",
         "success": "core.AuditLog.success", "error_message": "core.AuditLog.error_message"},
        "events": {"id": "core.Event.source_pk", "event_type": "core.Event.event_type",
         "user_id": "core.Event.user", "event_data": "core.Event.event_data",
         "timestamp": "core.Event.timestamp", "ip_address": "core.Event.ip_address",
         "user_agent": "core.Event.user_agent", "session_id": "core.Event.session_id"},
        "performance_metrics": {"id": "usage.PerformanceMetric.source_pk",
         "metric_name": "usage.PerformanceMetric.metric_name",
         "metric_value": "usage.PerformanceMetric.metric_value",
         "metric_unit": "usage.PerformanceMetric.metric_unit",
         "timestamp": "usage.PerformanceMetric.timestamp",
         "additional_data": "usage.PerformanceMetric.additional_data"},
        "query_templates": {"id": "core.QueryTemplate.source_pk",
         "user_id": "core.QueryTemplate.user", "name": "core.QueryTemplate.name",
         "description": "core.QueryTemplate.description",
         "question_template": "core.QueryTemplate.question_template",
         "sql_template": "core.QueryTemplate.sql_template",
         "category": "core.QueryTemplate.category", "is_public": "core.QueryTemplate.is_public",
         "is_verified": "core.QueryTemplate.is_verified",
         "usage_count": "core.QueryTemplate.usage_count",
         "created_at": "core.QueryTemplate.created_at",
         "updated_at": "core.QueryTemplate.updated_at"},
        "system_config": {"id": "core.SystemConfig.source_pk",
         "config_key": "core.SystemConfig.config_key",
         "config_value": "core.SystemConfig.config_value",
         "description": "core.SystemConfig.description",
         "is_sensitive": "core.SystemConfig.is_sensitive",
         "created_at": "core.SystemConfig.created_at", "updated_at": "core.SystemConfig.updated_at",
         "updated_by": "core.SystemConfig.updated_by"},
    },
    "ai_chat_v2": {
        "users": {"id": "core.AppUser.source_pk", "email": "core.AppUser.email",
         "name": "core.AppUser.full_name", "hashed_password": "core.AppUser.password_hash",
         "is_active": "core.AppUser.is_active", "created_at": "core.AppUser.created_at",
         "updated_at": "core.AppUser.updated_at"},
        "sessions": {"id": "chats.Chat.source_pk", "title": "chats.Chat.title",
         "user_id": "chats.Chat.user", "created_at": "chats.Chat.created_at",
         "updated_at": "chats.Chat.updated_at"},
        "messages": {"id": "chats.Message.source_pk", "session_id": "chats.Message.chat",
         "role": "chats.Message.role", "content": "chats.Message.content",
         "persona": "chats.Message.persona", "tone": "chats.Message.tone",
         "behavior": "chats.Message.behavior", "context_type": "chats.Message.context_type",
         "confidence": "chats.Message.confidence",
         "signal_strength": "chats.Message.signal_strength",
         "context_clarity": "chats.Message.context_clarity",
         "needs_knowledge": "chats.Message.needs_knowledge",
         "model_name": "chats.Message.model_name", "prompt_tokens": "chats.Message.prompt_tokens",
         "completion_tokens": "chats.Message.completion_tokens",
         "is_mistake": "chats.Message.is_mistake", "mistake_note": "chats.Message.mistake_note",
         "created_at": "chats.Message.created_at"},
    },
}
# fmt: on
