"""The chat list's filters a reviewer needs (chats/admin.py): app user,
organisation, source, recent period, feedback, low rating, mistakes and
failed code; each returns exactly the chats expected.
"""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from core.tests import factories as f

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:chats_chat_changelist")
TODAY = dt.date(2024, 3, 14)


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.fixture
def fixed_today(monkeypatch, settings):
    """timezone.localdate() (the recent-period filter's "today") answers TODAY."""
    settings.TIME_ZONE = "UTC"
    real = timezone.localdate

    def localdate(value=None, timezone=None):
        return TODAY if value is None else real(value, timezone)

    monkeypatch.setattr("django.utils.timezone.localdate", localdate)
    return TODAY


@pytest.fixture
def staff_client(client):
    client.force_login(f.UserFactory(groups=["Staff"]))
    return client


@pytest.fixture
def chats(fixed_today):
    """Six chats, each with its own mix of what the filters look at.

    a: ann/Acme/auto-analyst, today at 00:00, rated 5, a successful run
    b: bob/Globex/text-to-sql, 6 days back at 00:00, rated 1, a mistake, a failed run
    c: anonymous, no organisation, made here, 7 days back at 23:59:59, no feedback
    d: ann/Acme/text-to-sql, 20 days back, rated 2, a failed and a successful run
    e: bob/Globex/auto-analyst, 89 days back at 00:00, rated 3, a mistake
    g: cat/no organisation/auto-analyst, 90 days back at 23:59:59, a failed run with no message
    """
    acme = f.OrganizationFactory(name="Acme")
    globex = f.OrganizationFactory(name="Globex")
    aa = f.SourceFactory(name="auto-analyst")
    tts = f.SourceFactory(name="text-to-sql", kind="text_to_sql")
    ann = f.AppUserFactory(organization=acme)
    bob = f.AppUserFactory(organization=globex)
    cat = f.AppUserFactory(organization=None)

    def chat(name, user, org, source, when):
        return f.ChatFactory(
            title=f"chat {name}",
            user=user,
            organization=org,
            source=source,
            source_pk=f"chat-{name}" if source else "",
            created_at=when,
        )

    def answer(chat, rating=None, mistake=False, runs=()):
        msg = f.MessageFactory(chat=chat, role="assistant", is_mistake=mistake)
        if rating is not None:
            f.MessageFeedbackFactory(message=msg, rating=rating)
        for ok in runs:
            f.CodeExecutionFactory(message=msg, is_successful=ok)
        return msg

    a = chat("a", ann, acme, aa, utc(2024, 3, 14, 0, 0, 0))
    b = chat("b", bob, globex, tts, utc(2024, 3, 8, 0, 0, 0))
    c = chat("c", None, None, None, utc(2024, 3, 7, 23, 59, 59))
    d = chat("d", ann, acme, tts, utc(2024, 2, 23, 12))
    e = chat("e", bob, globex, aa, utc(2023, 12, 16, 0, 0, 0))
    g = chat("g", cat, None, aa, utc(2023, 12, 15, 23, 59, 59))

    answer(a, rating=5, runs=[True])
    answer(b, rating=1, mistake=True, runs=[False])
    answer(b)
    f.MessageFactory(chat=c, role="user")
    answer(d, rating=2, runs=[False, True])
    answer(e, rating=3, mistake=True)
    answer(g)
    f.CodeExecutionFactory(message=None, chat=g, user=cat, is_successful=False)
    return {
        "a": a,
        "b": b,
        "c": c,
        "d": d,
        "e": e,
        "g": g,
        "acme": acme,
        "globex": globex,
        "aa": aa,
        "tts": tts,
        "ann": ann,
        "bob": bob,
        "cat": cat,
    }


def listed(client, **params):
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200, response.get("Location")
    cl = response.context["cl"]
    return {chat.title.removeprefix("chat ") for chat in cl.result_list}


def pk(chats, name):
    return str(chats[name].pk)


def test_no_filter_lists_every_chat(staff_client, chats):
    assert listed(staff_client) == {"a", "b", "c", "d", "e", "g"}


