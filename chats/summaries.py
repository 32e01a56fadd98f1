"""A chat's summary columns (message_count, last_message_at), recomputed
from its messages.

The ingest API refreshes them after every batch of chats; the admin does
after a message is added, moved to another chat or deleted, for the chats on
both sides of the move.
"""

from django.db.models import Count, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce

from .models import Chat, Message


def refresh_chat_summaries(chat_pks):
    """Set message_count and last_message_at of these chats from their messages."""
    chat_pks = {pk for pk in chat_pks if pk is not None}
    if not chat_pks:
        return 0
    messages = Message.objects.filter(chat=OuterRef("pk")).order_by().values("chat")
    return Chat.objects.filter(pk__in=chat_pks).update(
        last_message_at=Subquery(messages.annotate(last=Max("created_at")).values("last")),
        message_count=Coalesce(Subquery(messages.annotate(n=Count("pk")).values("n")), 0),
    )
