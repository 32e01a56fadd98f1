"""Keep the roll-ups in step with deletes the ledger sees as SET NULL.

Deleting an app user or an organisation sets ``user``/``organization`` to
NULL on their ledger rows; their roll-up rows must follow in the same
transaction, or a rebuild would give different figures.
"""

from django.db.models.signals import post_delete
from django.dispatch import receiver

from core.models import AppUser, Organization

from .rollups import LATENCY_MODELS, USAGE_MODELS


def _with_field(name):
    return [
        m for m in (*USAGE_MODELS, *LATENCY_MODELS) if any(f.name == name for f in m._meta.fields)
    ]


@receiver(post_delete, sender=AppUser, dispatch_uid="usage_rollups_forget_user")
def forget_user(sender, instance, **kwargs):
    for model in _with_field("user"):
        model.objects.filter(user_id=instance.pk).update(user_id=None)


@receiver(post_delete, sender=Organization, dispatch_uid="usage_rollups_forget_org")
def forget_organization(sender, instance, **kwargs):
    for model in _with_field("organization"):
        model.objects.filter(organization_id=instance.pk).update(organization_id=None)
