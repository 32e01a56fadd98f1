"""Filters of the reviewer pages (django-filter), kept in the URL."""

import django_filters
from django import forms

from core.models import Organization, Source

from .models import MessageFeedback

DATE = forms.DateInput(attrs={"type": "date"})
BIGINT_MAX = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """A row id: a whole number in the database's range (a decimal would
    match the id it truncates to, a huge one overflow SQLite's integers)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(*args, **kwargs)


class FeedbackQueueFilter(django_filters.FilterSet):
    """The feedback queue: every rated message, lowest rating first."""

    rating = django_filters.ChoiceFilter(
        choices=[(n, "★" * n) for n in range(1, 6)], empty_label="Any"
    )
    model = django_filters.CharFilter(field_name="model_name", label="Model")
    provider = django_filters.CharFilter(field_name="model_provider", label="Provider")
    organization = django_filters.ModelChoiceFilter(
        field_name="message__chat__organization",
        queryset=Organization.objects.order_by("name"),
        label="Organisation",
        empty_label="Any",
    )
    user = IdFilter(field_name="message__chat__user_id", label="App user id")
    source = django_filters.ModelChoiceFilter(
        queryset=Source.objects.order_by("name"), empty_label="Any"
    )
    start = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__gte", label="From", widget=DATE
    )
    end = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__lte", label="To", widget=DATE
    )
    mistake = django_filters.BooleanFilter(
        field_name="message__is_mistake",
        label="Flagged as mistake",
        widget=forms.Select(choices=[("", "Any"), ("true", "Yes"), ("false", "No")]),
    )

    class Meta:
        model = MessageFeedback
        fields = []

    @classmethod
    def queue(cls, data):
        queryset = (
            MessageFeedback.objects.filter(rating__isnull=False)
            .select_related("message__chat__user", "message__chat__organization", "source")
            .order_by("rating", "-created_at", "-id")
        )
        return cls(data, queryset=queryset)
