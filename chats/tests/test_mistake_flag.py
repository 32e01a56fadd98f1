"""The mistake flag (POST /admin/review/messages/<pk>/mistake/): a reviewer
flags an assistant message with a note or clears it; who and when are kept,
every change is audited, and the chat list and the queue filter by it.
"""

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chats.models import Message
from core.models import AuditLog
from core.roles import STAFF
from core.tests import factories as f

from .test_rendering import parse_html

pytestmark = pytest.mark.django_db

AGENT = "Mozilla/5.0 (X11; Linux x86_64) Reviewer/1.0"
IP = "203.0.113.9"


def flag_url(msg):
    return reverse("review:flag_mistake", args=[msg.pk])


def transcript_at(msg):
    path = reverse("review:transcript", args=[msg.chat_id])
    return f"{path}?at={msg.pk}#message-{msg.pk}"


@pytest.fixture
def reviewer():
    return f.UserFactory(username="rita", groups=["Staff"])


@pytest.fixture
def staff_client(client, reviewer):
    client.force_login(reviewer)
    return client


@pytest.fixture
def answer():
    chat = f.ChatFactory(title="Churn by plan")
    f.MessageFactory(chat=chat, role="user", content="Why did churn rise?")
    msg = f.MessageFactory(chat=chat, role="assistant", content="Because of **prices**.")
    f.MessageFeedbackFactory(message=msg, rating=1)
    return msg


def flag_entries():
    """Audit entries about messages (logins are audited too)."""
    return AuditLog.objects.filter(resource_type="chats.message").order_by("id")


def post(client, msg, **data):
    return client.post(flag_url(msg), data, REMOTE_ADDR=IP, HTTP_USER_AGENT=AGENT)


def test_flag_with_a_note(staff_client, reviewer, answer):
    before = timezone.now()

    response = post(staff_client, answer, is_mistake="on", mistake_note="  Wrong plan names.  ")

    assert response.status_code == 302
    assert response["Location"] == transcript_at(answer)
    answer.refresh_from_db()
    assert answer.is_mistake is True
    assert answer.mistake_note == "Wrong plan names."
    assert answer.mistake_flagged_by == reviewer
    assert before <= answer.mistake_flagged_at <= timezone.now()
    entry = flag_entries().get()
    assert entry.actor == reviewer
    assert entry.action == "flag_mistake"
    assert (entry.resource_type, entry.resource_id) == ("chats.message", str(answer.pk))
    assert entry.old_values == {"is_mistake": False, "mistake_note": None}
    assert entry.new_values == {"is_mistake": True, "mistake_note": "Wrong plan names."}
    assert entry.ip_address == IP
    assert entry.user_agent == AGENT
    assert entry.success is True


def test_the_transcript_shows_the_flag(staff_client, reviewer, answer):
    post(staff_client, answer, is_mistake="on", mistake_note="Wrong plan names.")

    response = staff_client.get(transcript_at(answer).split("#")[0])

    li = parse_html(response.content).by_id(f"message-{answer.pk}")
    assert "mistake" in li.classes
    assert li.find("header").find("span", cls="mistake-chip").text == "Mistake"
    note = li.find("p", cls="mistake-note").squashed()
    when = timezone.localtime(Message.objects.get(pk=answer.pk).mistake_flagged_at)
    assert note == f"Mistake: Wrong plan names. — rita, {when:%-d %b %Y %H:%M}"
    form = li.find("form", cls="flag-form")
    assert "checked" in form.find("input", type="checkbox").attrs
    assert form.find("input", type="text").attrs["value"] == "Wrong plan names."
    messages = [m.message for m in response.context["messages"]]
    assert messages == ["Flagged as a mistake."]


def test_clear_the_flag(staff_client, reviewer, answer):
    post(staff_client, answer, is_mistake="on", mistake_note="Wrong plan names.")

    response = post(staff_client, answer, mistake_note="ignored when clearing")

    assert response.status_code == 302
    answer.refresh_from_db()
    assert answer.is_mistake is False
    assert answer.mistake_note is None
    assert answer.mistake_flagged_by is None
    assert answer.mistake_flagged_at is None
    entry = flag_entries().last()
    assert entry.action == "clear_mistake"
    assert entry.actor == reviewer
    assert entry.old_values == {"is_mistake": True, "mistake_note": "Wrong plan names."}
    assert entry.new_values == {"is_mistake": False, "mistake_note": None}
    assert list(flag_entries().values_list("action", flat=True)) == [
        "flag_mistake",
        "clear_mistake",
    ]
    li = parse_html(staff_client.get(transcript_at(answer).split("#")[0]).content).by_id(
        f"message-{answer.pk}"
    )
    assert "mistake" not in li.classes
    assert li.find_all("p", cls="mistake-note") == []


