"""The price book kept from the community price map, and what it leaves out.

``read_price_map`` reads LiteLLM's ``model_prices_and_context_window.json``
format: an object of model name → {"litellm_provider", "input_cost_per_token",
"output_cost_per_token", "cache_read_input_token_cost",
"output_cost_per_reasoning_token", …} (USD per token). The input, output,
cached-input (``cache_read_input_token_cost``) and reasoning
(``output_cost_per_reasoning_token``) prices are kept, per million tokens;
the ledger counts cached input and reasoning tokens as parts of the prompt
and completion tokens (``ModelPrice.cost_of``). Prices of token types the
ledger does not count (cache writes, audio) are listed as not applied.

``plan_import`` compares the map with the prices in force on the effective
date (the diff printed before anything is written); ``repricing_diff`` says
how much money moves per model and day when the new prices re-price the
ledger rows priced from the book (``cost_source`` computed or unpriced;
reported costs never move); ``apply_import`` writes the prices and re-prices
through ``manage.py recompute_costs``.

``unpriced_models`` lists models the ledger has calls of without a price.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from io import StringIO

from django.core.management import call_command
from django.db import transaction
from django.db.models import Max, Min, Sum
from django.utils import timezone

from .models import DailyTotal, ModelPrice, ModelUsage
from .pricing import COST_QUANTUM, PriceBook

MILLION = Decimal(1_000_000)
PER_MILLION_QUANTUM = Decimal("0.000001")
# ModelPrice's per-million columns: max_digits=12, decimal_places=6
MAX_PER_MILLION = Decimal("999999.999999")
# The map's optional prices of parts of the input and output tokens, and the
# ModelPrice columns they go to.
PART_PRICES = {
    "cache_read_input_token_cost": "cached_input_per_million",
    "output_cost_per_reasoning_token": "reasoning_per_million",
}
IGNORED_PRICES = (
    "cache_creation_input_token_cost",
    "input_cost_per_audio_token",
    "output_cost_per_audio_token",
)


@dataclass(frozen=True)
class MapPrice:
    """One model's prices (USD per million tokens) in the map; the cached
    input and reasoning prices None when the map gives none."""

    model_name: str
    provider: str
    input_per_million: Decimal
    output_per_million: Decimal
    ignored: tuple = ()  # token types priced in the map that are not applied
    cached_input_per_million: Decimal | None = None
    reasoning_per_million: Decimal | None = None

    def rates(self):
        """{ModelPrice price column: value} of every price."""
        return {name: getattr(self, name) for name in PRICE_FIELDS}


# ModelPrice's price columns, and how the diff names them.
PRICE_FIELDS = {
    "input_per_million": "in",
    "output_per_million": "out",
    "cached_input_per_million": "cached in",
    "reasoning_per_million": "reasoning",
}


def describe(price):
    """A ModelPrice's or MapPrice's prices for the diff: "in 2.500000/out
    10.000000/cached in 1.250000" (a part not priced apart is left out)."""
    return "/".join(
        f"{label} {getattr(price, name)}"
        for name, label in PRICE_FIELDS.items()
        if getattr(price, name) is not None
    )


@dataclass
class PriceMap:
    prices: list = field(default_factory=list)
    refused: list = field(default_factory=list)  # (entry name, reason)


def _per_million(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} is not a number")
    try:
        per_token = Decimal(str(value))
    except InvalidOperation as error:
        raise ValueError(f"{name} is not a number") from error
    if not per_token.is_finite() or per_token < 0:
        raise ValueError(f"{name} is negative or not finite")
    per_million = (per_token * MILLION).quantize(PER_MILLION_QUANTUM)
    if per_million > MAX_PER_MILLION:
        raise ValueError(f"{name} is over ${MAX_PER_MILLION} per million tokens")
    return per_million


def split_name(name, provider):
    """The map names some models "provider/model": the ledger's model name
    is the part after the provider."""
    prefix = f"{provider}/"
    return name[len(prefix) :] if name.startswith(prefix) else name


def read_price_map(data):
    """A PriceMap from the parsed JSON (a dict). Entries without both an
    input and an output price, or without a provider, are refused with why."""
    result = PriceMap()
    if not isinstance(data, dict):
        raise ValueError("a price map is a JSON object of model name → prices")
    for name, entry in data.items():
        if name == "sample_spec":
            continue
        if not isinstance(entry, dict):
            result.refused.append((name, "not an object"))
            continue
        provider = entry.get("litellm_provider")
        if not isinstance(provider, str) or not provider.strip():
            result.refused.append((name, "no litellm_provider"))
            continue
        if "input_cost_per_token" not in entry or "output_cost_per_token" not in entry:
            result.refused.append((name, "no input_cost_per_token or output_cost_per_token"))
            continue
        try:
            rates = [
                _per_million(entry[k], k) for k in ("input_cost_per_token", "output_cost_per_token")
            ]
            parts = {
                column: _per_million(entry[key], key)
                for key, column in PART_PRICES.items()
                if entry.get(key) is not None
            }
        except ValueError as error:
            result.refused.append((name, str(error)))
            continue
        model_name = split_name(name, provider.strip())
        if len(model_name) > 100 or len(provider.strip()) > 50:
            result.refused.append((name, "model or provider name too long"))
            continue
        ignored = tuple(k for k in IGNORED_PRICES if entry.get(k))
        result.prices.append(MapPrice(model_name, provider.strip(), *rates, ignored, **parts))
    return result