def test_by_app_user(staff_client, chats):
    assert listed(staff_client, user__id__exact=pk(chats, "ann")) == {"a", "d"}
    assert listed(staff_client, user__id__exact=pk(chats, "bob")) == {"b", "e"}
    assert listed(staff_client, user__id__exact=pk(chats, "cat")) == {"g"}
    assert listed(staff_client, user__id__exact="987654") == set()


def test_by_organisation(staff_client, chats):
    assert listed(staff_client, organization__id__exact=pk(chats, "acme")) == {"a", "d"}
    assert listed(staff_client, organization__id__exact=pk(chats, "globex")) == {"b", "e"}
    assert listed(staff_client, organization__isnull="True") == {"c", "g"}


def test_by_source(staff_client, chats):
    assert listed(staff_client, source__id__exact=pk(chats, "aa")) == {"a", "e", "g"}
    assert listed(staff_client, source__id__exact=pk(chats, "tts")) == {"b", "d"}
    assert listed(staff_client, source__isnull="True") == {"c"}


@pytest.mark.parametrize(
    "period, expected",
    [
        ("today", {"a"}),
        ("7d", {"a", "b"}),  # from 8 March 00:00; c is a second before
        ("30d", {"a", "b", "c", "d"}),
        ("90d", {"a", "b", "c", "d", "e"}),  # from 16 December 00:00; g is a second before
    ],
)
def test_by_recent_period(staff_client, chats, period, expected):
    assert listed(staff_client, created_at_recent=period) == expected


def test_with_feedback(staff_client, chats):
    assert listed(staff_client, feedback="any") == {"a", "b", "d", "e"}


def test_with_a_low_rating(staff_client, chats):
    assert listed(staff_client, feedback="low") == {"b", "d"}


def test_with_and_without_a_mistake(staff_client, chats):
    assert listed(staff_client, has_mistake="yes") == {"b", "e"}
    assert listed(staff_client, has_mistake="no") == {"a", "c", "d", "g"}


def test_with_and_without_failed_code(staff_client, chats):
    assert listed(staff_client, failed_code="yes") == {"b", "d", "g"}
    assert listed(staff_client, failed_code="no") == {"a", "c", "e"}


def test_filters_combine(staff_client, chats):
    assert listed(staff_client, has_mistake="yes", failed_code="yes") == {"b"}
    assert listed(staff_client, feedback="low", organization__id__exact=pk(chats, "acme")) == {"d"}
    assert listed(staff_client, created_at_recent="30d", feedback="any", has_mistake="no") == {
        "a",
        "d",
    }


def test_the_filters_are_offered_with_their_choices(staff_client, chats):
    response = staff_client.get(CHANGELIST)

    specs = {spec.title: spec for spec in response.context["cl"].filter_specs}
    choices = {
        title: [c["display"] for c in spec.choices(response.context["cl"])]
        for title, spec in specs.items()
    }
    assert choices["flagged mistakes"] == ["All", "With a mistake", "Without"]
    assert choices["feedback"] == ["All", "With feedback", "With a low rating (1–2)"]
    assert choices["code executions"] == ["All", "With failed code", "Without failed code"]
    assert choices["created at"] == [
        "All",
        "Today",
        "Last 7 days",
        "Last 30 days",
        "Last 90 days",
    ]
    assert choices["organization"] == ["All", "Acme", "Globex", "-"]
    assert {"source"} <= set(choices)
    # The app user filter lists no users until one is chosen (a big table).
    chosen = staff_client.get(CHANGELIST, {"user__id__exact": pk(chats, "ann")})
    user_spec = next(
        s for s in chosen.context["cl"].filter_specs if getattr(s, "field_name", "") == "user"
    )
    assert [c["display"] for c in user_spec.choices(chosen.context["cl"])] == [
        "All",
        str(chats["ann"]),
    ]
    html = response.content.decode()
    assert 'href="?has_mistake=yes"' in html
    assert 'href="?feedback=low"' in html


def test_each_chat_links_to_its_transcript(staff_client, chats):
    html = staff_client.get(CHANGELIST, {"has_mistake": "yes"}).content.decode()

    for name in ("b", "e"):
        assert f'href="/admin/review/chats/{chats[name].pk}/"' in html
    assert f'href="/admin/review/chats/{chats["a"].pk}/"' not in html
