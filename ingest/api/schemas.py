"""Request and response schemas of the ingest API, all in one place.

pydantic (through django-ninja) validates every field; the bounds below keep
each value inside its database column (and inside core.bounds, the limits
every writer holds rows to), so bad input is a 422 with the path of the
field, never a database error.

Types are strict: a number is a JSON number (``"10"`` is not 10, ``true`` is
not 1), a boolean is ``true`` or ``false`` (not ``"yes"`` or 1), and a time is
an ISO 8601 string with a time zone (not a Unix timestamp, as a number or as
a string of digits). Only client ids take a JSON integer as text.
"""

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from ninja import Schema
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from core import bounds
from usage.ledger import PARTS  # token counts that are part of another

# Items in one batch (every endpoint) and messages in one POST /chats batch.
MAX_ITEMS = 1000
MAX_MESSAGES = 10_000
INT32 = 2**31 - 1
# Generous for one LLM call, and small enough that the roll-up sums never overflow.
MAX_TOKENS = bounds.TOKENS_MAX
MAX_COST = bounds.COST_MAX


def _storable(value: str) -> str:
    # PostgreSQL refuses NUL in text; a lone surrogate cannot be encoded at all.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _text(max_length=None, min_length=0):
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=max_length),
        AfterValidator(_storable),
    ]


def _integer_as_text(value):
    # Source applications often number their rows: 17 is taken as "17".
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _iso_8601(value):
    # pydantic's own datetime also takes 1714557600 and "1714557600".
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date and time string, e.g. 2024-05-01T10:00:00Z")
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "must be an ISO 8601 date and time with a time zone, e.g. 2024-05-01T10:00:00Z"
        ) from None


def _in_range(value: dt.datetime) -> dt.datetime:
    if bounds.time_problem(value):
        raise ValueError(f"must be between {bounds.EARLIEST.date()} and now + 1 day")
    return value


def _json_number(value):
    # Decimal would also take "12.5"; a string is not a number here.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a JSON number")
    return value


def _email(value: str) -> str:
    try:
        validate_email(value)
    except DjangoValidationError:
        raise ValueError("must be an e-mail address") from None
    return value


ClientId = Annotated[_text(100, 1), BeforeValidator(_integer_as_text)]
Name50 = _text(50, 1)
Name100 = _text(100, 1)
Name150 = _text(150, 1)
Name255 = _text(255)
Text = _text()
Email = Annotated[_text(255), AfterValidator(_email)]
Slug = Annotated[str, StringConstraints(max_length=100, pattern=r"^[-a-zA-Z0-9_]+$")]
Moment = Annotated[AwareDatetime, BeforeValidator(_iso_8601), AfterValidator(_in_range)]
Tokens = Annotated[StrictInt, Field(ge=0, le=MAX_TOKENS)]
Int32 = Annotated[StrictInt, Field(ge=0, le=INT32)]
Score = Annotated[StrictFloat, Field(ge=0, le=1)]
Cost = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    Field(ge=0, le=MAX_COST),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": int(MAX_COST)}),
]


