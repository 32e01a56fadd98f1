"""Message search (/admin/review/search/): PostgreSQL full-text search on the
GIN index of migration chats 0003 (websearch syntax, stemming, ranked), a
substring match on SQLite; snippets escape message text and mark the match;
results open the transcript at their message.
"""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chats.search import search_messages
from core.tests import factories as f

from .test_rendering import parse_html

pytestmark = pytest.mark.django_db

SEARCH = "/admin/review/search/"
T0 = dt.datetime(2024, 3, 13, 10, 0, tzinfo=dt.UTC)
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="full-text search is PostgreSQL's"
)
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite fallback")


@pytest.fixture
def staff_client(client):
    client.force_login(f.UserFactory(groups=["Staff"]))
    return client


def say(text, minutes=0, chat=None, role="assistant"):
    return f.MessageFactory(
        chat=chat or f.ChatFactory(title=f"Chat about {text[:20]}"),
        role=role,
        content=text,
        created_at=T0 + dt.timedelta(minutes=minutes),
    )


def found(query):
    return [m.pk for m, _ in search_messages(query)]


def results(response):
    """[(href, title text, snippet html-free text, snippet element)] of the page."""
    items = parse_html(response.content).find("ol", cls="results").find_all("li")
    return [
        (li.find("a").attrs["href"], li.find("a").text, li.find("p", cls="snippet"))
        for li in items
        if "empty" not in li.classes
    ]


# both databases ------------------------------------------------------------


def test_results_open_the_transcript_at_the_message(staff_client):
    chat = f.ChatFactory(title="Quarterly numbers", user=f.AppUserFactory(email="ann@x.test"))
    say("Opening words", 0, chat, role="user")
    hit = say("Revenue rose in the north.", 1, chat)

    response = staff_client.get(SEARCH, {"q": "revenue"})

    assert response.status_code == 200
    ((href, title, snippet),) = results(response)
    assert href == f"/admin/review/chats/{chat.pk}/?at={hit.pk}#message-{hit.pk}"
    assert title == "Quarterly numbers"
    assert [m.text for m in snippet.find_all("mark")] == ["Revenue"]
    item = parse_html(response.content).find("ol", cls="results").find("li")
    assert item.squashed().startswith(
        "Quarterly numbers · Assistant · 13 Mar 2024 10:01 · ann@x.test"
    )

    opened = staff_client.get(href.split("#")[0])
    assert opened.status_code == 200
    assert f'id="message-{hit.pk}"' in opened.content.decode()


def test_snippet_escapes_message_html_and_marks_only_the_match(staff_client):
    say("Our <b>revenue</b> & <script>alert(1)</script> grew", 0)

    response = staff_client.get(SEARCH, {"q": "revenue"})

    ((_, _, snippet),) = results(response)
    assert [el.tag for el in snippet.iter() if el is not snippet] == ["mark"]
    assert snippet.find("mark").text == "revenue"
    # PostgreSQL's headline starts at the first hit; SQLite's snippet at the start.
    assert snippet.squashed().endswith("revenue</b> & <script>alert(1)</script> grew")
    html = response.content.decode()
    assert "<mark>revenue</mark>&lt;/b&gt; &amp; &lt;script&gt;alert(1)&lt;/script&gt; grew" in html
    if connection.vendor == "sqlite":
        assert "Our &lt;b&gt;<mark>revenue</mark>" in html
    assert "<b>revenue" not in html


def test_empty_query_shows_no_results(staff_client):
    say("revenue", 0)

    for query in ({}, {"q": ""}, {"q": "   "}):
        response = staff_client.get(SEARCH, query)
        assert response.status_code == 200
        assert parse_html(response.content).find_all("ol", cls="results") == []
    assert search_messages("") == search_messages("  ") == search_messages(None) == []


def test_no_match_says_so_and_escapes_the_query(staff_client):
    say("revenue", 0)

    response = staff_client.get(SEARCH, {"q": "<i>zebra</i>"})

    root = parse_html(response.content)
    empty = root.find("ol", cls="results").find("li", cls="empty")
    assert empty.text == "No message matches “<i>zebra</i>”."
    assert empty.find_all("i") == []
    assert root.find("input", name="q").attrs["value"] == "<i>zebra</i>"


@pytest.mark.parametrize(
    "query", ["the", '"unbalanced', "-", "a & b | !c", "<script>", "':*", "\\", "%", "_", "x" * 500]
)
def test_odd_queries_do_not_fail(staff_client, query):
    say("revenue of a_b rose 100%", 0)

    response = staff_client.get(SEARCH, {"q": query})

    assert response.status_code == 200
    expected = 1 if connection.vendor == "sqlite" and query in ("%", "_") else 0
    assert len(results(response)) == expected


@pytest.mark.parametrize("query", ["reve\x00nue", "\x00", "revenue \x00 -churn"])
def test_a_nul_character_is_refused_with_a_reason(staff_client, query):
    say("revenue rose", 0)

    response = staff_client.get(SEARCH, {"q": query})

    assert response.status_code == 200
    root = parse_html(response.content)
    assert root.find("ul", cls="errorlist").text == (
        "The search text may not contain a NUL character (\\0)."
    )
    assert b'class="results"' not in response.content
    assert "\x00" not in response.content.decode()


