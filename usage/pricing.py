"""Costs from model prices, for ledger rows whose source reported none."""

import bisect
from collections import defaultdict
from decimal import Decimal

from django.utils import timezone

from .models import ModelPrice, ModelUsage

# Costs are stored with 8 decimal places (USD).
COST_QUANTUM = Decimal("0.00000001")


class PriceBook:
    """All model prices in memory, answering "what did this call cost?".

    Loaded once per import batch or command run: the price table is small
    (a row per model, provider and price change).
    """

    def __init__(self, prices=None):
        if prices is None:
            prices = ModelPrice.objects.all()
        self._by_model = defaultdict(list)
        for price in sorted(prices, key=lambda p: p.effective_from):
            self._by_model[(price.model_name, price.provider)].append(price)
        self._dates = {
            key: [p.effective_from for p in rows] for key, rows in self._by_model.items()
        }

    def price_on(self, model_name, provider, when):
        """The price in force for the model on ``when``'s date (in TIME_ZONE)."""
        key = (model_name, provider)
        dates = self._dates.get(key)
        if not dates:
            return None
        day = timezone.localtime(when).date() if hasattr(when, "hour") else when
        index = bisect.bisect_right(dates, day) - 1
        return self._by_model[key][index] if index >= 0 else None

    def price_row(self, usage):
        """Set ``cost``/``cost_source`` on a ledger row the source gave no cost.

        A row with a reported cost is left as it is. Returns the row.
        """
        if usage.cost is not None and usage.cost_source == ModelUsage.CostSource.REPORTED:
            return usage
        price = self.price_on(usage.model_name, usage.provider, usage.timestamp)
        if price is None:
            usage.cost = None
            usage.cost_source = ModelUsage.CostSource.UNPRICED
        else:
            cost = price.cost_of(
                usage.prompt_tokens,
                usage.completion_tokens,
                getattr(usage, "cached_input_tokens", None),
                getattr(usage, "reasoning_tokens", None),
            )
            usage.cost = cost.quantize(COST_QUANTUM)
            usage.cost_source = ModelUsage.CostSource.COMPUTED
        return usage
