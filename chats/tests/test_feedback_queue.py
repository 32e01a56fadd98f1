"""The feedback queue (/admin/review/feedback/): every rated message, lowest
rating first, filtered in the URL, each row opening the transcript at its
message; a fixed number of queries whatever the number of rows.
"""

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from chats.models import MessageFeedback
from core.roles import STAFF
from core.tests import factories as f

from .test_rendering import parse_html

pytestmark = pytest.mark.django_db

QUEUE = "/admin/review/feedback/"


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.fixture
def staff_client(client):
    client.force_login(f.UserFactory(groups=["Staff"]))
    return client


@pytest.fixture
def world():
    """Rated messages over two organisations, two sources, three models and
    four providers, a tie on time, two mistakes and an unrated row."""
    acme = f.OrganizationFactory(name="Acme")
    globex = f.OrganizationFactory(name="Globex")
    aa = f.SourceFactory(name="auto-analyst")
    tts = f.SourceFactory(name="text-to-sql", kind="text_to_sql")
    ann = f.AppUserFactory(organization=acme, email="ann@acme.test")
    bob = f.AppUserFactory(organization=globex, email="bob@globex.test")
    c_ann = f.ChatFactory(user=ann, organization=acme, source=aa, source_pk="c1")
    c_bob = f.ChatFactory(user=bob, organization=globex, source=tts, source_pk="c2")
    c_anon = f.ChatFactory(user=None, organization=None)

    def rated(name, chat, rating, model, provider, when, source=None, mistake=False):
        msg = f.MessageFactory(
            chat=chat,
            role="assistant",
            content=f"answer {name}",
            created_at=when,
            is_mistake=mistake,
        )
        return f.MessageFeedbackFactory(
            message=msg,
            rating=rating,
            model_name=model,
            model_provider=provider,
            created_at=when,
            source=source,
            source_pk=f"fb-{name}" if source else "",
        )

    rows = {
        "f1": rated("f1", c_ann, 1, "gpt-4o", "openai", utc(2024, 3, 10, 9), aa, mistake=True),
        "f2": rated(
            "f2", c_bob, 1, "claude-3-5-sonnet", "anthropic", utc(2024, 3, 12, 23, 59, 59), tts
        ),
        "f3": rated("f3", c_ann, 3, "gpt-4o-mini", "openai", utc(2024, 3, 13, 0, 0, 0), aa),
        "f4": rated("f4", c_anon, 5, "gpt-4o", "openai", utc(2024, 3, 1, 12)),
        "f5": rated("f5", c_bob, 2, "gpt-4o", "azure", utc(2024, 3, 11, 8), tts, mistake=True),
        "f6": rated("f6", c_ann, None, "gpt-4o", "openai", utc(2024, 3, 12, 8), aa),  # unrated
        # same time as f1, made after it: shown before it (newest id first)
        "f7": rated("f7", c_ann, 1, "gpt-4o", "groq", utc(2024, 3, 10, 9)),
    }
    return {
        **rows,
        "acme": acme,
        "globex": globex,
        "aa": aa,
        "tts": tts,
        "ann": ann,
        "bob": bob,
    }


def shown(response):
    """Feedback rows of the page, in order, as their message ids."""
    rows = parse_html(response.content).find("table", cls="queue").find("tbody").find_all("tr")
    return [
        int(tr.find("a").attrs["href"].rsplit("#message-", 1)[1]) for tr in rows if tr.find_all("a")
    ]


def names(world, response):
    by_message = {
        world[key].message_id: key for key in world if key.startswith("f") and key[1:].isdigit()
    }
    return [by_message[pk] for pk in shown(response)]


def test_every_rated_message_lowest_rating_first(staff_client, world):
    response = staff_client.get(QUEUE)

    assert response.status_code == 200
    assert names(world, response) == ["f2", "f7", "f1", "f5", "f3", "f4"]  # no f6: unrated
    assert response.context["page_obj"].paginator.count == 6


