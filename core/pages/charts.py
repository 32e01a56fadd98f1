"""Plotly figure specifications (plain dicts) shared by every page's charts.

Built as data and drawn by plotly.js in the browser (static/usage/charts.js
from json_script blocks, with our own plotly.js); no Python plotly objects
on the request path. Axis titles are ``{"text": …}``: plotly.js 3+ ignores
the old string form.

Every figure is made by ``figure()``: hover texts are formatted here, like
the tables (core.pages.formats), and passed as ``customdata`` strings to a
``hovertemplate``; money and counts are drawn from 0 and shares on 0–100 %;
a figure without a value to draw says so (``empty``: the page shows "No
data for this period." instead of axes around nothing).
"""

from .formats import a_date, display

LAYOUT = {
    "margin": {"l": 56, "r": 16, "t": 16, "b": 40},
    "height": 320,
    "legend": {"orientation": "h", "y": -0.2},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"size": 12},
}
# A share's axis: 0–100 % (a little headroom for a point at 100 %).
SHARE_AXIS = {"tickformat": ".0%", "range": [0, 1.02], "dtick": 0.25}


def layout(**extra):
    return {**LAYOUT, **extra}


def iso_days(days):
    return [day.isoformat() for day in days]


def number(value):
    return None if value is None else float(value)


def has_values(trace):
    """Whether a trace has a value to draw (not None, not 0)."""
    values = trace.get("x") if trace.get("orientation") == "h" else trace.get("y")
    return any(value not in (None, 0) for value in values or ())


def figure(data, layout_):
    """A figure; ``empty`` when no trace has a value to draw."""
    return {"data": data, "layout": layout_, "empty": not any(has_values(t) for t in data)}


def texts(values, kind):
    """Each value as the tables show it (core.pages.formats.display)."""
    return [display(value, kind) for value in values]


def day_texts(days):
    return [a_date(day) for day in days]


def hover(trace, *columns, template):
    """``trace`` with preformatted hover texts: ``columns`` are lists of
    strings, one per point, read in ``template`` as %{customdata[n]}."""
    trace["customdata"] = [list(row) for row in zip(*columns, strict=True)]
    trace["hovertemplate"] = template
    return trace


# The hover of a series over days: the series, the day, the value.
DAY_VALUE = "%{fullData.name}<br>%{customdata[0]}: %{customdata[1]}<extra></extra>"


def _count_and_line(days, counts, values, names, kinds, yaxis2, value_texts=None):
    count_name, line_name = names
    count_kind, line_kind = kinds
    x, when = iso_days(days), day_texts(days)
    return figure(
        [
            hover(
                {
                    "type": "bar",
                    "name": count_name,
                    "x": x,
                    "y": list(counts),
                    "marker": {"color": "#9ecae1"},
                },
                when,
                texts(counts, count_kind),
                template=DAY_VALUE,
            ),
            hover(
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
                when,
                value_texts if value_texts is not None else texts(values, line_kind),
                template=DAY_VALUE,
            ),
        ],
        layout(
            yaxis={"title": {"text": count_name}, "rangemode": "tozero"},
            yaxis2={"overlaying": "y", "side": "right", "showgrid": False, **yaxis2},
            margin={**LAYOUT["margin"], "r": 56},
        ),
    )


def volume_and_rate(days, counts, rates, count_name, rate_name):
    """Bars of a daily count (left axis) and a line of a daily share (right
    axis, 0–100%); a day without a count has no share (a gap)."""
    return _count_and_line(
        days,
        counts,
        rates,
        (count_name, rate_name),
        ("number", "share"),
        {"title": {"text": rate_name}, **SHARE_AXIS},
    )


def volume_and_line(
    days, counts, values, count_name, line_name, line_axis, kind="number", hovers=None, **axis
):
    """Bars of a daily count and a line of another daily figure (right axis;
    ``axis`` adds to it: a range, a tick format). The line's hover reads as a
    figure of ``kind``, or ``hovers`` (a text per day) when given."""
    return _count_and_line(
        days,
        counts,
        values,
        (count_name, line_name),
        ("number", kind),
        {"title": {"text": line_axis}, "rangemode": "tozero", **axis},
        hovers,
    )


def lines(days, series, y_title, kind="number"):
    """One line per (name, values) or (name, values, hover texts) over the
    days; hovers read as figures of ``kind`` unless given."""
    x, when = iso_days(days), day_texts(days)
    data = []
    for name, values, *given in series:
        data.append(
            hover(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": name,
                    "x": x,
                    "y": [number(v) for v in values],
                },
                when,
                given[0] if given else texts(values, kind),
                template=DAY_VALUE,
            )
        )
    return figure(data, layout(yaxis={"title": {"text": y_title}, "rangemode": "tozero"}))


def stacked(days, series, y_title, kind="number"):
    """Stacked bars per day, one trace per (name, values, colour)."""
    x, when = iso_days(days), day_texts(days)
    return figure(
        [
            hover(
                {"type": "bar", "name": name, "x": x, "y": list(values), "marker": {"color": c}},
                when,
                texts(values, kind),
                template=DAY_VALUE,
            )
            for name, values, c in series
        ],
        layout(barmode="stack", yaxis={"title": {"text": y_title}, "rangemode": "tozero"}),
    )


def bars(
    labels,
    values,
    title,
    horizontal=False,
    tickformat=None,
    tickprefix=None,
    colours=None,
    kind="number",
):
    """A bar per label; horizontal bars list the first label on top.
    ``colours``: a colour per bar (a model's, core.pages.palette); ``kind``:
    how the values read on hover (a "share" axis runs 0–100 %)."""
    labels = [str(label) for label in labels]
    shown = texts(values, kind)
    values = [number(v) for v in values]
    axis = {"title": {"text": title}, "rangemode": "tozero"}
    if kind == "share":
        axis.update(SHARE_AXIS)
    if tickformat:
        axis["tickformat"] = tickformat
    if tickprefix:
        axis["tickprefix"] = tickprefix
    marker = {"marker": {"color": list(colours)}} if colours is not None else {}
    template = "%{customdata[0]}: %{customdata[1]}<extra></extra>"
    if horizontal:
        trace = {"type": "bar", "orientation": "h", "y": labels, "x": values, **marker}
        return figure(
            [hover(trace, labels, shown, template=template)],
            layout(
                yaxis={"autorange": "reversed", "automargin": True, "type": "category"},
                xaxis=axis,
                showlegend=False,
            ),
        )
    trace = {"type": "bar", "x": labels, "y": values, **marker}
    return figure(
        [hover(trace, labels, shown, template=template)],
        layout(xaxis={"type": "category"}, yaxis=axis, showlegend=False),
    )
