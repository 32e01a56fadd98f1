"""AI Chat v2 (seeds/ai-chat-v2-schema.md): users, sessions and messages
with AI metadata and the staff mistake flag. Keys are UUIDs.

An assistant message that carries token counts is also an LLM call: it gets
a ``usage.ModelUsage`` row (same source pk as the message), priced from
``ModelPrice`` since the source records no cost.
"""

from chats.models import Chat, Message
from core.models import AppUser

from .converters import boolean, integer, number, provider_of, role, timestamp
from .spec import Col, Fk, Mapping, Table

# Columns added by the app's later migrations (v2.0 tone/behaviour, v2.1
# signal strength, the mistake flag): an older database reads them as NULL.
LATER_COLUMNS = frozenset(
    {
        "tone",
        "behavior",
        "signal_strength",
        "context_clarity",
        "needs_knowledge",
        "is_mistake",
        "mistake_note",
    }
)


def assistant_usage(values, usage):
    """The ledger row of an assistant message with token counts, else None."""
    tokens = (values.get("prompt_tokens"), values.get("completion_tokens"))
    if values.get("role") != Message.Role.ASSISTANT or tokens == (None, None):
        return None
    model_name = values.get("model_name") or "unknown"
    return {
        "model_name": model_name,
        "provider": provider_of(model_name),
        "prompt_tokens": tokens[0] or 0,
        "completion_tokens": tokens[1] or 0,
        "cost": None,
        "timestamp": values.get("created_at"),
        "user_id": values.get("_chat.user_id"),
        "chat_id": values.get("chat_id"),
        "request_time_ms": None,
    }


MAPPING = Mapping(
    kind="ai_chat_v2",
    identifying=("users", "sessions", "messages"),
    tables=(
        Table(
            "users",
            AppUser,
            pk="id",
            updated_at="updated_at",
            columns={
                "email": Col("email"),
                "name": Col("full_name"),
                "hashed_password": Col("password_hash"),
                "is_active": Col("is_active", boolean),
                "created_at": Col("created_at", timestamp),
                "updated_at": Col("updated_at", timestamp),
            },
        ),
        Table(
            "sessions",
            Chat,
            pk="id",
            updated_at="updated_at",
            columns={
                "title": Col("title"),
                "user_id": Fk("user", AppUser),
                "created_at": Col("created_at", timestamp),
                "updated_at": Col("updated_at", timestamp),
            },
        ),
        Table(
            "messages",
            Message,
            pk="id",
            optional=LATER_COLUMNS,
            # The tokens are also the ledger row's: an impossible count refuses.
            defining=frozenset({"role", "content", "prompt_tokens", "completion_tokens"}),
            columns={
                "session_id": Fk("chat", Chat, carry=("user_id",)),
                "role": Col("role", role),
                "content": Col("content"),
                "persona": Col("persona"),
                "tone": Col("tone"),
                "behavior": Col("behavior"),
                "context_type": Col("context_type"),
                "confidence": Col("confidence", number),
                "signal_strength": Col("signal_strength", number),
                "context_clarity": Col("context_clarity", boolean),
                "needs_knowledge": Col("needs_knowledge", boolean),
                "model_name": Col("model_name"),
                "prompt_tokens": Col("prompt_tokens", integer),
                "completion_tokens": Col("completion_tokens", integer),
                "is_mistake": Col("is_mistake", boolean),
                "mistake_note": Col("mistake_note"),
                "created_at": Col("created_at", timestamp),
            },
            ledger=assistant_usage,
            # A flag a reviewer set here wins over the source's.
            keep_local={"is_mistake": "mistake_flagged_at", "mistake_note": "mistake_flagged_at"},
        ),
    ),
)
