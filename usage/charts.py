"""The usage pages' charts and figures: plotly figure specifications (plain
dicts, core.pages.charts) of usage.metrics' series, and each page's context."""

from django.utils import timezone

from core.pages import palette
from core.pages.charts import (
    DAY_VALUE,
    LAYOUT,
    day_texts,
    figure,
    hover,
    iso_days,
    layout,
    number,
    texts,
)
from core.pages.formats import display

from . import drill, metrics

__all__ = ["LAYOUT", "stacked_cost_by_model", "tokens_in_out", "bars", "cost_line"]

MONEY_AXIS = {"title": {"text": "USD"}, "tickprefix": "$", "rangemode": "tozero"}


def model_colours(names):
    """{model name: colour} of the names on one chart: each model's colour of
    every page (core.pages.palette, ranked in usage.metrics.model_names)."""
    return palette.colours(metrics.model_names(), names)


def stacked_cost_by_model(series, days):
    """series: [(day, model_name, cost)] → a bar per model, stacked per day,
    each model in its own colour; hover: the model, the day, the cost."""
    x, when = iso_days(days), day_texts(days)
    by_model = {}
    for day, model_name, cost in series:
        by_model.setdefault(model_name, {})[day.isoformat()] = cost or 0
    colours = model_colours(sorted(by_model))
    traces = [
        hover(
            {
                "type": "bar",
                "name": name,
                "x": x,
                "y": [float(costs.get(d, 0)) for d in x],
                "marker": {"color": colours[name]},
            },
            when,
            texts([costs.get(d, 0) for d in x], "money"),
            template=DAY_VALUE,
        )
        for name, costs in sorted(by_model.items())
    ]
    # The legend in the models' alphabetical order (plotly reverses a stack's).
    legend = {**LAYOUT["legend"], "traceorder": "normal"}
    return figure(traces, layout(barmode="stack", yaxis=MONEY_AXIS, legend=legend))


def tokens_in_out(series):
    """series: [(day, input, output)] → two lines."""
    x, when = iso_days(day for day, _, _ in series), day_texts(day for day, _, _ in series)
    return figure(
        [
            hover(
                {"type": "scatter", "mode": "lines", "name": name, "x": x, "y": values},
                when,
                texts(values, "number"),
                template=DAY_VALUE,
            )
            for name, values in (
                ("Input", [p for _, p, _ in series]),
                ("Output", [c for _, _, c in series]),
            )
        ],
        layout(yaxis={"title": {"text": "tokens"}, "rangemode": "tozero"}),
    )


def bars(labels, values, title="USD"):
    """A horizontal bar per label (money)."""
    labels = list(labels)
    return figure(
        [
            hover(
                {
                    "type": "bar",
                    "orientation": "h",
                    "y": labels,
                    "x": [float(v or 0) for v in values],
                },
                [str(label) for label in labels],
                texts(values, "money"),
                template="%{customdata[0]}: %{customdata[1]}<extra></extra>",
            )
        ],
        layout(
            yaxis={"autorange": "reversed", "automargin": True},
            xaxis={**MONEY_AXIS, "title": {"text": title}},
        ),
    )


def cost_line(series):
    """series: [(day, cost)] → one line."""
    days = [day for day, _ in series]
    return figure(
        [
            hover(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": "Cost",
                    "x": iso_days(days),
                    "y": [number(cost) for _, cost in series],
                },
                day_texts(days),
                texts([cost for _, cost in series], "money"),
                template="%{customdata[0]}: %{customdata[1]}<extra></extra>",
            )
        ],
        layout(yaxis=MONEY_AXIS, showlegend=False),
    )


# -- each page's figures and charts (core.pages.views.Page.context) -----------


def headline(period, scope):
    """The headline figures and the note on what they are compared with
    (today so far: the same hours of yesterday), at one instant."""
    now = timezone.now()
    return {
        "figures": metrics.headline(period, scope, now),
        "figures_note": metrics.compared_with(period, now)[1],
    }


