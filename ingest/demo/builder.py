"""The demo data set: ``build_demo`` fills an empty database in one transaction.

Phases run in a fixed order from one seeded RNG, so the same seed, scale,
window and anchor day always give the same rows (auto ids aside).
"""

import sys
from datetime import UTC

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from chats import queues
from chats.models import Chat, Message
from core import template_history
from core.models import AgentTemplate, AppUser, Organization, QueryTemplate, SystemConfig
from usage import ledger
from usage.models import ModelPrice, ModelUsage

from . import ai_chat_v2, auto_analyst, deep_analysis, ds_ml_agent, reference, text_to_sql
from .context import Context

# seed_demo refuses to run while any of these holds a row: the demo would mix
# with real data or collide with its unique names and keys.
GUARDED = [
    AppUser,
    Chat,
    Message,
    ModelUsage,
    Organization,
    AgentTemplate,
    SystemConfig,
    ModelPrice,
]
DEMO_APPS = ("core", "chats", "usage", "reports")


class DatabaseNotEmpty(Exception):
    """The database already holds data that the demo would mix with."""


def existing_data():
    """{model label: row count} of the guarded models that hold rows."""
    found = {}
    for model in GUARDED:
        count = model.objects.count()
        if count:
            found[model._meta.verbose_name_plural] = count
    return found


def start_of_today():
    """The anchor of all demo times: the start of the current UTC day."""
    now = timezone.now().astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def tqdm_progress(enabled=True, stream=None):
    """A progress-bar factory ``(total, description) -> bar`` writing to
    ``stream`` (stderr by default)."""

    def progress(total, description, unit="step"):
        return tqdm(
            total=total,
            desc=f"{description:<26}",
            unit=f" {unit}",
            file=stream or sys.stderr,
            disable=not enabled,
            leave=True,
            dynamic_ncols=True,
        )

    return progress


def build_demo(*, seed=42, scale=1.0, days=90, anchor=None, progress=None):
    """Fill an empty database; returns [(model label, rows created)].

    Raises DatabaseNotEmpty (and writes nothing) if it already holds data.
    """
    with transaction.atomic():
        found = existing_data()
        if found:
            listed = ", ".join(f"{count} {label}" for label, count in found.items())
            raise DatabaseNotEmpty(
                f"The database already holds data ({listed}); seed_demo only fills an "
                "empty database. Use a fresh database (or flush this one) and run it again."
            )
        before = count_rows()
        ctx = Context(
            seed=seed,
            scale=scale,
            days=days,
            anchor=anchor or start_of_today(),
            progress=progress or tqdm_progress(),
        )
        run_phases(ctx)
        after = count_rows()
    return [(label, rows - before[label]) for label, rows in after.items()]


def run_phases(ctx):
    """Every phase, in the fixed order that makes the data reproducible."""
    templates = reference_phase(ctx)
    aa_users, aa_profiles, ds_users, tts_accounts, aic_members = users_phase(ctx)
    auto_analyst.make_preferences(ctx, aa_users, templates)
    auto_analyst.make_chats(ctx, aa_users, aa_profiles)
    deep_analysis.make_reports(ctx, aa_users, aa_profiles)
    ctx.writer.flush()
    ds_ml_agent.make_sessions(ctx, ds_users)
    text_to_sql.make_account_activity(ctx, tts_accounts)
    text_to_sql.make_chats(ctx, tts_accounts)
    ai_chat_v2.make_chats(ctx, aic_members)
    users = (
        aa_users
        + ds_users
        + [account.user for account in tts_accounts]
        + [member.user for member in aic_members]
    )
    final_phase(ctx, tts_accounts, users)


def reference_phase(ctx):
    """Sources, prices, organisations and agent templates (returned, saved)."""
    with ctx.progress(5, "reference data") as bar:
        reference.make_sources(ctx)
        bar.update()
        reference.make_prices(ctx)
        bar.update()
        reference.make_organizations(ctx)
        bar.update()
        templates = reference.make_agent_templates(ctx)
        bar.update()
        ctx.writer.flush()
        bar.update()
    return templates


def users_phase(ctx):
    """The app users of the four applications, saved."""
    with ctx.progress(4, "app users") as bar:
        aa_users, aa_profiles = auto_analyst.make_users(ctx)
        bar.update()
        ds_users = ds_ml_agent.make_users(ctx)
        bar.update()
        tts_accounts = text_to_sql.make_users(ctx)
        bar.update()
        aic_members = ai_chat_v2.make_users(ctx)
        ctx.writer.flush()
        bar.update()
    return aa_users, aa_profiles, ds_users, tts_accounts, aic_members


def final_phase(ctx, tts_accounts, users):
    """Settings and metrics, user totals, budgets, then the usage roll-ups."""
    with ctx.progress(5, "settings, budgets, roll-up") as bar:
        text_to_sql.make_query_templates(ctx, tts_accounts)
        text_to_sql.make_system_config(ctx, tts_accounts)
        text_to_sql.make_schemas(ctx)
        reference.make_performance_metrics(ctx)
        ctx.writer.flush()
        bar.update()
        text_to_sql.finish_users(ctx, tts_accounts)
        bar.update()
        bar.update()
        ledger.rebuild()
        # Budgets are set from the month's spend in the roll-ups.
        reference.make_budgets(ctx, users)
        ctx.writer.flush()
        # Staff find review queues filled from the demo chats' own signals;
        # the reviews themselves come from staff accounts (demo_logins).
        queues.demo_queues()
        # Every shipped template starts its history with the state it has.
        for model in (AgentTemplate, QueryTemplate):
            template_history.record_versions(
                model.objects.order_by("pk"), template_history.Action.BASELINE
            )
        bar.update(2)


def count_rows():
    """{label: rows} of every model of the four apps but staff accounts."""
    staff = apps.get_model(settings.AUTH_USER_MODEL)
    return {
        model._meta.label: model._default_manager.count()
        for label in DEMO_APPS
        for model in apps.get_app_config(label).get_models()
        if model is not staff
    }
