"""Usage and cost dashboards for Managers and Admins, in the admin's frame.

Thin views: read the filter bar, call usage.metrics, render or export.
"""

from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from chats.models import Chat, MessageFeedback
from core.models import AppUser, Organization

from . import charts, metrics
from .filters import UsageFilter
from .metrics import Scope
from .tables import Column, Table, csv_response

VIEW_PERMISSION = "usage.view_dashboards"
EXPORT_PERMISSION = "usage.export_usage"


def dashboard(view):
    """Admin login, then the dashboards permission (403 without it); the
    metrics a page asks for twice are computed once (``metrics.memo``)."""

    @wraps(view)
    def checked(request, *args, **kwargs):
        if not request.user.has_perm(VIEW_PERMISSION):
            raise PermissionDenied
        with metrics.memo():
            return view(request, *args, **kwargs)

    return admin.site.admin_view(checked)


def _user_url(row):
    return reverse("dashboards:user", args=[row["user_id"]])


def _org_url(row):
    return reverse("dashboards:organization", args=[row["organization_id"]])


SPEND_COLUMNS = [
    Column("cost", "Cost", "money"),
    Column("tokens", "Tokens", "number"),
    Column("requests", "Requests", "number"),
]

BUDGET_COLUMNS = [
    Column("target", "Budget for"),
    Column("limit", "Monthly limit", "money"),
    Column("spent", "Spent this month", "money"),
    Column("share", "Share used", "share"),
    Column("projected", "Projected month end", "money"),
    Column("state", "Status"),
]

MODEL_TABLE_COLUMNS = [
    Column("model_name", "Model"),
    Column("provider", "Provider"),
    Column("requests", "Requests", "number"),
    Column("prompt_tokens", "Input tokens", "number"),
    Column("completion_tokens", "Output tokens", "number"),
    Column("cost", "Cost", "money"),
    Column("cost_per_1k_tokens", "Cost / 1k tokens", "money"),
    Column("avg_latency_ms", "Avg latency", "ms"),
    Column("p95_latency_ms", "p95 latency", "ms"),
    Column("avg_rating", "Avg rating", "rating"),
    Column("code_success_rate", "Code success", "share"),
    Column("mistake_share", "Flagged mistakes", "share"),
]
# Sort keys (metrics.MODEL_COLUMNS) of the model table's columns.
MODEL_SORT_KEYS = {
    "model_name": "model",
    "requests": "requests",
    "prompt_tokens": "input",
    "completion_tokens": "output",
    "cost": "cost",
    "cost_per_1k_tokens": "cost_per_1k",
    "avg_latency_ms": "latency",
    "p95_latency_ms": "p95",
    "avg_rating": "rating",
    "code_success_rate": "code_success",
    "mistake_share": "mistakes",
}


def _budget_table(statuses):
    rows = [
        {
            "target": str(s.budget.organization or s.budget.user),
            "limit": s.budget.monthly_limit,
            "spent": s.spent,
            "share": s.share,
            "projected": s.projected,
            "state": {"over": "Over budget", "alert": "Over threshold", "ok": "OK"}[s.state],
            "organization_id": s.budget.organization_id,
            "user_id": s.budget.user_id,
        }
        for s in statuses
    ]
    return Table(
        "budgets",
        "Budgets this month",
        BUDGET_COLUMNS,
        rows,
        link=lambda r: _org_url(r) if r["organization_id"] else _user_url(r),
        note="Projection: spend so far ÷ days elapsed × days in the month.",
    )


def render_or_export(request, template, tables, context, filename):
    """Render the page, or stream one of its tables as CSV (?export=name)."""
    export = request.GET.get("export")
    if export:
        if not request.user.has_perm(EXPORT_PERMISSION):
            raise PermissionDenied
        if export not in tables:
            raise PermissionDenied("No such table.")
        return csv_response(tables[export](), f"{filename}-{export}")
    query = request.GET.copy()
    query.pop("export", None)
    context.update(
        admin.site.each_context(request),
        tables=[build() for build in tables.values()],
        query=query.urlencode(),
        time_zone=timezone.get_current_timezone_name(),
        can_export=request.user.has_perm(EXPORT_PERMISSION),
    )
    return render(request, template, context)