def test_reflagging_records_the_new_reviewer_and_note(client, answer):
    first, second = f.UserFactory(groups=["Staff"]), f.UserFactory(groups=["Managers"])
    client.force_login(first)
    post(client, answer, is_mistake="on", mistake_note="one")
    client.force_login(second)

    post(client, answer, is_mistake="on", mistake_note="two")

    answer.refresh_from_db()
    assert (answer.mistake_flagged_by, answer.mistake_note) == (second, "two")
    last = flag_entries().last()
    assert (last.actor, last.old_values, last.new_values) == (
        second,
        {"is_mistake": True, "mistake_note": "one"},
        {"is_mistake": True, "mistake_note": "two"},
    )


def test_flag_without_a_note(staff_client, answer):
    post(staff_client, answer, is_mistake="on", mistake_note="   ")

    answer.refresh_from_db()
    assert (answer.is_mistake, answer.mistake_note) == (True, None)


@pytest.mark.parametrize("role", ["user", "system"])
def test_only_assistant_messages_can_be_flagged(staff_client, role):
    msg = f.MessageFactory(role=role)

    response = post(staff_client, msg, is_mistake="on", mistake_note="x")

    assert response.status_code == 400
    msg.refresh_from_db()
    assert (msg.is_mistake, msg.mistake_note, msg.mistake_flagged_by) == (False, None, None)
    assert not flag_entries().exists()


def test_get_is_405(staff_client, answer):
    response = staff_client.get(flag_url(answer), {"is_mistake": "on"})

    assert response.status_code == 405
    answer.refresh_from_db()
    assert answer.is_mistake is False


def test_unknown_message_is_404(staff_client):
    response = staff_client.post(
        reverse("review:flag_mistake", args=[987654]), {"is_mistake": "on"}
    )

    assert response.status_code == 404


def test_staff_account_without_flag_permission_is_refused(client, answer):
    user = f.UserFactory()
    for dotted in STAFF:
        if dotted != "chats.flag_mistake":
            app_label, codename = dotted.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    client.force_login(user)

    response = post(client, answer, is_mistake="on", mistake_note="x")

    assert response.status_code == 403
    answer.refresh_from_db()
    assert (answer.is_mistake, answer.mistake_note, answer.mistake_flagged_at) == (
        False,
        None,
        None,
    )
    assert not flag_entries().exists()
    # ... and the transcript offers no flag form to that account.
    page = client.get(reverse("review:transcript", args=[answer.chat_id]))
    assert page.status_code == 200
    assert parse_html(page.content).find_all("form", cls="flag-form") == []


def test_anonymous_is_sent_to_the_login_page(client, answer):
    response = post(client, answer, is_mistake="on")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    answer.refresh_from_db()
    assert answer.is_mistake is False


def test_csrf_is_enforced(reviewer, answer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer)

    refused = post(client, answer, is_mistake="on", mistake_note="x")

    assert refused.status_code == 403
    answer.refresh_from_db()
    assert answer.is_mistake is False
    assert not flag_entries().exists()

    # With the token of the transcript's form it goes through.
    page = client.get(reverse("review:transcript", args=[answer.chat_id])).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    accepted = post(client, answer, is_mistake="on", mistake_note="x", csrfmiddlewaretoken=token)
    assert accepted.status_code == 302
    answer.refresh_from_db()
    assert answer.is_mistake is True


# the chat list and the queue filter by it ----------------------------------------


def test_chat_list_and_queue_filter_by_the_flag(staff_client, answer):
    clean_chat = f.ChatFactory(title="All fine")
    clean = f.MessageFactory(chat=clean_chat, role="assistant", created_at=timezone.now())
    f.MessageFeedbackFactory(message=clean, rating=1)
    changelist = reverse("admin:chats_chat_changelist")
    queue = reverse("review:feedback_queue")
    assert staff_client.get(changelist, {"has_mistake": "yes"}).context["cl"].result_count == 0

    post(staff_client, answer, is_mistake="on", mistake_note="Wrong plan names.")

    flagged = staff_client.get(changelist, {"has_mistake": "yes"})
    assert [c.pk for c in flagged.context["cl"].result_list] == [answer.chat_id]
    assert "Churn by plan" in flagged.content.decode()
    unflagged = staff_client.get(changelist, {"has_mistake": "no"})
    assert [c.pk for c in unflagged.context["cl"].result_list] == [clean_chat.pk]
    rows = staff_client.get(queue, {"mistake": "true"}).context["rows"]
    assert [fb.message_id for fb, _ in rows] == [answer.pk]
    rows = staff_client.get(queue, {"mistake": "false"}).context["rows"]
    assert [fb.message_id for fb, _ in rows] == [clean.pk]

    post(staff_client, answer)  # cleared

    assert staff_client.get(changelist, {"has_mistake": "yes"}).context["cl"].result_count == 0
    assert staff_client.get(queue, {"mistake": "true"}).context["rows"] == []


def test_flagged_at_is_now_not_the_message_time(staff_client):
    old = f.MessageFactory(role="assistant", created_at=timezone.now() - dt.timedelta(days=400))

    post(staff_client, old, is_mistake="on")

    old.refresh_from_db()
    assert timezone.now() - old.mistake_flagged_at < dt.timedelta(minutes=1)
