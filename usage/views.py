"""Usage and cost dashboards for Managers and Admins, in the admin's frame.

Thin views (core.pages.views): parse the filter bar, hand the page's
declared tables (usage.tables) and figures and charts (usage.charts) to
``render_page``, which renders or exports one table.
"""

import dataclasses

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.text import slugify

from core.models import AppUser, Organization
from core.pages.views import Page, admin_page, render_page

from . import charts, metrics, tables
from .filters import UsageFilter
from .forms import WhatIfForm
from .models import DailyTotal

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
    context=charts.overview_drill,
)

# Query parameters the what-if form does not carry over from the page's URL.
WHAT_IF_DROPS = ("what_if", "export", "page")


def models_context(view):
    """The models page's sort and its what-if form: the chosen price and the
    period's totals on it (the figures of the what-if tables, memoized)."""
    form = view.options["what_if"]
    price = form.price
    what_if = {
        "form": form,
        "price": price,
        "keep": [
            (name, value)
            for name, values in view.request.GET.lists()
            if name not in WHAT_IF_DROPS
            for value in values
        ],
    }
    if price is not None:
        rows = metrics.what_if(view.period, view.scope, price, "organization_id")
        what_if["total"] = metrics.what_if_total(rows, price)
    return {
        "unpriced": metrics.unpriced_summary(view.period, view.scope),
        "sort": view.options["sort"],
        "sort_keys": tables.MODEL_SORT_KEYS,
        "what_if": what_if,
        "filters_keep": [("what_if", metrics.price_key(price))] if price else [],
    }


MODELS = Page(
    "usage/models.html",
    "Models",
    "usage-models",
    tables={
        "models": tables.models,
        "what_if_organizations": tables.what_if_organizations,
        "what_if_users": tables.what_if_users,
    },
    context=models_context,
)

SUBJECT = Page(
    "usage/subject.html",
    "",
    "usage",
    tables={
        "by_model": tables.by_model,
        "users": tables.organization_users,
        "days": tables.days,
        "budgets": tables.budgets,
    },
    context=charts.subject_drill,
)

MODEL = Page(
    "usage/model.html",
    "",
    "usage-model",
    tables={
        "users": tables.users,
        "organizations": tables.organizations,
        "cost_by_provider": tables.cost_by_provider,
        "days": tables.days,
    },
    context=charts.model,
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


class ModelFilter(SubjectFilter):
    """One model's page: its model and provider are in its path."""

    omit = ("model", "provider")


@dashboard
def overview(request):
    return render_page(request, OVERVIEW, UsageFilter(request.GET))


@dashboard
def models(request):
    return render_page(
        request,
        MODELS,
        UsageFilter(request.GET),
        sort=request.GET.get("sort", "-cost"),
        what_if=WhatIfForm(request.GET),
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
def model(request, provider, model_name):
    """One model of one provider: the overview's figures scoped to it. A model
    without a row in the roll-ups is a 404 (a typo, not an empty page)."""
    if not DailyTotal.objects.filter(model_name=model_name, provider=provider).exists():
        raise Http404("No usage of this model and provider.")
    return render_page(
        request,
        MODEL,
        ModelFilter(request.GET, {"model_name": model_name, "provider": provider}),
        title=f"Model: {model_name} ({provider})",
        filename=f"usage-model-{slugify(provider)}-{slugify(model_name)}",
    )


@dashboard
def app_user(request, pk):
    return _subject_page(request, get_object_or_404(AppUser, pk=pk), "user_id", "App user")


@dashboard
def organization(request, pk):
    return _subject_page(
        request, get_object_or_404(Organization, pk=pk), "organization_id", "Organisation"
    )
