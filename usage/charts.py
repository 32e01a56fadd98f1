"""The usage pages' charts and figures: plotly figure specifications (plain
dicts, core.pages.charts) of usage.metrics' series, and each page's context."""

from core.pages.charts import LAYOUT, layout

from . import metrics

__all__ = ["LAYOUT", "stacked_cost_by_model", "tokens_in_out", "bars", "cost_line"]


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
        "layout": layout(barmode="stack", yaxis={"title": {"text": "USD"}, "tickprefix": "$"}),
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
        "layout": layout(yaxis={"title": {"text": "tokens"}}),
    }


def bars(labels, values, title="USD"):
    """A horizontal bar per label (money)."""
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": list(labels),
                "x": [float(v or 0) for v in values],
            }
        ],
        "layout": layout(
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
        "layout": layout(yaxis={"title": {"text": "USD"}, "tickprefix": "$"}, showlegend=False),
    }


# -- each page's figures and charts (core.pages.views.Page.context) -----------


def overview(view):
    period, scope = view.period, view.scope
    providers = metrics.cost_by_provider(period, scope)
    return {
        "figures": metrics.headline(period, scope),
        "unpriced": metrics.unpriced_summary(period, scope),
        "charts": {
            "cost_by_model": stacked_cost_by_model(
                metrics.cost_per_day_by_model(period, scope), period.each_day()
            ),
            "tokens": tokens_in_out(metrics.tokens_per_day(period, scope)),
            "providers": bars([p for p, _ in providers], [c for _, c in providers]),
        },
    }


def subject(view):
    """One app user's or organisation's page (options: subject, kind, scope_field)."""
    period, scope = view.period, view.scope
    subject, field = view.options["subject"], view.options["scope_field"]
    return {
        "subject": subject,
        "kind": view.options["kind"],
        "figures": metrics.headline(period, scope),
        "charts": {"cost": cost_line(metrics.cost_per_day(period, scope))},
        "chats": metrics.latest_chats(field, subject.pk),
        "feedback": metrics.latest_feedback(field, subject.pk),
    }
