"""Tables of the custom pages: one definition serves the HTML and the CSV,
and the one CSV writer every export uses."""

import csv
import re
from dataclasses import dataclass, field
from decimal import Decimal

from django.http import StreamingHttpResponse

from .formats import csv_label, csv_value


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # a kind of usage.templatetags.figures.figure
    # In the CSV only: the page shows it another way (unpriced requests
    # beside the cost they are missing from).
    csv_only: bool = False


# The row key of the calls without a price behind a row's cost: the page
# flags its cost column with their number (``Table.cells``).
UNPRICED = "unpriced_requests"


@dataclass
class Table:
    name: str
    title: str
    columns: list
    rows: list
    # row → URL of the row's page (or None)
    link: object = None
    # False when the URLs carry their own query (a drill-down, a transcript
    # anchor): the page's filters are then not appended to them.
    link_keeps_query: bool = True
    link_key: str | None = None
    sortable: bool = False
    note: str = ""
    # A row under the others (a total): shown on the page, not in the CSV,
    # which holds the rows only.
    footer: dict | None = None
    # What the page says without rows, and links under the table
    # ([(label, url)]: "Set a budget").
    empty: str = "Nothing in this period."
    actions: list = field(default_factory=list)
    # The money column a row's unpriced requests (UNPRICED) are flagged on.
    flag_unpriced_on: str = "cost"
    page_columns: list = field(init=False)
    cells: list = field(init=False)
    footer_cells: list = field(init=False)

    def __post_init__(self):
        self.page_columns = [column for column in self.columns if not column.csv_only]
        self.cells = [self._cells(row) for row in self.rows]
        self.footer_cells = self._cells(self.footer)["values"] if self.footer else []

    def _cells(self, row):
        """A row as the page shows it: (column, value, unpriced requests to
        flag on that cell or None) per column, and the row's URL."""
        unpriced = row.get(UNPRICED) or None
        return {
            "values": [
                (
                    column,
                    row.get(column.key),
                    unpriced if column.key == self.flag_unpriced_on else None,
                )
                for column in self.page_columns
            ],
            "url": self.link(row) if self.link and row is not self.footer else None,
        }


# OWASP, "CSV Injection": a spreadsheet reads a cell starting with one of
# these as a formula (or, for tab and carriage return, strips them and reads
# what follows); a leading single quote makes it text. A plain number
# (-3.5, +7, 1e-3) is left as it is.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value):
    """One value as a CSV cell: None empty, numbers as they are, any other
    text that a spreadsheet would run as a formula quoted."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float | Decimal):
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


class _Echo:
    def write(self, value):
        return value


def csv_response(table, filename):
    """Stream a table as CSV: a header row naming each column's unit, values
    rounded by kind (core.pages.formats.csv_value), every cell through
    ``csv_cell``."""
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow([csv_cell(csv_label(c.label, c.kind)) for c in table.columns])
        for row in table.rows:
            yield writer.writerow(
                [csv_cell(csv_value(row.get(c.key), c.kind)) for c in table.columns]
            )

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response
