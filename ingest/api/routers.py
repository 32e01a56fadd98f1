"""The three batch endpoints: read the request, call one write function."""

from ninja import Router

from .auth import api_key
from .schemas import (
    MAX_ITEMS,
    ChatBatch,
    ChatCounts,
    Counts,
    ErrorOut,
    FeedbackBatch,
    UsageBatch,
)
from .writers import write_chats, write_feedback, write_usage

ERRORS = dict.fromkeys((400, 401, 403, 409, 413, 422), ErrorOut)
BATCH = (
    f"At most {MAX_ITEMS} items; all or nothing; idempotent by the client's ids "
    "within the key's source."
)

usage = Router(tags=["usage"])
chats = Router(tags=["chats"])
feedback = Router(tags=["feedback"])


@usage.post(
    "",
    auth=api_key("usage:write"),
    response={200: Counts, **ERRORS},
    summary="Add or update LLM usage records",
    description=f"{BATCH} A record without cost is priced from the model price list.",
)
def post_usage(request, batch: UsageBatch):
    return write_usage(request.auth.ingest_source, batch.items)


@chats.post(
    "",
    auth=api_key("chats:write"),
    response={200: ChatCounts, **ERRORS},
    summary="Add or update chats with their messages",
    description=f"{BATCH} At most 10,000 messages per batch; messages not sent are kept.",
)
def post_chats(request, batch: ChatBatch):
    return write_chats(request.auth.ingest_source, batch.items)


@feedback.post(
    "",
    auth=api_key("feedback:write"),
    response={200: Counts, **ERRORS},
    summary="Add or update ratings of messages",
    description=f"{BATCH} One feedback per message; the message must have been sent before.",
)
def post_feedback(request, batch: FeedbackBatch):
    return write_feedback(request.auth.ingest_source, batch.items)
