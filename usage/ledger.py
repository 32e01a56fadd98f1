"""The one write path into the usage ledger.

Importers, the ingest API and demo data add ledger rows through ``add_usage``
so every row is priced, carries its organisation, and is counted in the
roll-up in the same transaction.
"""

from decimal import Decimal

from django.db import transaction

from chats.models import Chat
from core.models import AppUser

from . import rollups
from .models import ModelUsage
from .pricing import COST_QUANTUM, PriceBook


def fill_organizations(usages):
    """Set ``organization_id`` from the row's app user, else its chat."""
    missing = [u for u in usages if u.organization_id is None]
    user_ids = {u.user_id for u in missing if u.user_id}
    chat_ids = {u.chat_id for u in missing if u.chat_id and not u.user_id}
    user_orgs = dict(
        AppUser.objects.filter(pk__in=user_ids, organization__isnull=False).values_list(
            "pk", "organization_id"
        )
    )
    chat_orgs = dict(
        Chat.objects.filter(pk__in=chat_ids, organization__isnull=False).values_list(
            "pk", "organization_id"
        )
    )
    for usage in missing:
        usage.organization_id = user_orgs.get(usage.user_id) or chat_orgs.get(usage.chat_id)


def prepare(usages, price_book=None):
    """Price, total and attribute unsaved ledger rows in place."""
    price_book = price_book or PriceBook()
    for usage in usages:
        if not usage.total_tokens:
            usage.total_tokens = (usage.prompt_tokens or 0) + (usage.completion_tokens or 0)
        price_book.price_row(usage)
        if usage.cost is not None:
            # As stored (8 places), so a re-sent row compares equal.
            usage.cost = Decimal(usage.cost).quantize(COST_QUANTUM)
    fill_organizations(usages)
    return usages


def add_usage(usages, price_book=None, batch_size=2000):
    """Insert new ledger rows and their roll-up deltas atomically.

    A row whose source reported no cost has ``cost=None`` and
    ``cost_source=COMPUTED`` (or any non-REPORTED value) on the way in.
    Returns the saved rows.
    """
    usages = list(usages)
    with transaction.atomic():
        prepare(usages, price_book)
        saved = ModelUsage.objects.bulk_create(usages, batch_size=batch_size)
        rollups.record(saved)
    return saved


# Fields a source may change on a ledger row it sent before.
UPDATABLE = (
    "user_id",
    "chat_id",
    "organization_id",
    "model_name",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "query_size",
    "response_size",
    "cost",
    "cost_source",
    "timestamp",
    "is_streaming",
    "request_time_ms",
)


def upsert_usage(source, usages, price_book=None, batch_size=2000):
    """Insert or update ledger rows of one source by their ``source_pk``.

    Idempotent: a row sent again unchanged is left alone; a changed one is
    updated and the roll-up moved by the difference. Returns a dict with
    the ``created``, ``updated`` and ``unchanged`` rows (lists).
    """
    usages = list(usages)
    for usage in usages:
        usage.source = source
    with transaction.atomic():
        prepare(usages, price_book)
        existing = {
            row.source_pk: row
            for row in ModelUsage.objects.filter(
                source=source, source_pk__in=[u.source_pk for u in usages]
            )
        }
        new, changed, unchanged, before = [], [], [], []
        for usage in usages:
            old = existing.get(usage.source_pk)
            if old is None:
                new.append(usage)
            elif any(getattr(old, f) != getattr(usage, f) for f in UPDATABLE):
                before.append(
                    ModelUsage(**{f: getattr(old, f) for f in UPDATABLE}, source_id=old.source_id)
                )
                for field in UPDATABLE:
                    setattr(old, field, getattr(usage, field))
                changed.append(old)
            else:
                unchanged.append(old)
        created = ModelUsage.objects.bulk_create(new, batch_size=batch_size)
        if changed:
            ModelUsage.objects.bulk_update(changed, UPDATABLE, batch_size=batch_size)
            rollups.record(before, sign=-1)
            rollups.record(changed)
        rollups.record(created)
    return {"created": created, "updated": changed, "unchanged": unchanged}
