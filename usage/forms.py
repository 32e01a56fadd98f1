"""Forms of the usage pages beyond the filter bar."""

from django import forms
from django.utils import timezone

from . import metrics
from .templatetags.figures import figure


def _price_label(price):
    return (
        f"{price.model_name} ({price.provider}): {figure(price.input_per_million, 'money')} in, "
        f"{figure(price.output_per_million, 'money')} out per million tokens"
    )


class WhatIfForm(forms.Form):
    """The models page's "what would this period have cost on model X?":
    a model of the price book, at its price in force today, in the URL
    (``?what_if=provider/model``). The price book is read only when the
    form is validated or drawn."""

    what_if = forms.ChoiceField(
        required=False,
        label="Cost the period on",
        error_messages={
            "invalid_choice": "“%(value)s” has no price in force in the price book: "
            "choose one of its models."
        },
    )

    def __init__(self, data=None):
        super().__init__(data)
        self.fields["what_if"].choices = self._choices

    def prices(self):
        """{"provider/model": ModelPrice} in force today (memoized per request)."""
        return metrics.prices_in_force(timezone.localdate())

    def _choices(self):
        return [("", "— a priced model —")] + [
            (key, _price_label(price)) for key, price in self.prices().items()
        ]

    @property
    def asked(self):
        return bool(self.data.get("what_if"))

    @property
    def price(self):
        """The chosen ModelPrice, or None (none chosen, or not a priced model)."""
        if not self.asked or not self.is_valid():
            return None
        return self.prices()[self.cleaned_data["what_if"]]
