"""Shared and reference rows: sources, model prices, organisations, agent
templates, performance metrics and budgets."""

import re
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

from django.utils import timezone

from core.models import AgentTemplate, Organization, Source
from usage import metrics
from usage.metrics import BudgetState, budget_state
from usage.models import Budget, ModelPrice, PerformanceMetric
from usage.pricing import PriceBook

from . import catalog

AA = Source.Kind.AUTO_ANALYST
DS = Source.Kind.DS_ML_AGENT
TTS = Source.Kind.TEXT_TO_SQL


def make_sources(ctx):
    """One demo source per application kind (reused if it already exists)."""
    for kind, (name, description) in catalog.SOURCES.items():
        source, _ = Source.objects.get_or_create(
            name=name,
            defaults={"kind": kind, "description": description, "created_at": ctx.start},
        )
        ctx.sources[kind] = source


def make_prices(ctx):
    """List prices from before the window, plus one price change inside it."""
    since = (ctx.start - timedelta(days=60)).date()
    change = catalog.PRICE_CHANGE
    days_ago = min(change["days_ago"], max(1, (ctx.anchor - ctx.start).days // 2))
    changed_on = (ctx.anchor - timedelta(days=days_ago)).date()
    prices = []
    for llm in catalog.MODELS:
        if llm.input_price is None:
            continue
        new_price = (llm.input_price, llm.output_price, since)
        if (llm.name, llm.provider) == (change["model"], change["provider"]):
            prices.append(_price(ctx, llm, change["old_input"], change["old_output"], since))
            new_price = (llm.input_price, llm.output_price, changed_on)
        prices.append(_price(ctx, llm, *new_price))
    for price in prices:
        ctx.writer.add(price)
    ctx.prices = PriceBook(prices)


def _price(ctx, llm, input_price, output_price, effective_from):
    return ModelPrice(
        model_name=llm.name,
        provider=llm.provider,
        input_per_million=Decimal(input_price),
        output_per_million=Decimal(output_price),
        effective_from=effective_from,
        created_at=datetime.combine(effective_from - timedelta(days=1), time(9), tzinfo=UTC),
    )


def organization_names(count):
    names = []
    for index in range(count):
        base = catalog.ORG_NAMES[index % len(catalog.ORG_NAMES)]
        round_ = index // len(catalog.ORG_NAMES)
        if round_ == 0:
            names.append(base)
            continue
        suffixes = catalog.ORG_NAME_SUFFIXES
        suffix = suffixes[(round_ - 1) % len(suffixes)]
        repeat = (round_ - 1) // len(suffixes)
        names.append(f"{base} {suffix}" + (f" {repeat + 1}" if repeat else ""))
    return names


def make_organizations(ctx):
    """The ds-ml-agent org_ids; other apps' users may belong to them too."""
    source = ctx.sources[DS]
    for name in organization_names(ctx.count("organizations")):
        words = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        slug = f"org_{words}"
        org = Organization(
            source=source,
            source_pk=slug,
            slug=slug,
            name=name,
            created_at=ctx.clock.before_start(60, 700),
        )
        ctx.organizations.append(org)
        ctx.org_domains[slug] = words.replace("_", "") + ".com"
        ctx.writer.add(org)
    weights = [ctx.rng.paretovariate(1.2) for _ in ctx.organizations]
    total = 0.0
    for weight in weights:
        total += weight
        ctx.org_weights.append(total)


def agent_prompt(spec, planner):
    intro = catalog.AGENT_PROMPT_INTRO.format(display=spec["display"], role=spec["role"])
    given = catalog.AGENT_PROMPT_GIVEN.format()
    if planner:
        given += "\n" + catalog.AGENT_PROMPT_PLANNER.format()
    rules = "### Your responsibilities\n" + "\n".join(f"* {rule}" for rule in spec["rules"])
    return "\n\n".join([intro, given, rules, catalog.AGENT_PROMPT_OUTPUT])


def make_agent_templates(ctx):
    """Auto-Analyst's agents: individual and planner variants, some premium."""
    source = ctx.sources[AA]
    templates = []
    for spec in catalog.AGENT_TEMPLATES:
        if spec.get("variant") == "both":
            variants = ["both"]
        elif spec.get("individual_only"):
            variants = ["individual"]
        else:
            variants = ["individual", "planner"]
        created = ctx.clock.before_start(20, 240)
        for variant in variants:
            planner = variant == "planner"
            template = AgentTemplate(
                source=source,
                source_pk=ctx.pk(AA, "agent_templates"),
                template_name=f"planner_{spec['name']}" if planner else spec["name"],
                display_name=spec["display"] + (" (Planner)" if planner else ""),
                description=("Multi-agent planner variant: " if planner else "")
                + spec["description"],
                prompt_template=agent_prompt(spec, planner),
                icon_url=f"https://cdn.auto-analyst.example/icons/templates/{spec['name']}.svg",
                category=spec["category"],
                is_premium_only=spec["premium"],
                variant_type=variant,
                is_active=spec.get("active", True),
                created_at=created,
            )
            templates.append(ctx.writer.add(template))
    return templates


def make_performance_metrics(ctx):
    """text-to-sql performance_metrics: each metric sampled at regular times."""
    source = ctx.sources[TTS]
    total = ctx.count("perf_metrics")
    metrics = catalog.PERF_METRICS
    window = ctx.anchor - ctx.start
    for position, (name, unit, typical, spread) in enumerate(metrics):
        count = total // len(metrics) + (1 if position < total % len(metrics) else 0)
        step = window / max(count, 1)
        for index in range(count):
            when = ctx.start + step * (index + ctx.rng.uniform(0.1, 0.9))
            value = typical * ctx.rng.lognormvariate(0, spread)
            # busier hours: more users, slower queries
            value *= 0.7 + 0.6 * catalog.HOUR_WEIGHTS[when.hour] / max(catalog.HOUR_WEIGHTS)
            if unit == "%":
                value = min(value, 99.5)
            ctx.writer.add(
                PerformanceMetric(
                    source=source,
                    source_pk=ctx.pk(TTS, "performance_metrics"),
                    metric_name=name,
                    metric_value=round(value, 2),
                    metric_unit=unit,
                    timestamp=when,
                    additional_data={
                        "host": f"api-{ctx.rng.randint(1, 3)}",
                        "environment": "production",
                        "samples": ctx.rng.randint(20, 400),
                    },
                )
            )


CENT = Decimal("0.01")


def nice_limit(amount, rounding=ROUND_HALF_UP, digits=2):
    """A round monthly limit near ``amount``: ``digits`` significant digits,
    rounded as ``rounding`` says, in whole cents."""
    amount = Decimal(amount)
    if amount <= 0:
        return Decimal("0.00")
    quantum = Decimal(1).scaleb(amount.adjusted() - digits + 1)
    return max(amount.quantize(quantum, rounding=rounding), CENT).quantize(CENT)


# The smallest limit set but to be over it (a demo month's first days
# hold cents of spend).
SMALLEST_LIMIT = Decimal("0.10")


def limit_for(state, spent, projected, ratio):
    """A round limit that puts a budget with this month's ``spent`` and
    run-rate ``projected`` spend in ``state`` (usage.metrics.budget_state),
    or None when no limit can (over needs spend; at risk a projection above
    the spend and SMALLEST_LIMIT). ``ratio`` (> 1) says how far from the
    spend (over) or the projection (on track) the limit lies."""
    if state == BudgetState.OVER:
        limit = nice_limit(spent / ratio, ROUND_DOWN, 1) if spent > CENT else None
    elif state == BudgetState.AT_RISK:
        # Between the spend and the projection, the roundest that fits.
        middle = (max(spent, SMALLEST_LIMIT) * projected).sqrt()
        limit = next(
            (
                candidate
                for digits in (1, 2, 3)
                if max(spent, SMALLEST_LIMIT)
                <= (candidate := nice_limit(middle, ROUND_HALF_UP, digits))
                < projected
            ),
            None,
        )
    else:
        limit = max(nice_limit(projected * ratio, ROUND_UP), SMALLEST_LIMIT)
    if limit is not None and budget_state(spent, projected, limit) != state:
        return None
    return limit


# The states of successive budgets (by spend, costliest first): one
# organisation over, some at risk, the rest on track.
ORG_STATES = [
    BudgetState.OVER,
    BudgetState.AT_RISK,
    BudgetState.ON_TRACK,
    BudgetState.AT_RISK,
    BudgetState.ON_TRACK,
]
USER_STATES = [
    BudgetState.AT_RISK,
    BudgetState.ON_TRACK,
    BudgetState.ON_TRACK,
    BudgetState.AT_RISK,
    BudgetState.ON_TRACK,
]


def make_budgets(ctx, app_users, today=None):
    """Budgets for about half the organisations and a few app users, set
    from the month's spend in the roll-ups (run after they are built) and
    the pages' run-rate projection, so that on the day the demo is built
    one organisation is over its budget, some budgets are at risk and the
    rest on track (on the first of a month, before any spend, all are on
    track)."""
    today = today or timezone.localdate()
    by_org, by_user = metrics.month_spend(today)
    organizations = sorted(
        ctx.organizations, key=lambda org: (-by_org.get(org.pk, Decimal(0)), org.slug)
    )
    chosen_orgs = organizations[: max(1, round(len(organizations) / 2))]
    spenders = sorted(
        (user for user in app_users if by_user.get(user.pk, 0) > 0),
        key=lambda user: (-by_user[user.pk], user.pk),
    )
    # the top spenders, then every few others for variety
    wanted = ctx.count("user_budgets")
    chosen = spenders[: (wanted + 1) // 2] + spenders[(wanted + 1) // 2 :: 5]
    chosen_users = (chosen + [user for user in app_users if user not in chosen])[:wanted]
    for states, targets, key, spend in (
        (ORG_STATES, chosen_orgs, "organization", by_org),
        (USER_STATES, chosen_users, "user", by_user),
    ):
        for index, target in enumerate(targets):
            spent = spend.get(target.pk) or Decimal(0)
            projected = metrics.run_rate_projection(spent, today)
            ratio = Decimal(str(ctx.rng.choice([1.15, 1.3, 1.6, 2.2])))
            state = states[index % len(states)]
            limit = limit_for(state, spent, projected, ratio) or limit_for(
                BudgetState.ON_TRACK, spent, projected, ratio
            )
            ctx.writer.add(_budget(ctx, limit, **{key: target}))


def _budget(ctx, limit, **target):
    return Budget(
        monthly_limit=limit,
        alert_threshold=Decimal(ctx.rng.choice(["0.800", "0.800", "0.750", "0.900"])),
        created_at=ctx.anchor.replace(day=1) - timedelta(days=ctx.rng.randint(3, 80)),
        **target,
    )
