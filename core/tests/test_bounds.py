import datetime as dt
from decimal import Decimal

from django.utils import timezone

from core import bounds


def test_tokens():
    assert bounds.tokens_problem(None) is None
    assert bounds.tokens_problem(0) is None
    assert bounds.tokens_problem(10**9) is None
    assert "outside" in bounds.tokens_problem(10**9 + 1)
    assert "outside" in bounds.tokens_problem(-1)
    assert "outside" in bounds.tokens_problem(2**63 - 1)
    assert "whole number" in bounds.tokens_problem(True)
    assert "whole number" in bounds.tokens_problem("10")


def test_cost():
    assert bounds.cost_problem(None) is None
    assert bounds.cost_problem(Decimal(0)) is None
    assert bounds.cost_problem(Decimal("100000")) is None
    assert "outside" in bounds.cost_problem(Decimal("100000.00000001"))
    assert "outside" in bounds.cost_problem(Decimal("-0.01"))
    assert "outside" in bounds.cost_problem(1e30)
    assert "outside" in bounds.cost_problem(Decimal("NaN"))
    assert "not a number" in bounds.cost_problem("lots")


def test_times():
    assert bounds.time_problem(None) is None
    assert bounds.time_problem(bounds.EARLIEST) is None
    assert bounds.time_problem(timezone.now() + dt.timedelta(hours=23)) is None
    assert "outside" in bounds.time_problem(timezone.now() + dt.timedelta(days=2))
    assert "outside" in bounds.time_problem(dt.datetime(1999, 12, 31, 23, 59, tzinfo=dt.UTC))
    assert "outside" in bounds.time_problem(dt.datetime(9999, 1, 1, tzinfo=dt.UTC))
    # a naive value is read as UTC
    assert bounds.time_problem(dt.datetime(2025, 1, 1)) is None  # noqa: DTZ001