class Item(Schema):
    """An item of a batch: unknown fields and NaN/Infinity are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# ---- POST /usage -------------------------------------------------------------


class UsageIn(Item):
    """One LLM call for the usage ledger."""

    id: ClientId = Field(description="The client's id of the record (becomes source_pk).")
    user_id: ClientId | None = Field(None, description="Client id of an app user sent before.")
    chat_id: ClientId | None = Field(None, description="Client id of a chat sent before.")
    model_name: Name100
    provider: Name50
    prompt_tokens: Tokens = 0
    completion_tokens: Tokens = 0
    total_tokens: Tokens | None = Field(None, description="Omitted: prompt + completion.")
    cached_input_tokens: Tokens | None = Field(
        None,
        description="Prompt tokens served from the provider's prompt cache: part of "
        "prompt_tokens (OpenAI's prompt_tokens_details.cached_tokens), at most prompt_tokens. "
        "Omitted or null: not reported.",
    )
    reasoning_tokens: Tokens | None = Field(
        None,
        description="Completion tokens spent on reasoning: part of completion_tokens (OpenAI's "
        "completion_tokens_details.reasoning_tokens), at most completion_tokens. Omitted or "
        "null: not reported.",
    )
    query_size: Int32 = 0
    response_size: Int32 = 0
    cost: Cost | None = Field(
        None, description="USD. Omitted: priced from the model price list (cost_source computed)."
    )
    timestamp: Moment
    is_streaming: StrictBool = False
    request_time_ms: Int32 | None = None

    @field_validator("cached_input_tokens", "reasoning_tokens")
    @classmethod
    def _part_of_its_whole(cls, value, info):
        whole = PARTS[info.field_name]
        if value is not None and whole in info.data:  # absent: refused on its own
            problem = bounds.part_problem(value, info.data[whole])
            if problem:
                raise ValueError(f"{problem} {whole}")
        return value


class UsageBatch(Schema):
    items: list[UsageIn] = Field(min_length=1, max_length=MAX_ITEMS)


# ---- POST /chats -------------------------------------------------------------


class AppUserIn(Item):
    """An app user, created or updated by (source, id). Omitted fields are kept."""

    id: ClientId
    email: Email | None = None
    username: Name150 | None = None
    full_name: Name255 | None = None


class MessageIn(Item):
    id: ClientId
    role: Literal["user", "assistant", "system"]
    content: Text
    created_at: Moment
    model_name: Name100 | None = None
    prompt_tokens: Tokens | None = None
    completion_tokens: Tokens | None = None
    # ai-chat-v2 metadata
    persona: Name100 | None = None
    tone: Name100 | None = None
    behavior: Name100 | None = None
    context_type: Name100 | None = None
    confidence: Score | None = None
    signal_strength: Score | None = None
    context_clarity: StrictBool | None = None
    needs_knowledge: StrictBool = False


class ChatIn(Item):
    id: ClientId
    user: ClientId | AppUserIn | None = Field(
        None,
        description="Client id of an app user sent before, or an object that creates or "
        "updates it; null for an anonymous chat.",
    )
    title: Name255 = "New Chat"
    organization: Slug | None = Field(
        None, description="Organisation slug; an unknown slug creates the organisation."
    )
    created_at: Moment
    updated_at: Moment | None = None
    messages: list[MessageIn] = Field(default_factory=list, max_length=MAX_ITEMS)


class ChatBatch(Schema):
    items: list[ChatIn] = Field(min_length=1, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _few_enough_messages(self):
        if sum(len(chat.messages) for chat in self.items) > MAX_MESSAGES:
            raise ValueError(f"at most {MAX_MESSAGES} messages in one batch")
        return self


# ---- POST /feedback ----------------------------------------------------------


class FeedbackIn(Item):
    id: ClientId
    message_id: ClientId = Field(description="Client id of a message sent before.")
    rating: StrictInt = Field(ge=1, le=5)
    model_name: Name100 | None = None
    model_provider: Name50 | None = None
    temperature: Annotated[StrictFloat, Field(ge=0)] | None = None
    max_tokens: Int32 | None = None
    created_at: Moment
    updated_at: Moment | None = None


class FeedbackBatch(Schema):
    items: list[FeedbackIn] = Field(min_length=1, max_length=MAX_ITEMS)


# ---- responses ---------------------------------------------------------------


class Counts(Schema):
    """What a batch did: rows created, updated (changed since last sent), unchanged."""

    created: int
    updated: int
    unchanged: int


class ChatCounts(Counts):
    messages: Counts
    users: Counts = Field(description="App users sent as objects.")


class FieldError(Schema):
    path: str = Field(description="Dotted path of the field, e.g. items.3.rating.")
    message: str
    type: str


class RefusedItem(Schema):
    index: int
    id: str | None
    errors: list[FieldError]


class ErrorOut(Schema):
    detail: str
    errors: list[FieldError] = []
    refused: list[RefusedItem] = Field(
        [], description="Every refused item of the batch, with its reasons."
    )
