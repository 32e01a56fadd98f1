"""The filter bar of the usage pages (django-filter), kept in the URL."""

import django_filters
from django import forms
from django.core.exceptions import ValidationError

from core.models import Organization, Source

from .metrics import Period, Scope
from .models import DailyTotal, DailyUsage

MAX_CUSTOM_DAYS = 3 * 366


def _distinct(field):
    # From the smallest roll-up (days × models), not the ledger.
    return [
        (value, value)
        for value in DailyTotal.objects.order_by(field).values_list(field, flat=True).distinct()
    ]


class UsageFilter(django_filters.FilterSet):
    """Period and scope of a usage page. The rows it filters are the
    roll-up's; pages read ``period`` and ``scope`` and call the metrics."""

    period = django_filters.ChoiceFilter(
        choices=list(Period.PRESETS.items()), method="keep", empty_label=None, label="Period"
    )
    start = django_filters.DateFilter(
        field_name="day",
        lookup_expr="gte",
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    end = django_filters.DateFilter(
        field_name="day",
        lookup_expr="lte",
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    organization = django_filters.ModelChoiceFilter(queryset=Organization.objects.order_by("name"))
    user = django_filters.NumberFilter(field_name="user_id", label="App user id")
    model = django_filters.ChoiceFilter(field_name="model_name", label="Model")
    provider = django_filters.ChoiceFilter(field_name="provider")
    source = django_filters.ModelChoiceFilter(queryset=Source.objects.order_by("name"))

    class Meta:
        model = DailyUsage
        fields = []

    def __init__(self, data=None, *args, **kwargs):
        data = data.copy() if data is not None else {}
        data.setdefault("period", "30d")
        super().__init__(data, *args, queryset=DailyUsage.objects.none(), **kwargs)
        self.filters["model"].extra["choices"] = _distinct("model_name")
        self.filters["provider"].extra["choices"] = _distinct("provider")

    def keep(self, queryset, name, value):
        return queryset

    def clean_period(self):
        data = self.form.cleaned_data
        if data.get("period") != "custom":
            return Period.preset(data.get("period") or "30d")
        start, end = data.get("start"), data.get("end")
        if not start or not end:
            raise ValidationError("A custom range needs a start and an end date.")
        if end < start:
            raise ValidationError("The end date is before the start date.")
        if (end - start).days >= MAX_CUSTOM_DAYS:
            raise ValidationError("A custom range may span at most three years.")
        return Period(start, end)

    def resolve(self):
        """(period, scope, errors): a bad filter falls back to the default."""
        if not self.form.is_valid():
            return Period.preset("30d"), Scope(), self.form.errors
        try:
            period = self.clean_period()
        except ValidationError as error:
            return Period.preset("30d"), Scope(), {"period": error.messages}
        data = self.form.cleaned_data
        scope = Scope(
            organization_id=data["organization"].pk if data.get("organization") else None,
            user_id=int(data["user"]) if data.get("user") is not None else None,
            model_name=data.get("model") or None,
            provider=data.get("provider") or None,
            source_id=data["source"].pk if data.get("source") else None,
        )
        return period, scope, {}
