"""What an import tells: counts per source table, and the report file.

The report is JSON Lines, one object per line:

- a refused row: ``{"outcome": "refused", "table", "source_pk", "reason",
  "row"}`` (``row`` is the raw source row, dates and decimals as text);
- a value dropped from a row that landed without it: ``{"outcome": "value
  dropped", "table", "source_pk", "column", "reason", "value"}`` (the raw
  value, cut to ``VALUE_MAX_CHARS``);
- a documented table or column the source lacks, or one it has that the
  kind's schema does not document: ``{"outcome": "absent at source" |
  "ignored", "table", "column" (or null), "reason"}``;
- rows deleted at the source (kept here): ``{"outcome": "deleted at
  source", "table", "deleted_at_source", "sample_pks", "reason"}``.

The file is created with the first line, so a clean run leaves none.
"""

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path

DELETED_SAMPLE = 20
VALUE_MAX_CHARS = 200
REFUSED, DROPPED = "refused", "value dropped"


def shown(value):
    """A raw value for the report: text cut to VALUE_MAX_CHARS, with its length."""
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value)
        return f"<{len(value)} bytes>"
    if isinstance(value, str) and len(value) > VALUE_MAX_CHARS:
        return f"{value[:VALUE_MAX_CHARS]}… ({len(value):,} characters)"
    return value


@dataclass
class TableStats:
    table: str
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    dropped: int = 0
    deleted_at_source: int = 0
    seconds: float = 0.0

    COLUMNS = (
        "read",
        "created",
        "updated",
        "unchanged",
        "refused",
        "dropped",
        "deleted_at_source",
    )


class Report:
    def __init__(self, path):
        self.path = Path(path)
        self._file = None
        self.lines = 0
        # (table, outcome, reason with its values blanked) → [count, first (pk, reason)]
        self.tally = {}

    def _count(self, table, outcome, source_pk, reason):
        key = (table, outcome, reason_pattern(reason))
        if key in self.tally:
            self.tally[key][0] += 1
        else:
            self.tally[key] = [1, (source_pk, reason)]

    def _write(self, record):
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self.lines += 1

    def refused(self, table, source_pk, reason, row):
        row = {name: shown(value) for name, value in row.items()}
        self._count(table, REFUSED, source_pk, reason)
        self._write(
            {
                "outcome": REFUSED,
                "table": table,
                "source_pk": source_pk,
                "reason": reason,
                "row": row,
            }
        )

    def dropped(self, table, source_pk, column, reason, value):
        self._count(table, DROPPED, source_pk, reason)
        self._write(
            {
                "outcome": DROPPED,
                "table": table,
                "source_pk": source_pk,
                "column": column,
                "reason": reason,
                "value": shown(value),
            }
        )

    def note(self, outcome, table, column, reason):
        """A table or column absent at the source, or present and undocumented."""
        self._write({"outcome": outcome, "table": table, "column": column, "reason": reason})

    def deleted(self, table, count, sample):
        self._write(
            {
                "outcome": "deleted at source",
                "table": table,
                "deleted_at_source": count,
                "sample_pks": sample,
                "reason": "deleted at the source; kept here",
            }
        )

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


def summary_table(stats):
    """The final table: one line per source table, then the totals."""
    headers = ("table", *TableStats.COLUMNS, "seconds")
    total = TableStats("total")
    for row in stats:
        for f in fields(TableStats):
            if f.name != "table":
                setattr(total, f.name, getattr(total, f.name) + getattr(row, f.name))
    lines = [
        (row.table, *(str(getattr(row, c)) for c in TableStats.COLUMNS), f"{row.seconds:.1f}")
        for row in [*stats, total]
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def fmt(cells):
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    rule = "-" * len(fmt(headers))
    return "\n".join([fmt(headers), rule, *map(fmt, lines[:-1]), rule, fmt(lines[-1])])


_VALUES = re.compile(
    r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|(?<![\w.])[-+]?\d[\d,._:]*(?:e[-+]?\d+)?"
)


def reason_pattern(reason):
    """A reason with its values blanked (quoted text, numbers → …), so the
    rows refused for one cause count together in the summary."""
    return _VALUES.sub("…", reason)


EXAMPLE_MAX_CHARS = 160


def reasons_table(tally):
    """Per table and reason: how many rows were refused or values dropped,
    with the first example; tables in the order they were imported."""
    if not tally:
        return ""
    rows = [
        (table, outcome, str(count), pattern, pk, first)
        for (table, outcome, pattern), (count, (pk, first)) in tally.items()
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["Refused rows and dropped values, per table and reason (first example):"]
    for table, outcome, count, pattern, pk, first in rows:
        if len(first) > EXAMPLE_MAX_CHARS:
            first = first[: EXAMPLE_MAX_CHARS - 1] + "…"
        lines.append(
            f"  {table.ljust(widths[0])}  {outcome.ljust(widths[1])}  {count.rjust(widths[2])}"
            f"  {pattern}"
        )
        lines.append(f"  {'':{widths[0] + widths[1] + widths[2] + 4}}  first: pk {pk}: {first}")
    return "\n".join(lines)
