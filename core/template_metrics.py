"""Figures about templates that the admin pages show."""

from django.db.models import Count, IntegerField, Max, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from core.models import UserTemplatePreference


def with_usage(agent_templates):
    """Agent templates annotated from their users' preferences, in the same
    query: ``users_enabled`` (preferences switched on), ``total_usage`` (sum
    of usage_count over every preference) and ``last_used`` (the latest
    last_used_at).

    Correlated subqueries rather than a join with GROUP BY: each reads one
    template's preferences through the template_id index, and a COUNT of the
    changelist, a filter's choices or a bulk action on these rows drops them
    instead of grouping the whole preference table.
    """
    preferences = (
        UserTemplatePreference.objects.filter(template=OuterRef("pk")).order_by().values("template")
    )

    def figure(queryset, aggregate):
        return Subquery(queryset.annotate(value=aggregate).values("value"))

    return agent_templates.annotate(
        users_enabled=Coalesce(
            figure(preferences.filter(is_enabled=True), Count("pk")), 0, output_field=IntegerField()
        ),
        total_usage=Coalesce(
            figure(preferences, Sum("usage_count")), 0, output_field=IntegerField()
        ),
        last_used=figure(preferences, Max("last_used_at")),
    )