@dashboard
def overview(request):
    filters = UsageFilter(request.GET)
    period, scope, errors = filters.resolve()
    tables = {
        "top_users": lambda: Table(
            "top_users",
            "Top 10 app users by cost",
            [Column("label", "App user"), *SPEND_COLUMNS],
            metrics.top_users(period, scope),
            link=_user_url,
        ),
        "top_organizations": lambda: Table(
            "top_organizations",
            "Top organisations by cost",
            [Column("label", "Organisation"), *SPEND_COLUMNS],
            metrics.top_organizations(period, scope),
            link=_org_url,
        ),
        "cost_by_provider": lambda: Table(
            "cost_by_provider",
            "Cost by provider",
            [Column("provider", "Provider"), Column("cost", "Cost", "money")],
            [{"provider": p, "cost": c} for p, c in metrics.cost_by_provider(period, scope)],
        ),
        "budgets": lambda: _budget_table(metrics.budget_statuses(scope=scope)),
    }
    providers = metrics.cost_by_provider(period, scope)
    context = {
        "title": "Usage and cost",
        "filters": filters,
        "errors": errors,
        "period": period,
        "figures": metrics.headline(period, scope),
        "charts": {
            "cost_by_model": charts.stacked_cost_by_model(
                metrics.cost_per_day_by_model(period, scope), period.each_day()
            ),
            "tokens": charts.tokens_in_out(metrics.tokens_per_day(period, scope)),
            "providers": charts.bars([p for p, _ in providers], [c for _, c in providers]),
        },
    }
    return render_or_export(request, "usage/overview.html", tables, context, "usage-overview")


@dashboard
def models(request):
    filters = UsageFilter(request.GET)
    period, scope, errors = filters.resolve()
    sort = request.GET.get("sort", "-cost")
    tables = {
        "models": lambda: Table(
            "models",
            "Models",
            MODEL_TABLE_COLUMNS,
            metrics.models_table(period, scope, sort),
            sortable=True,
            note="Ratings, code success and mistakes are matched to the ledger by model name.",
        )
    }
    context = {
        "title": "Models",
        "filters": filters,
        "errors": errors,
        "period": period,
        "sort": sort,
        "sort_keys": MODEL_SORT_KEYS,
    }
    return render_or_export(request, "usage/models.html", tables, context, "usage-models")


def _subject_page(request, subject, scope_field, kind):
    filters = UsageFilter(request.GET)
    period, scope, errors = filters.resolve()
    scope = Scope(**{**scope.lookups(), scope_field: subject.pk})
    chats = Chat.objects.select_related("user", "organization").filter(**{scope_field: subject.pk})[
        :20
    ]
    feedback = (
        MessageFeedback.objects.select_related("message__chat")
        .filter(**{f"message__chat__{scope_field}": subject.pk}, rating__isnull=False)
        .order_by("-created_at")[:20]
    )
    tables = {
        "by_model": lambda: Table(
            "by_model",
            "Spend by model",
            [Column("model_name", "Model"), Column("provider", "Provider"), *SPEND_COLUMNS],
            [
                dict(
                    zip(("model_name", "provider", "cost", "tokens", "requests"), row, strict=True)
                )
                for row in metrics.cost_by_model(period, scope)
            ],
        ),
        "budgets": lambda: _budget_table(metrics.budget_statuses(scope=scope)),
    }
    context = {
        "title": f"{kind}: {subject}",
        "subject": subject,
        "kind": kind,
        "filters": filters,
        "errors": errors,
        "period": period,
        "figures": metrics.headline(period, scope),
        "charts": {"cost": charts.cost_line(metrics.cost_per_day(period, scope))},
        "chats": chats,
        "feedback": feedback,
    }
    return render_or_export(
        request, "usage/subject.html", tables, context, f"usage-{scope_field}-{subject.pk}"
    )


@dashboard
def app_user(request, pk):
    return _subject_page(request, get_object_or_404(AppUser, pk=pk), "user_id", "App user")


@dashboard
def organization(request, pk):
    return _subject_page(
        request, get_object_or_404(Organization, pk=pk), "organization_id", "Organisation"
    )
