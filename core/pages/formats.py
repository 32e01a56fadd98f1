"""One format per kind of figure, for every page, chart and CSV (#18).

``display(value, kind)`` is what a page shows (the ``figure`` template
filter is this function); ``csv_value(value, kind)`` what a CSV cell holds
(rounded, no unit: the unit is in the header, ``csv_label``).

- money: whole cents from $1 up ($1,234.56), up to 4 significant digits
  below ($0.001234, $0.86), $0.00 for zero; a negative amount reads −$1.23;
- number (counts, tokens): thousands separators (28,419);
- ms (latency): seconds from 1 s up (1.23 s), whole ms below (412 ms);
- share: a percentage to one decimal (12.3%); change: a signed one (+12.3%);
- money_change: a signed difference of money (+$1.20, −$0.0004);
- date: 13 Mar 2024; datetime: 13 Mar 2024 14:05 (local time);
- None (or ""): an en dash.
"""

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils import timezone
from django.utils.formats import date_format

MISSING = "–"
MINUS = "−"
DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y H:i"
# What a kind's CSV header says its values are in.
CSV_UNITS = {
    "money": "USD",
    "money_change": "USD",
    "ms": "ms",
    "share": "%",
    "change": "%",
    "duration": "s",
}
# Decimal places a CSV cell of a kind is rounded to (money: the ledger's
# 8 places, so a CSV's rows still add up to its total).
CSV_PLACES = {
    "money": 8,
    "money_change": 8,
    "ms": 0,
    "share": 2,
    "change": 2,
    "duration": 2,
    "decimal": 2,
    "rating": 2,
}


def _decimal(value):
    """A Decimal of a number (floats through their shortest text, so 0.1 is
    0.1); None for what is not a finite number."""
    if isinstance(value, Decimal):
        number = value
    else:
        try:
            number = Decimal(str(value))
        except (InvalidOperation, ValueError):
            return None
    return number if number.is_finite() else None


def _grouped(number, places):
    """``number`` rounded half up to ``places`` decimals, with thousands
    separators."""
    rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{rounded:,.{places}f}"


def _signed(number, text):
    return f"{MINUS}{text}" if number < 0 else text


def money(value):
    number = _decimal(value)
    if number is None:
        return MISSING
    size = abs(number)
    if size == 0:
        return "$0.00"
    if size < 1:
        # 4 significant digits; 0.99996 rounds up to 1.000, read as $1.00.
        rounded = size.quantize(Decimal(1).scaleb(size.adjusted() - 3), rounding=ROUND_HALF_UP)
        if rounded < 1:
            # Trailing zeros say nothing: $0.86, $0.003, not $0.8600, $0.003000.
            text = f"{rounded:f}".rstrip("0")
            return _signed(number, f"${text}{'0' * max(0, 2 - len(text.split('.')[1]))}")
    return _signed(number, f"${_grouped(size, 2)}")


def money_change(value):
    """A difference of money: +$1.20, −$0.0004, $0.00."""
    number = _decimal(value)
    if number is None:
        return MISSING
    return ("+" if number > 0 else "") + money(number)


def change(value):
    """A relative change: +12.3%, −4.0%."""
    number = _decimal(value)
    if number is None:
        return MISSING
    return ("+" if number >= 0 else MINUS) + f"{_grouped(abs(number) * 100, 1)}%"


def count(value):
    number = _decimal(value)
    if number is None:
        return MISSING
    return _signed(number, _grouped(abs(number), 0))


def latency(ms):
    number = _decimal(ms)
    if number is None:
        return MISSING
    size = abs(number)
    if size.quantize(Decimal(1), rounding=ROUND_HALF_UP) < 1000:
        return _signed(number, f"{_grouped(size, 0)} ms")
    return _signed(number, f"{_grouped(size / 1000, 2)} s")


def share(value):
    number = _decimal(value)
    if number is None:
        return MISSING
    return _signed(number, f"{_grouped(abs(number) * 100, 1)}%")


def duration(seconds):
    """Seconds (or a timedelta) for reading: '0.42 s', '12.5 s', '3 min 05 s',
    '2 h 04 min'."""
    seconds = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def a_date(value):
    if isinstance(value, datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
    return date_format(value, DATE_FORMAT)


def a_datetime(value):
    if isinstance(value, datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    elif isinstance(value, date) and not isinstance(value, datetime):
        return a_date(value)
    return date_format(value, DATETIME_FORMAT)


def display(value, kind="number"):
    """A figure of ``kind`` for reading (see the module)."""
    if value is None or value == "":
        return MISSING
    if kind == "money":
        return money(value)
    if kind == "number":
        return count(value)
    if kind == "money_change":
        return money_change(value)
    if kind == "change":
        return change(value)
    if kind == "ms":
        return latency(value)
    if kind == "share":
        return share(value)
    if kind == "rating":
        return f"{float(value):.2f} ★"
    if kind == "decimal":
        number = _decimal(value)
        return MISSING if number is None else _signed(number, _grouped(abs(number), 2))
    if kind == "duration":
        return duration(value)
    if kind == "date":
        return a_date(value)
    if kind == "datetime":
        return a_datetime(value)
    return value


def csv_label(label, kind):
    """A CSV header: the column's label and its unit ("Cost (USD)")."""
    unit = CSV_UNITS.get(kind)
    return f"{label} ({unit})" if unit else label


def csv_value(value, kind):
    """A CSV cell of ``kind``: numbers rounded (CSV_PLACES, as fixed-point
    text; shares as percentages, durations in seconds), counts as integers,
    dates in ISO 8601, text as it is."""
    if value is None or value == "" or isinstance(value, bool):
        return value
    if kind == "duration" and isinstance(value, timedelta):
        value = value.total_seconds()
    if kind == "number" and isinstance(value, int | float | Decimal):
        number = _decimal(value)
        return value if number is None else int(number.quantize(1, rounding=ROUND_HALF_UP))
    if kind in CSV_PLACES and isinstance(value, int | float | Decimal):
        number = _decimal(value)
        if number is None:  # infinity (a share of a zero limit)
            return value
        if kind in ("share", "change"):
            number *= 100
        places = CSV_PLACES[kind]
        # As fixed-point text: a Decimal would print 0 to 8 places as "0E-8".
        return f"{number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):f}"
    if isinstance(value, datetime):
        return (timezone.localtime(value) if timezone.is_aware(value) else value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value
