"""Tables of the custom pages: one definition serves the HTML and the CSV,
and the one CSV writer every export uses."""

import csv
from dataclasses import dataclass, field

from django.http import StreamingHttpResponse


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # a kind of usage.templatetags.figures.figure


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
    cells: list = field(init=False)

    def __post_init__(self):
        self.cells = [
            {
                "values": [(column, row.get(column.key)) for column in self.columns],
                "url": self.link(row) if self.link else None,
            }
            for row in self.rows
        ]


def csv_cell(value):
    """One value as a CSV cell: None empty."""
    return "" if value is None else value


class _Echo:
    def write(self, value):
        return value


def csv_response(table, filename):
    """Stream a table as CSV: raw values, one header row."""
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow([csv_cell(column.label) for column in table.columns])
        for row in table.rows:
            yield writer.writerow([csv_cell(row.get(c.key)) for c in table.columns])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response
