"""Usage and cost dashboards for Managers and Admins, in the admin's frame.

Thin views (core.pages.views): parse the filter bar, hand the page's
declared tables (usage.tables) and figures and charts (usage.charts) to
``render_page``, which renders or exports one table.
"""

import dataclasses

from django.shortcuts import get_object_or_404

from core.models import AppUser, Organization
from core.pages.views import Page, admin_page, render_page

from . import charts, tables
from .filters import UsageFilter

VIEW_PERMISSION = "usage.view_dashboards"
dashboard = admin_page(VIEW_PERMISSION)

OVERVIEW = Page(
    "usage/overview.html",
    "Usage and cost",
    "usage-overview",
    tables={
        "top_users": tables.top_users,
        "top_organizations": tables.top_organizations,
        "cost_by_provider": tables.cost_by_provider,
        "unpriced": tables.unpriced,
        "budgets": tables.budgets,
    },
    context=charts.overview,
)

MODELS = Page(
    "usage/models.html",
    "Models",
    "usage-models",
    tables={"models": tables.models},
    context=lambda view: {"sort": view.options["sort"], "sort_keys": tables.MODEL_SORT_KEYS},
)

SUBJECT = Page(
    "usage/subject.html",
    "",
    "usage",
    tables={"by_model": tables.by_model, "budgets": tables.budgets},
    context=charts.subject,
)


class SubjectFilter(UsageFilter):
    """The filter bar of one app user's or organisation's page: its scope
    always names the subject."""

    def __init__(self, data, subject_scope):
        super().__init__(data)
        self.subject_scope = subject_scope

    def resolve(self):
        period, scope, errors = super().resolve()
        return period, dataclasses.replace(scope, **self.subject_scope), errors


@dashboard
def overview(request):
    return render_page(request, OVERVIEW, UsageFilter(request.GET))


@dashboard
def models(request):
    return render_page(
        request, MODELS, UsageFilter(request.GET), sort=request.GET.get("sort", "-cost")
    )


def _subject_page(request, subject, scope_field, kind):
    return render_page(
        request,
        SUBJECT,
        SubjectFilter(request.GET, {scope_field: subject.pk}),
        title=f"{kind}: {subject}",
        filename=f"usage-{scope_field}-{subject.pk}",
        subject=subject,
        kind=kind,
        scope_field=scope_field,
    )


@dashboard
def app_user(request, pk):
    return _subject_page(request, get_object_or_404(AppUser, pk=pk), "user_id", "App user")


@dashboard
def organization(request, pk):
    return _subject_page(
        request, get_object_or_404(Organization, pk=pk), "organization_id", "Organisation"
    )
