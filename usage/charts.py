"""Plotly figure specifications (plain dicts) for the usage charts.

Built as data and drawn by plotly.js in the browser; no Python plotly
objects on the request path. Axis titles are ``{"text": …}``: plotly.js 3+
ignores the old string form.
"""

LAYOUT = {
    "margin": {"l": 56, "r": 16, "t": 16, "b": 40},
    "height": 320,
    "legend": {"orientation": "h", "y": -0.2},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"size": 12},
}


def _layout(**extra):
    return {**LAYOUT, **extra}


def stacked_cost_by_model(series, days):
    """series: [(day, model_name, cost)] → a bar per model, stacked per day."""
    x = [day.isoformat() for day in days]
    by_model = {}
    for day, model_name, cost in series:
        by_model.setdefault(model_name, {})[day.isoformat()] = float(cost or 0)
    traces = [
        {"type": "bar", "name": name, "x": x, "y": [costs.get(d, 0) for d in x]}
        for name, costs in sorted(by_model.items())
    ]
    return {
        "data": traces,
        "layout": _layout(barmode="stack", yaxis={"title": {"text": "USD"}, "tickprefix": "$"}),
    }


def tokens_in_out(series):
    """series: [(day, input, output)] → two lines."""
    x = [day.isoformat() for day, _, _ in series]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "Input",
                "x": x,
                "y": [p for _, p, _ in series],
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "Output",
                "x": x,
                "y": [c for _, _, c in series],
            },
        ],
        "layout": _layout(yaxis={"title": {"text": "tokens"}}),
    }


def bars(labels, values, title="USD"):
    """A horizontal bar per label."""
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": list(labels),
                "x": [float(v or 0) for v in values],
            }
        ],
        "layout": _layout(
            yaxis={"autorange": "reversed", "automargin": True},
            xaxis={"title": {"text": title}, "tickprefix": "$"},
        ),
    }


def cost_line(series):
    """series: [(day, cost)] → one line."""
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": [day.isoformat() for day, _ in series],
                "y": [float(cost) for _, cost in series],
            }
        ],
        "layout": _layout(yaxis={"title": {"text": "USD"}, "tickprefix": "$"}, showlegend=False),
    }
