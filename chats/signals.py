"""Review queues fill themselves as rows arrive (#19).

A saved message, rating or code execution, one by one (post_save) or in
bulk (the importers and the ingest API write with ``bulk_create`` and
``bulk_update``, which send no signal: the three models' managers are
wrapped to report the rows they wrote), schedules
``queues.fill_for_messages`` for when the transaction commits.
"""

from functools import wraps

from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from core.models import Organization

from . import feedback_rollups, queues, rollups
from .models import Chat, CodeExecution, Message, MessageFeedback


def _message_ids(model, objs):
    if model is Message:
        return [obj.pk for obj in objs]
    return [obj.message_id for obj in objs]


@receiver(post_save, sender=Message, dispatch_uid="chats_queue_message")
@receiver(post_save, sender=MessageFeedback, dispatch_uid="chats_queue_feedback")
@receiver(post_save, sender=CodeExecution, dispatch_uid="chats_queue_execution")
def row_saved(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw:  # loaddata
        return
    if (
        sender is Message
        and update_fields
        and set(update_fields)
        <= {
            "is_mistake",
            "mistake_note",
            "mistake_flagged_by",
            "mistake_flagged_at",
        }
    ):
        return  # a reviewer's flag: no rule takes a message for that
    queues.schedule_fill(_message_ids(sender, [instance]))


# The roll-ups (chats.rollups, chats.feedback_rollups) under Django's
# deletes: the collector (a delete of executions, ratings or messages, or of
# the chats and app users they cascade from) sends pre_delete for every row
# before it deletes anything, and post_delete after each model's rows; an
# organisation deleted sets its chats' organisation to NULL in between.


@receiver(pre_delete, sender=CodeExecution, dispatch_uid="chats_rollup_execution_deleting")
def execution_deleting(sender, instance, using="default", **kwargs):
    rollups.pend(
        {rollups.key_of(instance.source_id, instance.created_at)},
        using,
        messages=[instance.message_id],
    )


@receiver(pre_delete, sender=Message, dispatch_uid="chats_rollup_message_deleting")
def message_deleting(sender, instance, using="default", **kwargs):
    rollups.pend(using=using, feedback={rollups.key_of(instance.source_id, instance.created_at)})


@receiver(pre_delete, sender=MessageFeedback, dispatch_uid="chats_rollup_feedback_deleting")
def feedback_deleting(sender, instance, using="default", **kwargs):
    rollups.pend(
        using=using,
        feedback={rollups.key_of(instance.source_id, instance.created_at)},
        messages=[instance.message_id],
    )


@receiver(pre_delete, sender=Organization, dispatch_uid="chats_rollup_org_deleting")
def organization_deleting(sender, instance, using="default", **kwargs):
    rollups.change_chats(using)  # its chats' organisation is set to NULL
    chats = list(
        Chat._base_manager.using(using)
        .filter(organization_id=instance.pk)
        .values_list("pk", flat=True)
    )
    rollups.pend(
        rollups.keys_of_chats(chats, using),
        using,
        feedback=feedback_rollups.keys_of_chats(chats, using),
    )


@receiver(post_delete, sender=CodeExecution, dispatch_uid="chats_rollup_execution_deleted")
@receiver(post_delete, sender=Message, dispatch_uid="chats_rollup_message_deleted")
@receiver(post_delete, sender=MessageFeedback, dispatch_uid="chats_rollup_feedback_deleted")
@receiver(post_delete, sender=Organization, dispatch_uid="chats_rollup_org_deleted")
def rollup_rows_deleted(sender, instance, using="default", **kwargs):
    rollups.flush(using, sender)


def _wrap(manager, name, model):
    original = getattr(manager, name)
    if getattr(original, "_fills_review_queues", False):
        return

    @wraps(original)
    def written(objs, *args, **kwargs):
        objs = list(objs)
        result = original(objs, *args, **kwargs)
        queues.schedule_fill(_message_ids(model, objs))
        return result

    written._fills_review_queues = True
    setattr(manager, name, written)


def watch_bulk_writes():
    """Wrap bulk_create/bulk_update of the models' managers (called once,
    from ChatsConfig.ready)."""
    for model in (Message, MessageFeedback, CodeExecution):
        for manager in {model._default_manager, model._base_manager, *model._meta.managers}:
            for name in ("bulk_create", "bulk_update"):
                _wrap(manager, name, model)
