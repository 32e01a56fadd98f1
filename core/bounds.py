"""The bounds every writer holds a row to: ingest API, importers, admin, demo.

A quantity outside them cannot be a real LLM call or a real event; stored, it
would break the figures summed from it (a sum past 2^63, a day in year 9999
that no period can name). The ledger refuses such a row, the importers report
it, the API answers 422. One place, so every writer agrees.

- Tokens per call: 0 … 10^9. The largest context windows are about 10^7
  tokens; 10^9 leaves room for batch jobs and keeps a sum of a billion rows
  (10^18) under 2^63 ≈ 9.2·10^18.
- Token counts that are part of another (cached input of prompt, reasoning
  of completion tokens): no more than the whole.
- Cost per call: 0 … 10^5 USD. No single call costs more; ten million calls at
  the bound still fit the ledger's Decimal(20, 8) and its sums.
- Times: 2000-01-01 (before any LLM application) … now + 1 day (clocks skew,
  and a source in a time zone ahead of UTC may stamp "tomorrow").
"""

import datetime as dt
from decimal import Decimal

from django.utils import timezone

TOKENS_MAX = 10**9
COST_MAX = Decimal(10**5)
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FUTURE_SLACK = dt.timedelta(days=1)


def latest():
    """The latest time a row may carry: now + one day."""
    return timezone.now() + FUTURE_SLACK


def tokens_problem(value):
    """Why a token count is impossible, or None (None counts as no value)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"tokens {value!r} is not a whole number"
    if not 0 <= value <= TOKENS_MAX:
        return f"tokens {value} outside 0…{TOKENS_MAX:,}"
    return None


def part_problem(part, whole):
    """Why a token count that is part of another (cached input tokens of the
    prompt tokens, reasoning tokens of the completion tokens) cannot be, or
    None: a part larger than its whole. Unknown (None) counts pass."""
    if part is None or whole is None or tokens_problem(part) or tokens_problem(whole):
        return None
    if part > whole:
        return f"{part} is more than the {whole} of"
    return None


def cost_problem(value):
    """Why a cost in USD is impossible, or None (None is "not reported")."""
    if value is None:
        return None
    try:
        value = Decimal(value)
    except (ArithmeticError, TypeError, ValueError):
        return f"cost {value!r} is not a number"
    if not value.is_finite() or not 0 <= value <= COST_MAX:
        return f"cost {value} outside 0…{COST_MAX:,} USD"
    return None


def time_problem(value, latest_time=None):
    """Why a timestamp is impossible, or None (None counts as no value).

    ``latest_time``: ``latest()`` taken once by a caller checking many rows."""
    if value is None:
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.UTC)
    if not EARLIEST <= value <= (latest_time or latest()):
        return f"time {value.isoformat()} outside {EARLIEST.date()} … now + 1 day"
    return None
