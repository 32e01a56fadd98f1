"""Auto-Analyst deep-analysis reports, with real Plotly figures."""

import html
import itertools
import json
from datetime import timedelta
from decimal import Decimal

import plotly.graph_objects as go

from core.models import Source
from reports.models import DeepAnalysisReport

from . import catalog, texts

AA = Source.Kind.AUTO_ANALYST
Status = DeepAnalysisReport.Status
STATUSES = {Status.COMPLETED: 70, Status.FAILED: 12, Status.RUNNING: 8, Status.PENDING: 10}
PIPELINE = [
    "preprocessing_agent",
    "statistical_analytics_agent",
    "sk_learn_agent",
    "data_viz_agent",
]
COLOURS = ["#4C78A8", "#F58518", "#54A24B", "#E45756"]


def make_reports(ctx, users, profiles):
    source = ctx.sources[AA]
    cumulative = list(
        itertools.accumulate(
            profile.activity * ctx.active_share(user)
            for user, profile in zip(users, profiles, strict=True)
        )
    )
    total = ctx.count("aa_reports")
    with ctx.progress(total, "deep-analysis reports", "report") as bar:
        for index in range(total):
            pick = ctx.rng.choices(range(len(users)), cum_weights=cumulative)[0]
            status = Status.COMPLETED if index == 0 else ctx.weighted(STATUSES)
            ctx.writer.add(build_report(ctx, source, users[pick], profiles[pick].llm, status))
            bar.update()


def report_time(ctx, user, status):
    if status == Status.PENDING:
        return ctx.anchor - timedelta(minutes=ctx.rng.uniform(1, 45))
    if status == Status.RUNNING:
        return ctx.anchor - timedelta(minutes=ctx.rng.uniform(3, 150))
    return ctx.clock.at(user.created_at, ctx.anchor - timedelta(hours=1))


def build_report(ctx, source, user, llm, status):
    rng = ctx.rng
    dataset = rng.choice(catalog.DATASETS)
    fill = texts.dataset_fill(ctx, dataset)
    fill["r2pct"] = round(float(fill["r2"]) * 100)
    created = report_time(ctx, user, status)
    report = DeepAnalysisReport(
        source=source,
        source_pk=ctx.pk(AA, "deep_analysis_reports"),
        report_uuid=ctx.uuid(),
        user=user,
        goal=rng.choice(catalog.DEEP_GOALS).format(**fill),
        status=status,
        start_time=created,
        created_at=created,
        updated_at=created,
    )
    if status == Status.PENDING:
        return report
    questions = [item.format(**fill) for item in rng.sample(catalog.DEEP_QUESTIONS, 5)]
    report.deep_questions = "\n".join(f"{n}. {q}" for n, q in enumerate(questions, 1))
    report.deep_plan = "\n".join(
        f"Step {n}: {step.format(**fill)}" for n, step in enumerate(catalog.DEEP_PLAN_STEPS, 1)
    )
    summaries = [
        f"{agent}: " + rng.choice(catalog.AGENT_SUMMARIES[agent]).format(**fill)
        for agent in PIPELINE
    ]
    if status == Status.COMPLETED:
        complete(ctx, report, dataset, fill, questions, summaries)
    else:
        partial(ctx, report, dataset, fill, summaries)
    report.estimated_cost = estimated_cost(ctx, llm, created, report.total_tokens_used)
    return report


def complete(ctx, report, dataset, fill, questions, summaries):
    rng = ctx.rng
    report.progress_percentage = 100
    report.total_tokens_used = ctx.lognormal(120_000, 0.45, 20_000, 600_000)
    report.duration_seconds = ctx.lognormal(300, 0.5, 60, 1800)
    report.end_time = report.start_time + timedelta(seconds=report.duration_seconds)
    report.updated_at = report.end_time
    report.summaries = summaries
    report.analysis_code = "\n\n".join(
        f"# {agent}\n" + catalog.CODE_TEMPLATES[agent].format(**fill) for agent in PIPELINE
    )
    report.plotly_figures = figures(ctx, dataset, fill, rng.randint(2, 4))
    report.synthesis = [
        item.format(**fill) for item in rng.sample(catalog.DEEP_SYNTHESIS, rng.randint(3, 4))
    ]
    report.final_conclusion = rng.choice(catalog.DEEP_CONCLUSIONS).format(**fill)
    report.html_report = html_report(ctx, report, dataset, fill, questions)
    report.credits_consumed = 10 + report.total_tokens_used // 20_000