def load_price_map(path):
    with open(path, encoding="utf-8") as handle:
        return read_price_map(json.load(handle))


@dataclass
class PriceChange:
    price: MapPrice
    old: ModelPrice | None  # the price in force on the effective date

    @property
    def state(self):
        if self.old is None:
            return "new"
        same = all(getattr(self.old, name) == value for name, value in self.price.rates().items())
        return "unchanged" if same else "changed"


def known_models():
    """(model, provider) pairs in the price book or in the ledger's roll-up."""
    priced = set(ModelPrice.objects.values_list("model_name", "provider").distinct())
    used = set(DailyTotal.objects.values_list("model_name", "provider").distinct())
    return priced | used


def plan_import(price_map, effective, every=False, models=()):
    """The changes the map makes on the effective date: one PriceChange per
    map model that is new or changed (unchanged ones are left out). By
    default only models the book or the ledger knows; ``every`` takes all;
    ``models`` (names) narrows further."""
    book = PriceBook()
    wanted = None if every else known_models()
    changes = []
    for price in price_map.prices:
        key = (price.model_name, price.provider)
        if wanted is not None and key not in wanted:
            continue
        if models and price.model_name not in models:
            continue
        change = PriceChange(price, book.price_on(*key, effective))
        if change.state != "unchanged":
            changes.append(change)
    changes.sort(key=lambda c: (c.price.model_name, c.price.provider))
    return changes


def _new_book(changes, effective):
    """The price book as it will be once the changes are written."""
    replaced = {(c.price.model_name, c.price.provider) for c in changes}
    prices = [
        p
        for p in ModelPrice.objects.all()
        if not ((p.model_name, p.provider) in replaced and p.effective_from == effective)
    ]
    prices += [
        ModelPrice(
            model_name=c.price.model_name,
            provider=c.price.provider,
            effective_from=effective,
            **c.price.rates(),
        )
        for c in changes
    ]
    return PriceBook(prices)


def _repriced_rows(changes, effective):
    """Ledger rows the changes can re-price: not reported, of a changed
    model, on or after the effective date (as recompute_costs selects them)."""
    names = sorted({c.price.model_name for c in changes})
    return ModelUsage.objects.exclude(cost_source=ModelUsage.CostSource.REPORTED).filter(
        model_name__in=names, timestamp__date__gte=effective
    )


def repricing_diff(changes, effective, batch_size=2000):
    """[{day, model_name, provider, rows, before, after, moved}] of the ledger
    rows whose cost the new prices change, per local day and model; costs
    None (unpriced) count as 0 in the sums."""
    if not changes:
        return []
    book = _new_book(changes, effective)
    rows = _repriced_rows(changes, effective)
    moved = defaultdict(lambda: {"rows": 0, "before": Decimal(0), "after": Decimal(0)})
    last_pk = 0
    while batch := list(rows.filter(pk__gt=last_pk).order_by("pk")[:batch_size]):
        last_pk = batch[-1].pk
        for usage in batch:
            old = (usage.cost, usage.cost_source)
            usage.cost = None
            book.price_row(usage)
            if (usage.cost, usage.cost_source) == old:
                continue
            day = timezone.localtime(usage.timestamp).date()
            entry = moved[(day, usage.model_name, usage.provider)]
            entry["rows"] += 1
            entry["before"] += old[0] or Decimal(0)
            entry["after"] += usage.cost or Decimal(0)
    return [
        {
            "day": day,
            "model_name": model,
            "provider": provider,
            **entry,
            "moved": (entry["after"] - entry["before"]).quantize(COST_QUANTUM),
        }
        for (day, model, provider), entry in sorted(moved.items())
    ]


def apply_import(changes, effective):
    """Write the prices (a same-day price of the model is replaced) and
    re-price the ledger with ``recompute_costs``, all in one transaction.
    Returns recompute_costs' output."""
    out = StringIO()
    with transaction.atomic():
        for change in changes:
            ModelPrice.objects.update_or_create(
                model_name=change.price.model_name,
                provider=change.price.provider,
                effective_from=effective,
                defaults=change.price.rates(),
            )
        for name in sorted({c.price.model_name for c in changes}):
            call_command("recompute_costs", model=name, since=effective.isoformat(), stdout=out)
    return out.getvalue()


# -- models without a price ----------------------------------------------------


def unpriced_models():
    """Models with calls that have no cost (none reported, no price in
    force): [{model_name, provider, first_seen, last_seen, requests, tokens,
    unpriced_requests, has_price}], all since the model was first seen, the
    most unpriced calls first. From the smallest roll-up (DailyTotal)."""
    rows = list(
        DailyTotal.objects.values("model_name", "provider")
        .annotate(
            first_seen=Min("day"),
            last_seen=Max("day"),
            requests=Sum("requests"),
            tokens=Sum("total_tokens"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            unpriced_requests=Sum("unpriced_requests"),
        )
        .filter(unpriced_requests__gt=0)
        .order_by("-unpriced_requests", "model_name", "provider")
    )
    priced = set(ModelPrice.objects.order_by().values_list("model_name", "provider"))
    for row in rows:
        row["has_price"] = (row["model_name"], row["provider"]) in priced
    return rows