def test_a_row_shows_rating_message_model_user_organisation_source_and_time(staff_client, world):
    response = staff_client.get(QUEUE)

    root = parse_html(response.content)
    first, second, third = root.find("table", cls="queue").find("tbody").find_all("tr")[:3]
    assert [td.squashed() for td in first.find_all("td")] == [
        "★☆☆☆☆",
        "answer f2",
        "claude-3-5-sonnet",
        "bob@globex.test",
        "Globex",
        "text-to-sql",
        "12 Mar 2024 23:59",
    ]
    assert first.classes == ["rating-1"]
    assert [td.squashed() for td in third.find_all("td")][1:] == [
        "answer f1 Mistake",
        "gpt-4o",
        "ann@acme.test",
        "Acme",
        "auto-analyst",
        "10 Mar 2024 09:00",
    ]
    assert third.classes == ["rating-1", "mistake"]
    assert third.find("span", cls="mistake-chip").text == "Mistake"
    anon = root.find("table", cls="queue").find("tbody").find_all("tr")[-1]
    assert [td.squashed() for td in anon.find_all("td")][:6] == [
        "★★★★★",
        "answer f4",
        "gpt-4o",
        "anonymous",
        "–",
        "–",
    ]


def test_each_row_opens_the_transcript_at_its_message(staff_client, world):
    response = staff_client.get(QUEUE)

    rows = parse_html(response.content).find("table", cls="queue").find("tbody").find_all("tr")
    links = [tr.find("a").attrs["href"] for tr in rows]
    expected = []
    for key in ["f2", "f7", "f1", "f5", "f3", "f4"]:
        msg = world[key].message
        expected.append(f"/admin/review/chats/{msg.chat_id}/?at={msg.pk}#message-{msg.pk}")
    assert links == expected

    opened = staff_client.get(links[0].split("#")[0])

    assert opened.status_code == 200
    assert f'id="message-{world["f2"].message_id}"' in opened.content.decode()


def _filter(world, spec):
    """A query string from a spec whose {name} parts are the world's pks."""
    return spec.format(**{key: getattr(value, "pk", value) for key, value in world.items()})


@pytest.mark.parametrize(
    "query, expected",
    [
        ("rating=1", ["f2", "f7", "f1"]),
        ("rating=2", ["f5"]),
        ("rating=5", ["f4"]),
        ("rating=4", []),
        ("model=gpt-4o", ["f7", "f1", "f5", "f4"]),
        ("model=gpt-4o-mini", ["f3"]),
        ("provider=anthropic", ["f2"]),
        ("provider=openai", ["f1", "f3", "f4"]),
        ("provider=azure", ["f5"]),
        ("organization={acme}", ["f7", "f1", "f3"]),
        ("organization={globex}", ["f2", "f5"]),
        ("user={bob}", ["f2", "f5"]),
        ("user={ann}", ["f7", "f1", "f3"]),
        ("source={aa}", ["f1", "f3"]),
        ("source={tts}", ["f2", "f5"]),
        ("start=2024-03-11&end=2024-03-12", ["f2", "f5"]),
        ("start=2024-03-13", ["f3"]),
        ("end=2024-03-01", ["f4"]),
        ("start=2024-03-10&end=2024-03-10", ["f7", "f1"]),
        ("mistake=true", ["f1", "f5"]),
        ("mistake=false", ["f2", "f7", "f3", "f4"]),
        ("mistake=", ["f2", "f7", "f1", "f5", "f3", "f4"]),
        ("organization={acme}&rating=1&mistake=false", ["f7"]),
        ("model=gpt-4o&provider=openai&start=2024-03-05", ["f1"]),
    ],
)
def test_filters_narrow(staff_client, world, query, expected):
    response = staff_client.get(f"{QUEUE}?{_filter(world, query)}")

    assert response.status_code == 200
    assert names(world, response) == expected


@pytest.mark.parametrize(
    "query",
    [
        "rating=9",
        "rating=x",
        "organization=abc",
        "organization=99999999999999999999",
        "user=abc",
        "user=1.5",  # not "user 1"
        "user=1e30",
        "user=0",
        "user=99999999999999999999",  # beyond SQLite's integers: was a 500
        "start=yesterday",
        "end=2024-02-30",
        "page=x",
    ],
)
def test_bad_filter_values_show_errors_not_failures(staff_client, world, query):
    response = staff_client.get(f"{QUEUE}?{query}")

    assert response.status_code == 200
    assert names(world, response) == ["f2", "f7", "f1", "f5", "f3", "f4"]
    if not query.startswith("page"):
        assert parse_html(response.content).find("ul", cls="errorlist").find_all("li")


