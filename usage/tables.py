"""Tables of the usage pages, declared once for the HTML and the CSV: each
a function of the page's request (core.pages.views.PageRequest) that asks
usage.metrics for its rows."""

from urllib.parse import urlencode

from django.urls import reverse

from core.pages.tables import Column, Table

from . import drill, metrics
from .templatetags.figures import figure


def user_url(row):
    return reverse("dashboards:user", args=[row["user_id"]])


def organization_url(row):
    return reverse("dashboards:organization", args=[row["organization_id"]])


def budget_url(row):
    return organization_url(row) if row["organization_id"] else user_url(row)


SPEND_COLUMNS = [
    Column("cost", "Cost", "money"),
    Column("tokens", "Tokens", "number"),
    Column("requests", "Requests", "number"),
]
# Beside a cost: the calls without a price it leaves out (the page flags
# the cost cell with their number; the CSV has them as a column).
UNPRICED_COLUMN = Column("unpriced_requests", "Unpriced requests", "number", csv_only=True)

# The status next to the name: a narrow screen shows it without scrolling.
BUDGET_COLUMNS = [
    Column("target", "Budget for"),
    Column("state", "Status", "state"),
    Column("spent", "Spent this month", "money"),
    Column("limit", "Monthly limit", "money"),
    Column("projected", "Projected month end", "money"),
    Column("share", "Share used", "share"),
]

MODEL_TABLE_COLUMNS = [
    Column("model_name", "Model"),
    Column("provider", "Provider"),
    Column("requests", "Requests", "number"),
    Column("prompt_tokens", "Input tokens", "number"),
    Column("completion_tokens", "Output tokens", "number"),
    Column("cached_input_tokens", "Cached input tokens", "number"),
    Column("reasoning_tokens", "Reasoning tokens", "number"),
    Column("cost", "Cost", "money"),
    UNPRICED_COLUMN,
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
    "cached_input_tokens": "cached",
    "reasoning_tokens": "reasoning",
    "cost": "cost",
    "cost_per_1k_tokens": "cost_per_1k",
    "avg_latency_ms": "latency",
    "p95_latency_ms": "p95",
    "avg_rating": "rating",
    "code_success_rate": "code_success",
    "mistake_share": "mistakes",
}


def budget_rows(statuses):
    return [
        {
            "target": str(s.target),
            "limit": s.budget.monthly_limit,
            "spent": s.spent,
            "share": s.share,
            "projected": s.projected,
            "state": s.label,
            "organization_id": s.budget.organization_id,
            "user_id": s.budget.user_id,
        }
        for s in statuses
    ]


def add_budget_url(**target):
    """The budget admin's add form, its organisation or app user filled in."""
    url = reverse("admin:usage_budget_add")
    return f"{url}?{urlencode(target)}" if target else url


# Organisations without a budget named under the overview's budgets.
UNBUDGETED_SHOWN = 3


def budget_actions(view, statuses):
    """Links to set the budgets that are missing: the subject's own on its
    page, else the costliest organisations of the month without one."""
    if not view.request.user.has_perm("usage.add_budget"):
        return []
    scope = view.scope
    if scope.organization_id or scope.user_id:
        if statuses:
            return []
        key = "organization" if scope.organization_id else "user"
        return [("Set a budget", add_budget_url(**{key: scope.lookups()[f"{key}_id"]}))]
    count, missing = metrics.organizations_without_budget(UNBUDGETED_SHOWN)
    actions = [
        (
            f"Set a budget for {row['label']} ({figure(row['cost'], 'money')} this month)",
            add_budget_url(organization=row["organization_id"]),
        )
        for row in missing
    ]
    if count > len(missing):
        actions.append((f"{count - len(missing):,} more organisations without a budget", None))
    actions.append(("Add a budget", add_budget_url()))
    return actions


def budgets(view):
    statuses = metrics.budget_statuses(scope=view.scope)
    return Table(
        "budgets",
        "Budgets this month",
        BUDGET_COLUMNS,
        budget_rows(statuses),
        link=budget_url,
        note=(
            "Over: spent more than the limit. At risk: projected over it at the run rate "
            "(spend so far ÷ days elapsed × days in the month). On track: neither."
        ),
        empty="No budget set.",
        actions=budget_actions(view, statuses),
    )


RECONCILED = "The rows add up to the period's total: the rest and what no row holds last."


def top_users(view):
    return Table(
        "top_users",
        "Top 10 app users by cost",
        [Column("label", "App user"), *SPEND_COLUMNS],
        metrics.top_users(view.period, view.scope),
        link=lambda row: user_url(row) if row["user_id"] else None,
        note=RECONCILED,
    )


def top_organizations(view):
    return Table(
        "top_organizations",
        "Top organisations by cost",
        [Column("label", "Organisation"), *SPEND_COLUMNS],
        metrics.top_organizations(view.period, view.scope),
        link=lambda row: organization_url(row) if row["organization_id"] else None,
        note=RECONCILED,
    )


def add_price_url(row):
    """The price admin's add form for an unpriced model, in force from the
    day it was first seen without one."""
    query = {
        "model_name": row["model_name"],
        "provider": row["provider"],
        "effective_from": row["first_seen"].isoformat(),
    }
    return f"{reverse('admin:usage_modelprice_add')}?{urlencode(query)}"