def partial(ctx, report, dataset, fill, summaries):
    """A failed or running report: part of the pipeline done."""
    rng = ctx.rng
    progress = rng.randint(15, 85) if report.status == Status.FAILED else rng.randint(10, 90)
    done = max(1, progress * len(PIPELINE) // 100)
    report.progress_percentage = progress
    report.total_tokens_used = ctx.lognormal(1_200 * progress, 0.4, 2_000)
    report.summaries = summaries[:done]
    if done >= 2:
        report.plotly_figures = figures(ctx, dataset, fill, 1)
    if report.status == Status.FAILED:
        report.duration_seconds = ctx.lognormal(150, 0.6, 20, 1200)
        report.end_time = report.start_time + timedelta(seconds=report.duration_seconds)
        report.updated_at = report.end_time
        report.credits_consumed = 5 if progress > 50 else 0
    else:
        elapsed = timedelta(seconds=rng.uniform(20, 600))
        report.updated_at = min(report.start_time + elapsed, ctx.anchor - timedelta(seconds=1))


def estimated_cost(ctx, llm, when, tokens):
    prompt = int(tokens * 0.8)
    cost = ctx.listed_cost(llm, when, prompt, tokens - prompt)
    return cost if cost is not None else Decimal(0)


# figures -------------------------------------------------------------------


def _spec(dataset, column):
    return next(item for item in dataset["numeric"] if item[0] == column)


def _figure(trace, title, x_title, y_title):
    figure = go.Figure(
        trace,
        layout={
            "title": {"text": title},
            "xaxis": {"title": {"text": x_title}},
            "yaxis": {"title": {"text": y_title}},
            "height": 420,
            "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
            "template": "none",
        },
    )
    data = json.loads(figure.to_json())
    data["layout"].pop("template", None)
    return data


def bar_figure(ctx, dataset, fill):
    num, cat = fill["num"], fill["cat"]
    _, mean, std, decimals = _spec(dataset, num)
    levels = dataset["categorical"][cat]
    values = [round(max(0.0, mean + ctx.rng.gauss(0, std * 0.3)), decimals or 2) for _ in levels]
    trace = go.Bar(x=levels, y=values, marker={"color": COLOURS[0]})
    return _figure(trace, f"Average {num} by {cat}", cat, num)


def line_figure(ctx, dataset, fill):
    num = fill["num"]
    _, mean, std, decimals = _spec(dataset, num)
    months, year, month = [], ctx.anchor.year, ctx.anchor.month
    for _ in range(12):
        months.append(f"{year}-{month:02d}")
        month, year = (month - 1, year) if month > 1 else (12, year - 1)
    months.reverse()
    trend = ctx.rng.uniform(-0.02, 0.04)
    values = [
        round(mean * (1 + trend * index) + ctx.rng.gauss(0, std * 0.08), decimals or 2)
        for index in range(12)
    ]
    trace = go.Scatter(x=months, y=values, mode="lines+markers", line={"color": COLOURS[1]})
    return _figure(trace, f"Monthly average {num}", "month", num)


def scatter_figure(ctx, dataset, fill):
    num, num2 = fill["num"], fill["num2"]
    _, mean_x, std_x, _ = _spec(dataset, num)
    _, mean_y, std_y, _ = _spec(dataset, num2)
    r = float(fill["r"])
    xs, ys = [], []
    for _ in range(40):
        z = ctx.rng.gauss(0, 1)
        xs.append(round(mean_x + z * std_x, 2))
        noise = ctx.rng.gauss(0, 1) * (1 - r * r) ** 0.5
        ys.append(round(mean_y + (r * z + noise) * std_y, 2))
    trace = go.Scatter(x=xs, y=ys, mode="markers", marker={"color": COLOURS[2], "opacity": 0.7})
    return _figure(trace, f"{num} vs {num2} (r = {r:.2f})", num, num2)


def histogram_figure(ctx, dataset, fill):
    num = fill["num"]
    _, mean, std, _ = _spec(dataset, num)
    values = [round(max(0.0, ctx.rng.gauss(mean, std)), 2) for _ in range(60)]
    trace = go.Histogram(x=values, nbinsx=15, marker={"color": COLOURS[3]})
    return _figure(trace, f"Distribution of {num}", num, "count")


FIGURES = {
    "bar": bar_figure,
    "line": line_figure,
    "scatter": scatter_figure,
    "histogram": histogram_figure,
}


def figures(ctx, dataset, fill, count):
    kinds = ctx.rng.sample(sorted(FIGURES), count)
    return [FIGURES[kind](ctx, dataset, fill) for kind in kinds]


def html_report(ctx, report, dataset, fill, questions):
    """Plain, safe HTML: headings, lists, a table; every text escaped."""
    escape = html.escape
    columns = [fill["num"], fill["num2"]]
    stats = [texts.column_stats(ctx, dataset, column) for column in columns]
    head = "".join(f"<th>{escape(column)}</th>" for column in columns)
    body = "".join(
        f"<tr><td>{name}</td>"
        + "".join(f"<td>{values[name]:,.2f}</td>" for values in stats)
        + "</tr>"
        for name in ("mean", "std", "min", "50%", "max")
    )
    return "\n".join(
        [
            f"<h1>Deep analysis: {escape(report.goal)}</h1>",
            f"<p><strong>Dataset:</strong> {escape(dataset['file'])} "
            f"({escape(fill['rows'])} rows)</p>",
            "<h2>Questions</h2>",
            "<ol>" + "".join(f"<li>{escape(q)}</li>" for q in questions) + "</ol>",
            "<h2>Key findings</h2>",
            "<ul>" + "".join(f"<li>{escape(s)}</li>" for s in report.synthesis) + "</ul>",
            "<h2>Summary statistics</h2>",
            f"<table><thead><tr><th>statistic</th>{head}</tr></thead><tbody>{body}</tbody></table>",
            "<h2>Conclusion</h2>",
            f"<p>{escape(report.final_conclusion)}</p>",
        ]
    )
