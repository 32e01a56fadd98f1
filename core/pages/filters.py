"""The filter bar of every custom page (django-filter), kept in the URL:
a period (presets or a bounded custom range) and a scope."""

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from core.models import Organization, Source

from .period import EARLIEST, Period, Scope, latest

MAX_CUSTOM_DAYS = 3 * 366
DEFAULT_PERIOD = "30d"


def _date(label):
    return django_filters.DateFilter(
        method="keep", label=label, widget=forms.DateInput(attrs={"type": "date"})
    )


class PageFilter(django_filters.FilterSet):
    """Period and scope of a page. It filters no rows itself: pages read
    ``resolve()``'s period and scope and call their metrics.

    ``omit`` names the fields a page leaves out; ``choices(name)`` gives the
    model and provider choices (none here: an app that knows them says).
    """

    omit = ()

    period = django_filters.ChoiceFilter(
        choices=list(Period.PRESETS.items()), method="keep", empty_label=None, label="Period"
    )
    start = _date("From")
    end = _date("To")
    organization = django_filters.ModelChoiceFilter(
        queryset=Organization.objects.order_by("name"), method="keep", label="Organization"
    )
    user = django_filters.NumberFilter(method="keep", label="App user id")
    model = django_filters.ChoiceFilter(method="keep", label="Model")
    provider = django_filters.ChoiceFilter(method="keep", label="Provider")
    source = django_filters.ModelChoiceFilter(
        queryset=Source.objects.order_by("name"), method="keep", label="Source"
    )

    def __init__(self, data=None, *args, queryset=None, **kwargs):
        data = data.copy() if data is not None else {}
        data.setdefault("period", DEFAULT_PERIOD)
        # No rows are filtered (see the class): any empty queryset will do.
        queryset = Organization.objects.none() if queryset is None else queryset
        super().__init__(data, *args, queryset=queryset, **kwargs)
        for name in self.omit:
            del self.filters[name]
        for name in ("model", "provider"):
            if name in self.filters:
                self.filters[name].extra["choices"] = self.choices(name)

    def choices(self, name):
        return []

    def keep(self, queryset, name, value):
        return queryset

    def clean_period(self):
        data = self.form.cleaned_data
        if data.get("period") != "custom":
            return Period.preset(data.get("period") or DEFAULT_PERIOD)
        start, end = data.get("start"), data.get("end")
        if not start or not end:
            raise ValidationError("A custom range needs a start and an end date.")
        last = latest(timezone.localdate())
        if not (EARLIEST <= start <= last and EARLIEST <= end <= last):
            raise ValidationError(
                f"Dates must lie between {EARLIEST.isoformat()} and {last.isoformat()}."
            )
        if end < start:
            raise ValidationError("The end date is before the start date.")
        if (end - start).days >= MAX_CUSTOM_DAYS:
            raise ValidationError("A custom range may span at most three years.")
        return Period(start, end)

    def _value(self, data, name):
        return data.get(name) if name in self.filters else None

    def resolve(self):
        """(period, scope, errors): a bad filter falls back to the default."""
        fallback = Period.preset(DEFAULT_PERIOD)
        if not self.form.is_valid():
            return fallback, Scope(), self.form.errors
        try:
            period = self.clean_period()
        except ValidationError as error:
            return fallback, Scope(), {"period": error.messages}
        data = self.form.cleaned_data
        organization, user = self._value(data, "organization"), self._value(data, "user")
        source = self._value(data, "source")
        scope = Scope(
            organization_id=organization.pk if organization else None,
            user_id=int(user) if user is not None else None,
            model_name=self._value(data, "model") or None,
            provider=self._value(data, "provider") or None,
            source_id=source.pk if source else None,
        )
        return period, scope, {}
