"""Moving a message to another chat in the admin keeps both chats' message
counts (and last message times) right (#17.8); so do adding and deleting."""

import datetime as dt

import pytest
from django.forms import MultiWidget
from django.urls import reverse

from chats.models import Chat, Message
from core.tests import factories as f

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def admin_client(client):
    client.force_login(f.UserFactory(is_staff=True, is_superuser=True))
    return client


def form_data(admin_client, url):
    """The change form's data as a browser would post it, unchanged."""
    context = admin_client.get(url).context
    form = context["adminform"].form
    data = {}
    for inline in context["inline_admin_formsets"]:  # read-only inlines: no rows
        prefix = inline.formset.prefix
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field.widget, MultiWidget):
            parts = value if isinstance(value, list) else field.widget.decompress(value)
            data.update({f"{name}_{n}": "" if v is None else str(v) for n, v in enumerate(parts)})
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = str(value)
    return data


def chats_with_messages():
    old = f.ChatFactory(title="old")
    new = f.ChatFactory(title="new")
    for n in range(3):
        f.MessageFactory(chat=old, created_at=T0 + dt.timedelta(minutes=n))
    f.MessageFactory(chat=new, created_at=T0 - dt.timedelta(days=1))
    Chat.objects.filter(pk=old.pk).update(message_count=3, last_message_at=T0 + dt.timedelta(2))
    Chat.objects.filter(pk=new.pk).update(message_count=1, last_message_at=T0 - dt.timedelta(1))
    return old, new


def summary(chat):
    chat.refresh_from_db()
    return chat.message_count, chat.last_message_at


def test_moving_a_message_to_another_chat_updates_both_counts(admin_client):
    old, new = chats_with_messages()
    moved = Message.objects.filter(chat=old).latest("created_at")
    url = reverse("admin:chats_message_change", args=[moved.pk])
    data = {**form_data(admin_client, url), "chat": str(new.pk)}

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Message.objects.get(pk=moved.pk).chat_id == new.pk
    assert summary(old) == (2, T0 + dt.timedelta(minutes=1))
    assert summary(new) == (2, T0 + dt.timedelta(minutes=2))
    # The same figures computed another way: counted from the messages.
    for chat in (old, new):
        assert chat.message_count == Message.objects.filter(chat=chat).count()


def test_an_edit_that_keeps_the_chat_leaves_the_counts_alone(admin_client):
    old, new = chats_with_messages()
    message = Message.objects.filter(chat=old).first()
    url = reverse("admin:chats_message_change", args=[message.pk])

    response = admin_client.post(url, {**form_data(admin_client, url), "content": "edited"})

    assert response.status_code == 302
    assert summary(old)[0] == 3
    assert summary(new)[0] == 1


def test_deleting_messages_in_the_admin_updates_their_chats(admin_client):
    old, new = chats_with_messages()
    doomed = list(Message.objects.filter(chat=old).values_list("pk", flat=True)[:2])
    doomed.append(Message.objects.get(chat=new).pk)

    response = admin_client.post(
        reverse("admin:chats_message_changelist"),
        {"action": "delete_selected", "_selected_action": doomed, "post": "yes"},
    )

    assert response.status_code == 302
    assert summary(old)[0] == 1
    assert summary(new) == (0, None)
