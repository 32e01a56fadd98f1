"""One format per kind of figure (core.pages.formats, the ``figure`` filter):
edge values (0, negatives, 1e-9, 99999.995, 0.99995, None, infinity)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import timezone

from core.pages import formats
from core.pages.tables import Column, Table, csv_response


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "–"),
        ("", "–"),
        (0, "$0.00"),
        (Decimal("0E-8"), "$0.00"),
        (1, "$1.00"),
        (Decimal("1234.5649"), "$1,234.56"),
        (Decimal("1234.565"), "$1,234.57"),  # half up, not to even
        (99999.995, "$100,000.00"),  # a float: its shortest text, not 99999.99499…
        (Decimal("99999.994"), "$99,999.99"),
        (Decimal("0.001234"), "$0.001234"),
        (Decimal("0.0012345"), "$0.001235"),  # 4 significant digits
        (Decimal("0.86"), "$0.86"),  # no trailing zeros, at least cents
        (Decimal("0.5"), "$0.50"),
        (Decimal("0.003887901473610262881477856201"), "$0.003888"),
        (1e-9, "$0.000000001"),
        (Decimal("0.00000015"), "$0.00000015"),
        (Decimal("0.99994"), "$0.9999"),
        (Decimal("0.99996"), "$1.00"),  # rounds up to a dollar: cents
        (Decimal("-0.5"), "−$0.50"),
        (Decimal("-1234.567"), "−$1,234.57"),
        (float("inf"), "–"),
        (float("nan"), "–"),
    ],
)
def test_money(value, shown):
    assert formats.display(value, "money") == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "–"),
        (0, "0"),
        (28419, "28,419"),
        (1_000_000_000, "1,000,000,000"),
        (-1234, "−1,234"),
        (Decimal("1234.5"), "1,235"),
        (2**63 - 1, "9,223,372,036,854,775,807"),
    ],
)
def test_counts_and_tokens(value, shown):
    assert formats.display(value, "number") == shown


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (None, "–"),
        (0, "0 ms"),
        (1e-9, "0 ms"),
        (412.4, "412 ms"),
        (999.4, "999 ms"),
        (999.5, "1.00 s"),  # 1,000 ms once rounded: seconds
        (1000, "1.00 s"),
        (1234, "1.23 s"),
        (6250, "6.25 s"),
        (99999.995, "100.00 s"),
        (3_600_000, "3,600.00 s"),
        (-5, "−5 ms"),
    ],
)
def test_latency(ms, shown):
    assert formats.display(ms, "ms") == shown


def test_share_and_others():
    assert formats.display(0, "share") == "0.0%"
    assert formats.display(0.1234, "share") == "12.3%"
    assert formats.display(1.5599, "share") == "156.0%"
    assert formats.display(-0.04, "share") == "−4.0%"
    assert formats.display(float("inf"), "share") == "–"
    assert formats.display(Decimal("1234.567"), "decimal") == "1,234.57"
    assert formats.display(4, "rating") == "4.00 ★"
    assert formats.display(dt.timedelta(seconds=185), "duration") == "3 min 05 s"
    assert formats.display("text", "text") == "text"


def test_one_date_format(settings):
    settings.TIME_ZONE = "America/New_York"
    moment = dt.datetime(2024, 3, 14, 3, 30, tzinfo=dt.UTC)  # 13 Mar 23:30 in New York
    with timezone.override("America/New_York"):
        assert formats.display(dt.date(2024, 3, 4), "date") == "4 Mar 2024"
        assert formats.display(moment, "datetime") == "13 Mar 2024 23:30"
        assert formats.display(moment, "date") == "13 Mar 2024"
        assert formats.display(dt.date(2024, 3, 4), "datetime") == "4 Mar 2024"


def test_the_template_filter_is_the_same_function():
    template = Template(
        "{% load figures %}{{ a|figure:'money' }} {{ b|figure:'ms' }} {{ c|figure }} {{ d|figure }}"
    )
    shown = template.render(Context({"a": Decimal("0.0012345"), "b": 1234, "c": 28419, "d": None}))
    assert shown == "$0.001235 1.23 s 28,419 –"


@pytest.mark.parametrize(
    ("value", "kind", "cell"),
    [
        (Decimal("0.003887901473610262881477856201"), "money", "0.00388790"),
        (Decimal("7800.018"), "money", "7800.01800000"),
        (1e-9, "money", "0.00000000"),
        (99999.995, "money", "99999.99500000"),
        (1234.56789, "ms", "1235"),
        (0.666666, "share", "66.67"),
        (float("inf"), "share", float("inf")),
        (dt.timedelta(seconds=10), "duration", "10.00"),
        (12.345678, "decimal", "12.35"),
        (Decimal("1234.6"), "number", 1235),
        (None, "money", None),
        (dt.date(2024, 3, 4), "date", "2024-03-04"),
        ("x", "text", "x"),
    ],
)
def test_csv_values_are_rounded(value, kind, cell):
    assert formats.csv_value(value, kind) == cell


def test_csv_headers_name_units_and_cells_are_rounded():
    table = Table(
        "t",
        "T",
        [
            Column("model", "Model"),
            Column("cost", "Cost", "money"),
            Column("latency", "Latency", "ms"),
            Column("share", "Share", "share"),
            Column("tokens", "Tokens", "number"),
        ],
        [
            {
                "model": "=HYPERLINK()",
                "cost": Decimal("0.003887901473610262881477856201"),
                "latency": 412.345,
                "share": 0.5,
                "tokens": 10,
            }
        ],
    )
    response = csv_response(table, "usage-overview-t-2024-03-01-to-2024-03-14")
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines() == [
        "Model,Cost (USD),Latency (ms),Share (%),Tokens",
        "'=HYPERLINK(),0.00388790,412,50.00,10",
    ]
    assert response["Content-Disposition"] == (
        'attachment; filename="usage-overview-t-2024-03-01-to-2024-03-14.csv"'
    )
