"""Plotly figure specifications (plain dicts) shared by every page's charts.

Built as data and drawn by plotly.js in the browser (static/usage/charts.js
from json_script blocks, with our own plotly.js); no Python plotly objects
on the request path. Axis titles are ``{"text": …}``: plotly.js 3+ ignores
the old string form.
"""

LAYOUT = {
    "margin": {"l": 56, "r": 16, "t": 16, "b": 40},
    "height": 320,
    "legend": {"orientation": "h", "y": -0.2},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"size": 12},
}


def layout(**extra):
    return {**LAYOUT, **extra}


def iso_days(days):
    return [day.isoformat() for day in days]


def number(value):
    return None if value is None else float(value)


def _count_and_line(x, counts, values, count_name, line_name, yaxis2):
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
                "y": [number(v) for v in values],
                "yaxis": "y2",
                "connectgaps": False,
                "line": {"color": "#08519c"},
            },
        ],
        "layout": layout(
            yaxis={"title": {"text": count_name}, "rangemode": "tozero"},
            yaxis2={"overlaying": "y", "side": "right", "showgrid": False, **yaxis2},
            margin={**LAYOUT["margin"], "r": 56},
        ),
    }


def volume_and_rate(days, counts, rates, count_name, rate_name):
    """Bars of a daily count (left axis) and a line of a daily share (right
    axis, 0–100%); a day without a count has no share (a gap)."""
    return _count_and_line(
        iso_days(days),
        counts,
        rates,
        count_name,
        rate_name,
        {"title": {"text": rate_name}, "tickformat": ".0%", "range": [0, 1.02], "dtick": 0.25},
    )


def volume_and_line(days, counts, values, count_name, line_name, line_axis, **axis):
    """Bars of a daily count and a line of another daily figure (right axis;
    ``axis`` adds to it: a range, a tick format)."""
    return _count_and_line(
        iso_days(days),
        counts,
        values,
        count_name,
        line_name,
        {"title": {"text": line_axis}, "rangemode": "tozero", **axis},
    )


def lines(days, series, y_title):
    """One line per (name, values) over the days."""
    x = iso_days(days)
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": name,
                "x": x,
                "y": [number(v) for v in values],
            }
            for name, values in series
        ],
        "layout": layout(yaxis={"title": {"text": y_title}, "rangemode": "tozero"}),
    }


def stacked(days, series, y_title):
    """Stacked bars per day, one trace per (name, values, colour)."""
    x = iso_days(days)
    return {
        "data": [
            {"type": "bar", "name": name, "x": x, "y": list(values), "marker": {"color": colour}}
            for name, values, colour in series
        ],
        "layout": layout(barmode="stack", yaxis={"title": {"text": y_title}}),
    }


def bars(labels, values, title, horizontal=False, tickformat=None, tickprefix=None, colours=None):
    """A bar per label; horizontal bars list the first label on top.
    ``colours``: a colour per bar (a model's, core.pages.palette)."""
    labels = [str(label) for label in labels]
    values = [number(v) for v in values]
    axis = {"title": {"text": title}}
    if tickformat:
        axis["tickformat"] = tickformat
    if tickprefix:
        axis["tickprefix"] = tickprefix
    marker = {"marker": {"color": list(colours)}} if colours is not None else {}
    if horizontal:
        return {
            "data": [{"type": "bar", "orientation": "h", "y": labels, "x": values, **marker}],
            "layout": layout(
                yaxis={"autorange": "reversed", "automargin": True, "type": "category"},
                xaxis=axis,
                showlegend=False,
            ),
        }
    return {
        "data": [{"type": "bar", "x": labels, "y": values, **marker}],
        "layout": layout(xaxis={"type": "category"}, yaxis=axis, showlegend=False),
    }
