"""Small named functions that turn one source value into one field value.

Each takes the raw value as the source driver returned it (SQLite gives text
for dates and JSON, 0/1 for booleans; psycopg gives datetimes and booleans)
and returns the value for our field, or raises ``ValueError`` with a short
reason; the engine then refuses the row with "<column>: <reason>".
NULL stays None everywhere: what a NULL becomes is the field's business
(see ``checks.py``).
"""

import ast
import datetime as dt
import json
import math
import re
from decimal import Decimal, InvalidOperation

from chats.models import Message

UTC = dt.UTC


def text(value):
    """Text as it is; numbers, UUIDs and addresses as their text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        raise ValueError("binary data where text was expected")
    return str(value)


def utf8_problem(value):
    """Why text cannot be stored (bytes the source could not decode), or None.

    The SQLite reader decodes with ``surrogateescape``, so undecodable bytes
    reach here as lone surrogates instead of stopping the read."""
    if value.isascii():
        return None
    try:
        value.encode()
    except UnicodeEncodeError as error:
        return f"not valid UTF-8 (byte {error.start})"
    return None


def integer(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    raise ValueError(f"not an integer: {value!r}")


def number(value):
    if value is None:
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a number: {value!r}") from None
    if not math.isfinite(result):
        raise ValueError(f"not a finite number: {value!r}")
    return result


def decimal(value):
    """A USD amount; floats go through their shortest text (0.1 → 0.1, not 0.1000…05)."""
    if value is None:
        return None
    try:
        result = Decimal(repr(value) if isinstance(value, float) else str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"not a number: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


TRUE = {"1", "t", "true", "y", "yes"}
FALSE = {"0", "f", "false", "n", "no"}


def boolean(value):
    """SQLite's 0/1, PostgreSQL's true/false, and their text spellings."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise ValueError(f"not a boolean (0/1): {value!r}")


def timestamp(value):
    """An aware UTC datetime. Naive source times are UTC (the apps write utcnow())."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time())
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not a date-time: {value!r}") from None
    else:
        raise ValueError(f"not a date-time: {value!r}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def json_value(value):
    """A JSON column (or a TEXT column holding JSON) as Python data.

    '' (or only blanks) is no value: None, as SQLite applications often
    store for "nothing yet". Text that is not JSON but a plain Python
    literal (``"['a', 'b']"``, a list's repr written by ``str(list)``) is
    read with ``ast.literal_eval``, which evaluates literals only, never
    code. Anything else raises ``ValueError``; so does nesting too deep to
    read (a RecursionError), reported as such.
    """
    if value is None or not isinstance(value, str | bytes):
        return value
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            raise ValueError("JSON that is not valid UTF-8") from None
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except RecursionError:
        raise ValueError("JSON nested too deep to read") from None
    except ValueError as error:
        literal = python_literal(value)
        if literal is not NOT_A_LITERAL:
            return literal
        raise ValueError(f"invalid JSON ({error.msg} at char {error.pos})") from None


NOT_A_LITERAL = object()
LITERAL_MAX_CHARS = 100_000


def python_literal(value):
    """``value`` read as a Python literal that JSON can hold, else NOT_A_LITERAL."""
    if len(value) > LITERAL_MAX_CHARS:
        return NOT_A_LITERAL
    try:
        result = ast.literal_eval(value.strip())
        json.dumps(result, allow_nan=False)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return NOT_A_LITERAL
    if not isinstance(result, list | dict | tuple):
        return NOT_A_LITERAL  # a bare word or number is not what the column holds
    return list(result) if isinstance(result, tuple) else result


ROLE_SYNONYMS = {"ai": Message.Role.ASSISTANT.value}


def role(value):
    """A message sender as our role: auto-analyst's 'ai' is 'assistant'.

    Anything else is kept as it is, so the role check refuses what is
    outside user/assistant/system instead of guessing.
    """
    if value is None:
        return None
    value = text(value)
    return ROLE_SYNONYMS.get(value.strip().lower(), value)


# Provider inference, for sources that name the model but not its provider
# (text-to-sql ``llm_model``, ai-chat-v2 ``model_name``). First match wins:
#   1. an explicit "provider/model" name: "openai/gpt-4o" → openai;
#   2. the model family, by the start of the name (case-insensitive):
PROVIDER_PREFIXES = (
    (("gpt-", "gpt4", "chatgpt", "o1", "o3", "o4", "text-embedding", "davinci"), "openai"),
    (("claude",), "anthropic"),
    (("gemini", "palm", "text-bison", "chat-bison"), "google"),
    (("llama", "meta-llama", "gemma", "mixtral", "deepseek", "qwen", "kimi"), "groq"),
    (("mistral", "codestral", "ministral", "pixtral"), "mistral"),
    (("command",), "cohere"),
)
#   3. otherwise "unknown".
# The open-weight families are attributed to groq, the host the analyst
# applications (and the demo price list) use for them.
UNKNOWN_PROVIDER = "unknown"


def provider_of(model_name):
    """The provider that serves ``model_name``, by the rule above."""
    if not model_name:
        return UNKNOWN_PROVIDER
    name = model_name.strip().lower()
    prefix, found, rest = name.partition("/")
    if found and prefix and rest:
        return prefix
    for prefixes, provider in PROVIDER_PREFIXES:
        if name.startswith(prefixes):
            return provider
    return UNKNOWN_PROVIDER
