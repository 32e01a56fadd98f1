"""Plotly figure specifications (plain dicts) for the quality, activity and
text-to-SQL pages, in the style of usage.charts: data in, drawn by
static/usage/charts.js from json_script blocks with our own plotly.js."""

from .charts import LAYOUT


def _layout(**extra):
    return {**LAYOUT, **extra}


def _days(days):
    return [day.isoformat() for day in days]


def _number(value):
    return None if value is None else float(value)


def volume_and_rate(days, counts, rates, count_name, rate_name):
    """Bars of a daily count (left axis) and a line of a daily share (right
    axis, 0–100%); a day without a count has no share (a gap)."""
    x = _days(days)
    return {
        "data": [
            {
                "type": "bar",
                "name": count_name,
                "x": x,
                "y": list(counts),
                "marker": {"color": "#9ecae1"},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": rate_name,
                "x": x,
                "y": [_number(r) for r in rates],
                "yaxis": "y2",
                "connectgaps": False,
                "line": {"color": "#08519c"},
            },
        ],
        "layout": _layout(
            yaxis={"title": {"text": count_name}, "rangemode": "tozero"},
            yaxis2={
                "title": {"text": rate_name},
                "overlaying": "y",
                "side": "right",
                "tickformat": ".0%",
                "range": [0, 1.02],
                "dtick": 0.25,
                "showgrid": False,
            },
            margin={**LAYOUT["margin"], "r": 56},
        ),
    }


def volume_and_line(days, counts, values, count_name, line_name, line_axis, **axis):
    """Bars of a daily count and a line of another daily figure (right axis;
    ``axis`` adds to it: a range, a tick format)."""
    x = _days(days)
    return {
        "data": [
            {
                "type": "bar",
                "name": count_name,
                "x": x,
                "y": list(counts),
                "marker": {"color": "#9ecae1"},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": line_name,
                "x": x,
                "y": [_number(v) for v in values],
                "yaxis": "y2",
                "connectgaps": False,
                "line": {"color": "#08519c"},
            },
        ],
        "layout": _layout(
            yaxis={"title": {"text": count_name}, "rangemode": "tozero"},
            yaxis2={
                "title": {"text": line_axis},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                "showgrid": False,
                **axis,
            },
            margin={**LAYOUT["margin"], "r": 56},
        ),
    }


def lines(days, series, y_title):
    """One line per (name, values) over the days."""
    x = _days(days)
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": name,
                "x": x,
                "y": [_number(v) for v in values],
            }
            for name, values in series
        ],
        "layout": _layout(yaxis={"title": {"text": y_title}, "rangemode": "tozero"}),
    }


def stacked(days, series, y_title):
    """Stacked bars per day, one trace per (name, values, colour)."""
    x = _days(days)
    return {
        "data": [
            {"type": "bar", "name": name, "x": x, "y": list(values), "marker": {"color": colour}}
            for name, values, colour in series
        ],
        "layout": _layout(barmode="stack", yaxis={"title": {"text": y_title}}),
    }


def bars(labels, values, title, horizontal=False, tickformat=None):
    """A bar per label; horizontal bars list the first label on top."""
    labels = [str(label) for label in labels]
    values = [_number(v) for v in values]
    axis = {"title": {"text": title}}
    if tickformat:
        axis["tickformat"] = tickformat
    if horizontal:
        return {
            "data": [{"type": "bar", "orientation": "h", "y": labels, "x": values}],
            "layout": _layout(
                yaxis={"autorange": "reversed", "automargin": True, "type": "category"},
                xaxis=axis,
                showlegend=False,
            ),
        }
    return {
        "data": [{"type": "bar", "x": labels, "y": values}],
        "layout": _layout(xaxis={"type": "category"}, yaxis=axis, showlegend=False),
    }