def overview(view):
    period, scope = view.period, view.scope
    providers = metrics.cost_by_provider(period, scope)
    return {
        **headline(period, scope),
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
        "unpriced": metrics.unpriced_summary(period, scope),
        **headline(period, scope),
        "charts": {"cost": cost_line(metrics.cost_per_day(period, scope))},
        "chats": metrics.latest_chats(field, subject.pk),
        "feedback": metrics.latest_feedback(field, subject.pk),
    }


# -- one model's page ------------------------------------------------------------


def cost_and_requests(rows, colour="#9ecae1"):
    """rows: metrics.per_day → cost bars (left axis, in the model's
    ``colour``) and a line of requests (right axis); hover shows the day's
    cost, tokens and unpriced requests too, as the per-day table does."""
    days = [day for day, *_ in rows]
    x, when = iso_days(days), day_texts(days)
    unpriced = [f" ({display(n, 'number')} without a price)" if n else "" for *_, n in rows]
    return figure(
        [
            hover(
                {
                    "type": "bar",
                    "name": "Cost",
                    "x": x,
                    "y": [float(cost) for _, cost, *_ in rows],
                    "marker": {"color": colour},
                },
                when,
                texts([cost for _, cost, *_ in rows], "money"),
                texts([tokens for _, _, _, tokens, _ in rows], "number"),
                texts([requests for _, _, requests, _, _ in rows], "number"),
                unpriced,
                template=(
                    "%{customdata[0]}: %{customdata[1]}<br>%{customdata[2]} tokens, "
                    "%{customdata[3]} requests%{customdata[4]}<extra></extra>"
                ),
            ),
            hover(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": "Requests",
                    "x": x,
                    "y": [requests for _, _, requests, _, _ in rows],
                    "yaxis": "y2",
                    # Dark grey dots: apart from any model's bars.
                    "line": {"color": "#333333", "dash": "dot"},
                },
                when,
                texts([requests for _, _, requests, _, _ in rows], "number"),
                template="%{customdata[0]}: %{customdata[1]} requests<extra></extra>",
            ),
        ],
        layout(
            yaxis=MONEY_AXIS,
            yaxis2={
                "title": {"text": "requests"},
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
                "rangemode": "tozero",
            },
            margin={**LAYOUT["margin"], "r": 56},
        ),
    )


def with_trace_params(figure, name_param):
    """Each trace's ``meta`` names its series as a ledger filter (the drill
    adds it to the day's URL): the stacked chart's traces are models."""
    for trace in figure["data"]:
        trace["meta"] = {name_param: trace["name"]}
    return figure


def model(view):
    """One model's page (options: model_name, provider)."""
    period, scope = view.period, view.scope
    return {
        "model_name": scope.model_name,
        "provider": scope.provider,
        "unpriced": metrics.unpriced_summary(period, scope),
        "summary": metrics.model_summary(period, scope),
        **headline(period, scope),
        "charts": {
            "per_day": cost_and_requests(
                metrics.per_day(period, scope), model_colours([scope.model_name])[scope.model_name]
            )
        },
        "drill": {"per_day": drill.ledger_url(drill.DAY, scope)},
    }


def overview_drill(view):
    """The overview's charts with their drill-down: the ledger rows of the
    day clicked (and of the model, on the stacked chart)."""
    context = overview(view)
    with_trace_params(context["charts"]["cost_by_model"], "model_name")
    pattern = drill.ledger_url(drill.DAY, view.scope)
    context["drill"] = {"cost_by_model": pattern, "tokens": pattern}
    return context


def subject_drill(view):
    """An app user's or organisation's page with its drill-down: the chart's
    days open their ledger rows, and the subject's chats."""
    context = subject(view)
    subject_ = view.options["subject"]
    context["drill"] = {"cost": drill.ledger_url(drill.DAY, view.scope)}
    # The chats started on each day with usage, newest first (no query: the
    # days come from the per-day table's memoized figures).
    context["chat_days"] = [
        (day, drill.chats_url(day, view.scope))
        for day, _cost, requests, *_ in reversed(metrics.per_day(view.period, view.scope))
        if requests
    ]
    if view.options["scope_field"] == "user_id":
        context["chats_url"] = drill.user_chats_url(subject_.pk)
    else:
        context["chats_url"] = drill.chats_url_any_day(view.scope)
    return context
