"""The figures and charts of the quality, activity and text-to-SQL pages
(each page's ``core.pages.views.Page.context``): plotly figure
specifications from the page kit (core.pages.charts), drawn by
static/usage/charts.js from json_script blocks with our own plotly.js."""

from core.pages.charts import bars, lines, stacked, texts, volume_and_line, volume_and_rate
from core.pages.figures import ratio, so_far_note
from core.pages.formats import a_date
from usage.charts import model_colours

from . import metrics
from .tables import bucket


def code(view):
    period, scope = view.period, view.scope
    per_day = metrics.success_per_day(period, scope)
    top_types = metrics.failures_by_error_type(period, scope)[:10]
    agents = metrics.failures_by_agent(period, scope)[:10]
    per_chat = metrics.executions_per_chat(period, scope)
    by_model = metrics.success_by_model(period, scope)
    colours = model_colours([r["model_name"] for r in by_model])
    return {
        "figures": metrics.execution_headline(period, scope),
        "figures_note": so_far_note(period),
        "charts": {
            "per_day": volume_and_rate(
                [d for d, *_ in per_day],
                [n for _, n, _, _ in per_day],
                [r for *_, r in per_day],
                "Executions",
                "Success rate",
            ),
            "error_types": bars(
                [r["error_type"] for r in top_types],
                [r["executions"] for r in top_types],
                "failed executions",
                horizontal=True,
            ),
            "agents": bars(
                [r["agent"] for r in agents],
                [r["executions"] for r in agents],
                "failed executions",
                horizontal=True,
            ),
            "per_chat": bars([bucket(n) for n, _ in per_chat], [c for _, c in per_chat], "chats"),
            "models": bars(
                [r["model_name"] or "not recorded" for r in by_model],
                [r["success_rate"] for r in by_model],
                "success rate",
                horizontal=True,
                kind="share",
                colours=[colours[r["model_name"]] for r in by_model],
            ),
        },
    }


def executions(view):
    outcome, error_type, agent = view.options["group"]
    return {"group": {"outcome": outcome, "error_type": error_type, "agent": agent}}


def feedback(view):
    period, scope = view.period, view.scope
    distribution = metrics.rating_distribution(period, scope)
    per_day = metrics.rating_per_day(period, scope)
    temperature = metrics.rating_by_temperature(period, scope)
    mistakes = metrics.mistakes_per_day(period, scope)
    days = [d for d, *_ in per_day]
    return {
        "figures": metrics.feedback_headline(period, scope),
        "figures_note": so_far_note(period),
        "charts": {
            "distribution": bars(
                [f"{r} ★" for r, _ in distribution], [n for _, n in distribution], "ratings"
            ),
            "per_day": volume_and_line(
                days,
                [n for _, n, _ in per_day],
                [a for *_, a in per_day],
                "Ratings",
                "Average rating",
                "average ★",
                kind="rating",
                range=[0, 5.1],
                dtick=1,
            ),
            "temperature": bars(
                [r["band"] for r in temperature],
                [r["average"] for r in temperature],
                "average ★",
                horizontal=True,
                kind="rating",
            ),
            "mistakes": volume_and_line(
                [d for d, *_ in mistakes],
                [m for *_, m in mistakes],
                [ratio(m, n) for _, n, m in mistakes],
                "Mistakes flagged",
                "Share of answers",
                "share of answers",
                kind="share",
                tickformat=".1%",
            ),
        },
    }


def activity(view):
    period, scope = view.period, view.scope
    active = metrics.active_users_per_day(period, scope)
    new = metrics.new_users_per_day(period, scope)
    volume = metrics.chats_and_messages_per_day(period, scope)
    sessions = metrics.sessions_per_day(period, scope)
    weeks = metrics.active_users_per_week(period, scope)
    days = period.each_day()
    return {
        "figures": metrics.activity_headline(period, scope),
        "figures_note": so_far_note(period),
        "charts": {
            "users": lines(
                days,
                [
                    ("Active app users", [n for _, n in active]),
                    ("New app users", [n for _, n in new]),
                ],
                "app users",
            ),
            "volume": volume_and_line(
                days,
                [c for _, c, _ in volume],
                [m for *_, m in volume],
                "Chats started",
                "Messages",
                "messages",
            ),
            "sessions": volume_and_line(
                days,
                [n for _, n, _ in sessions],
                [None if s is None else s / 60 for *_, s in sessions],
                "Sessions",
                "Average length (min)",
                "minutes",
                hovers=texts([s for *_, s in sessions], "duration"),
            ),
            "weeks": bars(
                # the week's Monday as the weeks table writes it
                [a_date(w) for w, *_ in weeks],
                [n for _, n, *_ in weeks],
                "active app users",
            ),
        },
    }


def text_to_sql(view):
    period, scope = view.period, view.scope
    per_day = metrics.queries_per_day(period, scope)
    bands = metrics.rows_returned(period, scope)
    days = [d for d, *_ in per_day]
    return {
        "figures": metrics.query_headline(period, scope),
        "figures_note": so_far_note(period),
        "charts": {
            "per_day": stacked(
                days,
                [
                    ("Succeeded", [s for _, _, s, _, _ in per_day], "#74c476"),
                    ("Failed", [f for _, _, _, f, _ in per_day], "#fb6a4a"),
                    ("Outcome unknown", [n - s - f for _, n, s, f, _ in per_day], "#bdbdbd"),
                ],
                "queries",
            ),
            "time": lines(
                days,
                [
                    (
                        "Average execution time (s)",
                        [t for *_, t in per_day],
                        # read like a latency: seconds from 1 s, ms below
                        texts([None if t is None else t * 1000 for *_, t in per_day], "ms"),
                    )
                ],
                "seconds",
            ),
            "rows": bars(
                [b["band"] for b in bands],
                [b["queries"] for b in bands],
                "queries",
                horizontal=True,
            ),
        },
    }