def test_the_filter_form_keeps_what_was_chosen(staff_client, world):
    response = staff_client.get(f"{QUEUE}?rating=2&model=gpt-4o&mistake=true")

    form = parse_html(response.content).find("form", cls="filter-bar")
    rating = form.find("select", name="rating")
    assert [o.attrs["value"] for o in rating.find_all("option") if "selected" in o.attrs] == ["2"]
    assert form.find("input", name="model").attrs["value"] == "gpt-4o"
    assert [o.text for o in rating.find_all("option")] == ["Any", "★", "★★", "★★★", "★★★★", "★★★★★"]
    organisation = form.find("select", name="organization")
    assert [o.text for o in organisation.find_all("option")] == ["Any", "Acme", "Globex"]
    source = form.find("select", name="source")
    assert [o.text for o in source.find_all("option")] == ["Any", "auto-analyst", "text-to-sql"]
    mistake = form.find("select", name="mistake")
    assert [o.attrs["value"] for o in mistake.find_all("option") if "selected" in o.attrs] == [
        "true"
    ]


def _many(count):
    chat = f.ChatFactory(organization=f.OrganizationFactory(), source=f.SourceFactory())
    for n in range(count):
        f.MessageFeedbackFactory(
            message=f.MessageFactory(chat=chat, role="assistant"),
            rating=1 + n % 5,
            source=chat.source,
            source_pk=f"many-{n}",
        )


@pytest.mark.parametrize("count", [2, 60])
@pytest.mark.parametrize("query", ["", "?rating=1&mistake=false&model=gpt-4o-mini"])
def test_query_count_is_fixed_whatever_the_rows(
    staff_client, django_assert_num_queries, count, query
):
    _many(count)

    # session, staff account, its user permissions, its group permissions;
    # the count of matching rows; the page of rows (message, chat, app user,
    # organisation and source joined); the organisation and source choices
    with django_assert_num_queries(8):
        response = staff_client.get(f"{QUEUE}{query}")

    assert response.status_code == 200
    expected = min(count, 50) if not query else (count + 4) // 5
    assert len(shown(response)) == expected


def test_pages_of_fifty_keep_the_filters(staff_client):
    _many(130)

    first = staff_client.get(f"{QUEUE}?model=gpt-4o-mini")
    last = staff_client.get(f"{QUEUE}?model=gpt-4o-mini&page=3")

    assert len(shown(first)) == 50
    pager = parse_html(first.content).find("nav", cls="pager")
    assert pager.squashed().startswith("130 rated messages · page 1 of 3")
    assert [a.attrs["href"] for a in pager.find_all("a")] == ["?model=gpt-4o-mini&page=2"]
    assert len(shown(last)) == 30
    # 26 of each rating: page 3 holds the last 4 fours and the 26 fives.
    rating = dict(MessageFeedback.objects.values_list("message_id", "rating"))
    assert [rating[pk] for pk in shown(last)] == [4] * 4 + [5] * 26


# access --------------------------------------------------------------------


@pytest.mark.parametrize("group", ["Staff", "Managers", "Admins"])
def test_every_role_works_the_queue(client, world, group):
    client.force_login(f.UserFactory(groups=[group]))

    assert client.get(QUEUE).status_code == 200


def test_anonymous_is_sent_to_the_login_page(client, world):
    response = client.get(QUEUE)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={QUEUE}"


def test_staff_account_without_view_messagefeedback_is_refused(client, world):
    user = f.UserFactory()
    for dotted in STAFF:
        if dotted != "chats.view_messagefeedback":
            app_label, codename = dotted.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    client.force_login(user)

    assert client.get(QUEUE).status_code == 403
    assert (
        client.get(reverse("review:transcript", args=[world["f1"].message.chat_id])).status_code
        == 200
    )


def test_admin_index_links_to_the_queue(staff_client):
    response = staff_client.get(reverse("admin:index"))

    assert f'href="{QUEUE}"' in response.content.decode()
