"""Keep the roll-ups in step with deletes the ledger sees as SET NULL.

Deleting an app user or an organisation sets ``user``/``organization`` to
NULL on their ledger rows; their roll-up figures move to the NULL key in the
same transaction (``usage.ledger.forget``), or a rebuild would give
different figures. And each new database connection learns whether the
ledger is partitioned.
"""

from django.db.backends.signals import connection_created
from django.db.models.signals import post_delete
from django.dispatch import receiver

from core.models import AppUser, Organization

from . import ledger


@receiver(post_delete, sender=AppUser, dispatch_uid="usage_rollups_forget_user")
def forget_user(sender, instance, **kwargs):
    ledger.forget("user_id", instance.pk)


@receiver(post_delete, sender=Organization, dispatch_uid="usage_rollups_forget_org")
def forget_organization(sender, instance, **kwargs):
    ledger.forget("organization_id", instance.pk)


@receiver(connection_created, dispatch_uid="usage_ledger_partitioned")
def read_ledger_kind(sender, connection, **kwargs):
    """Read once per new PostgreSQL connection whether the ledger is
    partitioned (usage.ledger.partitioned), before any query a page or a
    test counts."""
    if connection.vendor == "postgresql":
        ledger.set_partitioned(ledger.detect_partitioned(connection), connection)