def unpriced(view):
    can_price = view.request.user.has_perm("usage.add_modelprice")
    return Table(
        "unpriced",
        "Models without a price",
        [
            Column("model_name", "Model"),
            Column("provider", "Provider"),
            Column("requests", "Requests", "number"),
            Column("tokens", "Tokens", "number"),
            Column("first_seen", "First seen", "date"),
        ],
        metrics.unpriced(view.period, view.scope),
        link=add_price_url if can_price else None,
        link_keeps_query=False,
        note=(
            "Calls of this period with no reported cost and no price in force: their cost "
            "is in no total. "
            + (
                "Add the model's price (the model links to the form), "
                if can_price
                else "An admin adds the model's price, "
            )
            + "then re-price the calls with manage.py recompute_costs --model <model> "
            "--since <first seen> (reported costs never change)."
        ),
        empty="Every call of this period has a price.",
        actions=[("Every model without a price, since it was first seen", reverse("watch:alerts"))],
    )


def cost_by_provider(view):
    return Table(
        "cost_by_provider",
        "Cost by provider",
        [Column("provider", "Provider"), Column("cost", "Cost", "money"), UNPRICED_COLUMN],
        metrics.provider_rows(view.period, view.scope),
    )


def model_url(row):
    """One model's page (the page's filters are appended by the table)."""
    return reverse("dashboards:model", args=[row["provider"], row["model_name"]])


def models(view):
    return Table(
        "models",
        "Models",
        MODEL_TABLE_COLUMNS,
        metrics.models_table(view.period, view.scope, view.options["sort"]),
        link=model_url,
        sortable=True,
        note=(
            "Cached input tokens are part of the input tokens and reasoning tokens part of "
            "the output tokens, summed over the requests that reported them (empty: none "
            "did). Ratings, code success and mistakes are matched to the ledger by model name."
        ),
    )


def by_model(view):
    return Table(
        "by_model",
        "Spend by model",
        [
            Column("model_name", "Model"),
            Column("provider", "Provider"),
            *SPEND_COLUMNS,
            UNPRICED_COLUMN,
        ],
        metrics.model_rows(view.period, view.scope),
    )


# -- what if: the period at another model's prices (usage.metrics.what_if) ------


# The model is named in the table's title (a long name would widen the column).
WHAT_IF_COLUMNS = [
    Column("requests", "Requests", "number"),
    Column("prompt_tokens", "Input tokens", "number"),
    Column("completion_tokens", "Output tokens", "number"),
    Column("cost", "Actual cost", "money"),
    Column("what_if_cost", "What-if cost", "money"),
    Column("difference", "Difference", "money_change"),
    Column("change", "Change", "change"),
]


# Rows of a what-if table on the page (the dearest; the rest summed in one
# row); its CSV has them all.
WHAT_IF_SHOWN = 25


def _what_if_table(view, by, name, title, label, others, link):
    """The what-if table per ``by``, or None when no priced model is chosen
    (the page then shows only the form)."""
    price = view.options["what_if"].price
    if price is None:
        return None
    rows = metrics.what_if(view.period, view.scope, price, by)
    shown, note = rows, ""
    if not view.export and len(rows) > WHAT_IF_SHOWN + 1:
        rest = rows[WHAT_IF_SHOWN:]
        other = {"label": f"{len(rest):,} other {others}", **metrics.what_if_total(rest, price)}
        shown = [*rows[:WHAT_IF_SHOWN], other]
        note = (
            f"The {WHAT_IF_SHOWN} dearest on {price.model_name}, then the others together; "
            "the CSV has every row."
        )
    return Table(
        name,
        f"{title} on {price.model_name} ({price.provider})",
        [Column("label", label), *WHAT_IF_COLUMNS],
        shown,
        link=lambda row: link(row) if row.get(by) is not None else None,
        note=note,
        footer={"label": "Total", **metrics.what_if_total(rows, price)},
    )


def what_if_organizations(view):
    return _what_if_table(
        view,
        "organization_id",
        "what_if_organizations",
        "By organisation",
        "Organisation",
        "organisations",
        organization_url,
    )


def what_if_users(view):
    return _what_if_table(
        view, "user_id", "what_if_users", "By app user", "App user", "app users", user_url
    )


# -- one model's page, the users of an organisation, the days of a page --------


def _link_if(url, key):
    # "others", "Anonymous" and "No organisation" rows have no page.
    return lambda row: url(row) if row.get(key) is not None else None


def users(view):
    return Table(
        "users",
        "App users by cost",
        [Column("label", "App user"), *SPEND_COLUMNS],
        metrics.users_of(view.period, view.scope),
        link=_link_if(user_url, "user_id"),
        note="The dearest, then the others together and the anonymous usage: the rows add up.",
    )


def organizations(view):
    return Table(
        "organizations",
        "Organisations by cost",
        [Column("label", "Organisation"), *SPEND_COLUMNS],
        metrics.organizations_of(view.period, view.scope),
        link=_link_if(organization_url, "organization_id"),
        note="The dearest, then the others together and the usage without one: the rows add up.",
    )


def organization_users(view):
    """An organisation's page: its app users (None on an app user's page)."""
    if view.options.get("scope_field") != "organization_id":
        return None
    return users(view)


DAY_COLUMNS = [
    Column("day", "Day", "date"),
    *SPEND_COLUMNS,
    Column("unpriced", "Unpriced requests", "number"),
]


def days(view):
    """A row per local day of the period, each linking to its ledger rows
    (the drill-down of the per-day chart, without JavaScript)."""
    rows = [
        dict(zip(("day", "cost", "requests", "tokens", "unpriced"), row, strict=True))
        for row in metrics.per_day(view.period, view.scope)
    ]
    return Table(
        "days",
        "Per day",
        DAY_COLUMNS,
        [row for row in reversed(rows) if row["requests"]],
        link=lambda row: drill.ledger_url(row["day"], view.scope),
        link_keeps_query=False,
        note="Each day opens its ledger rows in these filters.",
    )