def test_results_come_in_pages_of_fifty(staff_client):
    chat = f.ChatFactory()
    for n in range(55):
        say(f"revenue note {n}", n, chat)

    first = staff_client.get(SEARCH, {"q": "revenue"})
    second = staff_client.get(SEARCH, {"q": "revenue", "page": "2"})
    bad = staff_client.get(SEARCH, {"q": "revenue", "page": "x"})
    negative = staff_client.get(SEARCH, {"q": "revenue", "page": "-4"})
    beyond = staff_client.get(SEARCH, {"q": "revenue", "page": "7"})
    huge = staff_client.get(SEARCH, {"q": "revenue", "page": "99999999999999999999"})  # was a 500

    assert len(results(first)) == 50
    pager = parse_html(first.content).find("nav", cls="pager")
    assert [a.attrs["href"] for a in pager.find_all("a")] == ["?q=revenue&page=2"]
    assert len(results(second)) == 5
    pager = parse_html(second.content).find("nav", cls="pager")
    assert [a.attrs["href"] for a in pager.find_all("a")] == ["?q=revenue&page=1"]
    assert len(results(bad)) == len(results(negative)) == 50
    assert results(beyond) == [] and beyond.context["page"] == 7
    assert huge.status_code == 200
    assert results(huge) == [] and huge.context["page"] == 10_000


def test_query_count_is_fixed(staff_client, django_assert_num_queries):
    chat = f.ChatFactory()
    for n in range(30):
        say(f"revenue note {n}", n, chat)

    # session, staff account, its user and group permissions; the search
    # (chat and app user joined)
    with django_assert_num_queries(5):
        response = staff_client.get(SEARCH, {"q": "revenue"})

    assert len(results(response)) == 30


def test_anonymous_is_sent_to_the_login_page(client):
    response = client.get(SEARCH, {"q": "x"})

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


def test_staff_account_without_view_message_is_refused(client):
    client.force_login(f.UserFactory())

    assert client.get(SEARCH, {"q": "x"}).status_code == 403


def test_admin_index_links_to_search(staff_client):
    assert f'href="{SEARCH}"' in staff_client.get(reverse("admin:index")).content.decode()


# SQLite: a substring match -------------------------------------------------------


@on_sqlite
def test_sqlite_matches_substrings_case_insensitively_newest_first():
    older = say("REVENUE fell", 0)
    newer = say("pre-revenue startups", 5)
    say("Churn rose", 9)

    assert found("revenue") == [newer.pk, older.pk]
    assert found("VENU") == [newer.pk, older.pk]
    assert found("revenue fell") == [older.pk]
    assert found("zebra") == []


@on_sqlite
def test_sqlite_snippet_is_cut_around_the_first_hit():
    text = "x" * 300 + " the Revenue line " + "y" * 300
    say(text)

    ((_, snippet),) = search_messages("revenue")

    # 80 characters before the hit, 120 after it
    assert snippet == "…" + "x" * 75 + " the <mark>Revenue</mark> line " + "y" * 114 + "…"
    assert search_messages(" the ")[0][1].startswith("…" + "x" * 79 + " <mark>the</mark> Revenue")


# PostgreSQL: full text -----------------------------------------------------------


@on_postgresql
def test_websearch_excludes_a_word():
    plain = say("Revenue rose in March", 0)
    say("Revenue fell as churn rose", 1)
    say("Churn only", 2)

    assert found("revenue -churn") == [plain.pk]
    assert found("revenue or churn") and len(found("revenue or churn")) == 3


@on_postgresql
def test_websearch_phrase():
    phrase = say("Net revenue grew by 4%", 0)
    say("Revenue, net of refunds, grew", 1)
    say("The net effect on revenue", 2)

    assert found('"net revenue"') == [phrase.pk]
    assert len(found("net revenue")) == 3


@on_postgresql
def test_stemming_finds_other_forms():
    one = say("Here is the forecast for Q3", 0)
    two = say("We are forecasting a dip", 1)
    say("Weather report", 2)

    assert sorted(found("forecasts")) == sorted([one.pk, two.pk])
    assert sorted(found("forecasted")) == sorted([one.pk, two.pk])


@on_postgresql
def test_results_are_ranked():
    weak = say("A long note that mentions churn once among many other words about plans", 9)
    strong = say("Churn, churn and churn: churn by plan", 0)

    assert found("churn") == [strong.pk, weak.pk]


@on_postgresql
def test_headline_marks_every_hit_and_escapes():
    say("<b>Revenue</b> & revenues: <img src=x onerror=alert(1)> revenue", 0)

    ((_, snippet),) = search_messages("revenue")

    # Every form of the word marked; the tags kept, as text (ts_headline
    # would drop <b> and </b> if they reached it as markup).
    assert snippet == (
        "<mark>Revenue</mark>&lt;/b&gt; &amp; <mark>revenues</mark>: "
        "&lt;img src=x onerror=alert(1)&gt; <mark>revenue</mark>"
    )


@on_postgresql
def test_the_search_uses_the_gin_index():
    chat = f.ChatFactory()
    for n in range(20):
        say(f"filler message {n}", n, chat)
    say("Revenue rose", 30, chat)

    with CaptureQueriesContext(connection) as queries:
        assert len(search_messages("revenue -churn")) == 1
    (sql,) = [q["sql"] for q in queries.captured_queries]
    with connection.cursor() as cursor:
        # The search ranks the newest matches, so on a tiny table the planner
        # may as well walk chats_msg_created_idx and filter; with plain index
        # scans off, the match itself must come from the GIN index (its
        # expression is exactly the query's), never a sequential scan.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "chats_msg_content_fts" in plan, plan
    assert "Seq Scan on chats_message" not in plan, plan


@on_postgresql
def test_the_admin_message_search_uses_the_gin_index_too(staff_client):
    hit = say("Revenue rose", 0)
    say("Churn rose", 1)

    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(reverse("admin:chats_message_changelist"), {"q": "revenue"})

    assert [m.pk for m in response.context["cl"].result_list] == [hit.pk]
    sql = next(q["sql"] for q in queries.captured_queries if "to_tsvector" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "chats_msg_content_fts" in plan, plan
