"""One colour per model, the same on every page and chart (#18).

A model's colour is the palette's entry at the model's rank among every
model the site knows, in one stable order (the roll-up's distinct model
names, alphabetical: ``usage.metrics.model_names``), not a hash: two models
never share a colour while there are at most ``len(PALETTE)`` of them.
Charts group the ledger by model name (the overview's stacked chart, the
quality pages), so the name is the key: one model served by two providers
keeps one colour.
"""

# 24 colours, each at least 25 apart from every other in CIELAB (ΔE*76,
# core/tests/test_palette.py measures it), none too pale to read on white:
# Sasha Trubetskoy's "20 distinct colours" less white, mint and beige, and
# five more chosen for their distance from these.
PALETTE = (
    "#4363d8",  # blue
    "#e6194b",  # red
    "#3cb44b",  # green
    "#f58231",  # orange
    "#911eb4",  # purple
    "#42d4f4",  # cyan
    "#f032e6",  # magenta
    "#9a6324",  # brown
    "#469990",  # teal
    "#800000",  # maroon
    "#808000",  # olive
    "#000075",  # navy
    "#ffe119",  # yellow
    "#bfef45",  # lime
    "#fabed4",  # pink
    "#dcbeff",  # lavender
    "#a9a9a9",  # grey
    "#000000",  # black
    "#ffd8b1",  # apricot
    "#1f78b4",  # steel blue
    "#e7298a",  # raspberry
    "#06d6a0",  # aquamarine
    "#073b4c",  # petrol
    "#666666",  # dark grey
)
# A series without a model ("not recorded"): outside the palette.
NO_MODEL = "#d9d9d9"


def colours(known, shown):
    """{name: colour} for the model names ``shown`` on one chart.

    ``known``: every model name in the stable order; a name there takes the
    colour of its rank. A name not there (a model only the chats name), or
    one whose rank's colour another name of the chart already holds (more
    models known than colours), takes the first colour no other name of the
    chart holds, so the chart's series stay apart while they fit the
    palette. None (no model recorded) is NO_MODEL.
    """
    rank = {name: n for n, name in enumerate(known)}
    result, taken = {}, set()
    names = [name for name in dict.fromkeys(shown) if name is not None]
    ranked = sorted((name for name in names if name in rank), key=rank.get)
    for name in ranked:
        colour = PALETTE[rank[name] % len(PALETTE)]
        if colour not in taken:
            result[name] = colour
            taken.add(colour)
    for name in names:
        if name in result:
            continue
        free = [colour for colour in PALETTE if colour not in taken]
        # More series than colours: cycle, as plotly would.
        colour = free[0] if free else PALETTE[len(result) % len(PALETTE)]
        result[name] = colour
        taken.add(colour)
    if None in shown:
        result[None] = NO_MODEL
    return result
