"""Text helpers shared by the generators: placeholder values drawn for a
dataset, markdown and plain-text statistics tables, tracebacks."""

from . import catalog


def strength(r):
    size = abs(r)
    word = "strong" if size >= 0.7 else "moderate" if size >= 0.4 else "weak"
    return f"{word} {'positive' if r >= 0 else 'negative'}"


def dataset_fill(ctx, dataset):
    """Values for the {placeholders} of questions, answers and code about a dataset."""
    rng = ctx.rng
    numeric = dataset["numeric"]
    target = dataset["target"]
    candidates = [column for column in numeric if column[0] != target] or numeric
    if len(candidates) >= 2:
        first, second = rng.sample(candidates, 2)
    else:
        first, second = candidates[0], numeric[0]
    num = first[0]
    r = rng.uniform(-0.35, 0.93)
    rows = dataset["rows"]
    numeric_target = any(column[0] == target for column in numeric)
    score = rng.uniform(0.55, 0.91)
    return {
        "dataset": dataset["name"],
        "file": dataset["file"],
        "topic": dataset["topic"],
        "rows": f"{rows:,}",
        "ncols": len(numeric) + len(dataset["categorical"]) + 1,
        "num": num,
        "num2": second[0],
        "cat": rng.choice(list(dataset["categorical"])),
        "target": target,
        "badcol": num.lower() if num != num.lower() else num.capitalize(),
        "missing": rng.randint(0, max(1, rows // 25)),
        "dupes": rng.randint(0, 40),
        "r2": f"{rng.uniform(0.35, 0.92):.2f}",
        "p": f"{rng.uniform(0.0001, 0.045):.4f}",
        "r": f"{r:.2f}",
        "strength": strength(r),
        "metric": f"R² = {score:.2f}" if numeric_target else f"accuracy {score + 0.05:.1%}",
        "k": rng.randint(3, 6),
        "sil": f"{rng.uniform(0.35, 0.78):.2f}",
        "lift": f"{rng.uniform(1.5, 9.0):.1f}%",
        "gap": rng.randint(8, 65),
        "outliers": rng.randint(2, 40),
    }


def column_stats(ctx, dataset, column):
    """count, mean, std, min, median, max for a numeric column (plausible, random)."""
    rng = ctx.rng
    spec = next(item for item in dataset["numeric"] if item[0] == column)
    _, mean, std, _ = spec
    mean *= 1 + rng.gauss(0, 0.03)
    std *= 1 + rng.gauss(0, 0.05)
    low = max(0.0, mean - std * rng.uniform(1.2, 2.5))
    median = mean - std * rng.uniform(0, 0.3)
    high = mean + std * rng.uniform(2.0, 4.0)
    return {
        "count": dataset["rows"],
        "mean": mean,
        "std": std,
        "min": low,
        "50%": max(low, median),
        "max": high,
    }


def _format(value, decimals):
    if decimals == 0 and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.{max(decimals, 2)}f}"


def _decimals(dataset, column):
    return next(item[3] for item in dataset["numeric"] if item[0] == column)


def stats_table(ctx, dataset, columns):
    """A markdown table of describe() statistics for a few numeric columns."""
    stats = [column_stats(ctx, dataset, column) for column in columns]
    lines = [
        "| statistic | " + " | ".join(f"`{column}`" for column in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name in ("count", "mean", "std", "min", "50%", "max"):
        cells = []
        for column, values in zip(columns, stats, strict=True):
            value = values[name]
            cells.append(
                str(value) if name == "count" else _format(value, _decimals(dataset, column))
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plain_stats(ctx, dataset, columns):
    """The same statistics as pandas prints them (for execution output)."""
    stats = [column_stats(ctx, dataset, column) for column in columns]
    lines = [" " * 8 + "".join(f"{column:>16}" for column in columns)]
    lines.extend(
        f"{name:<8}" + "".join(f"{values[name]:>16.6f}" for values in stats)
        for name in ("count", "mean", "std", "min", "50%", "max")
    )
    return "\n".join(lines)


def traceback(ctx, fill):
    error = ctx.rng.choice(catalog.CODE_ERRORS).format(badcol=fill["badcol"])
    return catalog.TRACEBACK.format(line=ctx.rng.randint(3, 14), error=error)


def bullets(items):
    return "\n".join(f"- {item}" for item in items)
