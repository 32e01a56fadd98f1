"""Huge ids in admin filters (#17.6): an id past 2^63 (OverflowError on
SQLite, out of range on PostgreSQL) or one that is not a number is refused
with a clear message and the list shown unfiltered, never a 500."""

import pytest
from django.urls import reverse

from . import factories as f

HUGE = str(2**64)


@pytest.fixture
def admin_client(client):
    client.force_login(f.UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("page", "parameter"),
    [
        ("admin:chats_message_changelist", "chat__id__exact"),
        ("admin:chats_chat_changelist", "user__id__exact"),
        ("admin:usage_modelusage_changelist", "chat__id__exact"),
        ("admin:usage_modelusage_changelist", "user__id__exact"),
    ],
)
@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "9223372036854775808", "12abc", "1e3"])
def test_an_out_of_range_or_malformed_id_in_a_filter_is_refused_with_a_message(
    admin_client, page, parameter, value
):
    chat = f.ChatFactory()
    f.MessageFactory(chat=chat)

    response = admin_client.get(reverse(page), {parameter: value}, follow=True)

    assert response.status_code == 200
    text = response.content.decode()
    assert f"“{value}” is not a valid id: the filter was ignored." in text


@pytest.mark.django_db
def test_the_largest_valid_id_still_filters(admin_client):
    f.MessageFactory()

    response = admin_client.get(
        reverse("admin:chats_message_changelist"), {"chat__id__exact": str(2**63 - 1)}
    )

    assert response.status_code == 200
    assert response.context["cl"].result_count == 0
    assert "is not a valid id" not in response.content.decode()
