"""The model palette (core.pages.palette): at least 20 clearly distinct
colours, a model's colour by its rank in one stable order, and two models of
one chart never alike while they fit the palette."""

import itertools
import math

import pytest

from core.pages.palette import NO_MODEL, PALETTE, colours


def _lab(colour):
    """CIELAB (D65) of a #rrggbb colour."""
    rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t):
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_the_palette_has_at_least_20_clearly_distinct_colours_readable_on_white():
    assert len(PALETTE) >= 20
    assert len({c.lower() for c in PALETTE}) == len(PALETTE)
    closest = min(math.dist(_lab(a), _lab(b)) for a, b in itertools.combinations(PALETTE, 2))
    # ΔE*76 of 25: far beyond "just noticeable" (about 2.3)
    assert closest >= 25, closest
    # none as pale as the plot's white background (L* of white is 100)
    assert max(_lab(c)[0] for c in PALETTE) < 91
    assert NO_MODEL not in PALETTE


KNOWN = [f"model-{n:02d}" for n in range(len(PALETTE))]


def test_a_model_s_colour_is_its_rank_in_the_known_order_whatever_the_chart():
    everything = colours(KNOWN, KNOWN)
    assert [everything[name] for name in KNOWN] == list(PALETTE)
    # A chart of a few models, in any order: each keeps its colour.
    few = colours(KNOWN, ["model-17", "model-03", "model-09"])
    assert few == {name: everything[name] for name in ("model-17", "model-03", "model-09")}
    assert colours(KNOWN, ["model-05"]) == {"model-05": PALETTE[5]}


@pytest.mark.parametrize("size", [2, 15, 20, len(PALETTE)])
def test_no_two_models_of_one_chart_share_a_colour_while_they_fit(size):
    shown = KNOWN[:size]
    assert len(set(colours(KNOWN, shown).values())) == size


def test_models_the_ledger_does_not_know_take_colours_no_other_series_holds():
    shown = ["model-00", "only-in-chats", "model-01", "another"]
    found = colours(KNOWN[:3], shown)
    assert found["model-00"] == PALETTE[0] and found["model-01"] == PALETTE[1]
    assert found["only-in-chats"] == PALETTE[2]  # model-02 is not on this chart
    assert found["another"] == PALETTE[3]
    assert len(set(found.values())) == 4


def test_more_known_models_than_colours_still_keep_one_chart_apart():
    known = [f"m{n:03d}" for n in range(60)]
    # m000 and m024 share rank colour 0; on one chart the later one moves.
    found = colours(known, ["m024", "m000", "m001"])
    assert found["m000"] == PALETTE[0] and found["m001"] == PALETTE[1]
    assert found["m024"] not in (PALETTE[0], PALETTE[1])
    assert len(set(colours(known, known[: len(PALETTE)]).values())) == len(PALETTE)


def test_no_model_recorded_is_grey_and_apart():
    found = colours(KNOWN, ["model-00", None])
    assert found == {"model-00": PALETTE[0], None: NO_MODEL}
