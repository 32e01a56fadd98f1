"""The chat transcript page (/admin/review/chats/<pk>/): a chat read as a
conversation with everything attached, a fixed number of queries whatever
its length, pages of 100 messages and ?at=<message id>.
"""

import datetime as dt
import random
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.urls import reverse

from chats import transcript
from chats.models import CodeExecution, Message, MessageFeedback
from core.tests import factories as f
from usage.models import ModelUsage

from .test_rendering import XSS, parse_html, unsafe_markup

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 3, 13, 10, 0, tzinfo=dt.UTC)


def at(minutes, seconds=0):
    return T0 + dt.timedelta(minutes=minutes, seconds=seconds)


def url(chat, **query):
    path = reverse("review:transcript", args=[chat.pk])
    if query:
        path += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return path


@pytest.fixture(autouse=True)
def _empty_cache():
    # Rendered markdown is cached by content; start every test cold.
    cache.clear()


@pytest.fixture
def staff_client(client):
    client.force_login(f.UserFactory(username="reviewer", groups=["Staff"]))
    return client


def message_ids(root):
    """Ids of the messages shown, in page order."""
    return [int(li.attrs["id"].removeprefix("message-")) for li in root.find_all("li", cls="msg")]


def message(root, msg):
    return root.by_id(f"message-{msg.pk}")


@pytest.fixture
def rich():
    """A chat with one of everything a transcript shows, and a second chat
    whose messages and usage must not show."""
    acme = f.OrganizationFactory(name="Acme")
    source = f.SourceFactory(name="auto-analyst")
    ann = f.AppUserFactory(organization=acme, email="ann@acme.test")
    chat = f.ChatFactory(
        user=ann,
        organization=acme,
        source=source,
        source_pk="c1",
        title="Regional sales",
        created_at=T0,
    )
    other = f.ChatFactory(user=ann, title="Another chat")

    question = f.MessageFactory(
        chat=chat, role="user", content="Show **sales** by region", created_at=at(0)
    )
    answer = f.MessageFactory(
        chat=chat,
        role="assistant",
        created_at=at(1),
        content=(
            "Sales were **up 12%**.\n\n"
            "| region | total |\n|---|---:|\n| North | 1200 |\n| South | 800 |\n\n"
            "```python\nprint(df.groupby('region').sum())\n```"
        ),
        model_name="gpt-4o",
        prompt_tokens=1200,
        completion_tokens=300,
        persona="analyst",
        tone="friendly",
        behavior="concise",
        context_type="follow_up",
        confidence=0.9,
        signal_strength=0.75,
        context_clarity=True,
        needs_knowledge=True,
    )
    f.MessageFeedbackFactory(
        message=answer,
        rating=2,
        model_name="gpt-4o",
        model_provider="openai",
        temperature=0.7,
        max_tokens=2048,
    )
    failed = f.CodeExecutionFactory(
        message=answer,
        created_at=at(1, 5),
        initial_code="df = load()\nprint(df.sum())",
        latest_code="df = load()\nprint(df.groupby('region').sum())",
        is_successful=False,
        output="Traceback (most recent call last):\nKeyError: 'region'",
        model_name="gpt-4o",
        failed_agents=["data_viz_agent", "stats_agent"],
        error_messages={"data_viz_agent": "KeyError: 'region'", "stats_agent": "ValueError: <x>"},
    )
    fixed = f.CodeExecutionFactory(
        message=answer,
        created_at=at(1, 9),
        initial_code="x = 1",
        latest_code="x = 1",
        is_successful=True,
        output="North 1200\nSouth 800",
        model_name="gpt-4o-mini",
    )
    sql = f.MessageFactory(
        chat=chat,
        role="assistant",
        created_at=at(2),
        content="Here are the totals.",
        sql_query="SELECT region, SUM(total) FROM sales GROUP BY region",
        query_result={"columns": ["region", "sum"], "rows": [["North", 1200], ["South", 800]]},
        execution_time=0.42,
    )
    json_result = f.MessageFactory(
        chat=chat,
        role="assistant",
        created_at=at(3),
        content="Done.",
        sql_query="SELECT 1",
        query_result={"status": "ok", "count": 3},
    )
    upload = f.UploadedFileFactory(
        chat=chat,
        filename="sales_q1.csv",
        file_type="text/csv",
        file_size=2048,
        upload_timestamp=at(0, 30),
    )
    f.AnalysisResultFactory(
        chat=chat,
        file=upload,
        analysis_type="correlation",
        result_data={"r": 0.82},
        visualizations=["heatmap", "scatter"],
        created_at=at(4),
    )
    f.MessageFactory(chat=other, role="user", content="not this chat", created_at=at(0))
    usage = [
        f.ModelUsageFactory(
            user=ann,
            chat=chat,
            model_name="gpt-4o",
            provider="openai",
            prompt_tokens=1200,
            completion_tokens=300,
            cost=Decimal("0.01250000"),
        ),
        f.ModelUsageFactory(
            user=ann,
            chat=chat,
            model_name="gpt-4o",
            provider="openai",
            prompt_tokens=2000,
            completion_tokens=700,
            cost=Decimal("0.25000000"),
        ),
        f.ModelUsageFactory(
            user=ann,
            chat=chat,
            model_name="claude-3-5-sonnet",
            provider="anthropic",
            prompt_tokens=500,
            completion_tokens=150,
            cost=None,
        ),
        # another chat's and no chat's calls
        f.ModelUsageFactory(user=ann, chat=other, prompt_tokens=9999, cost=Decimal("9")),
        f.ModelUsageFactory(user=ann, chat=None, prompt_tokens=8888, cost=Decimal("8")),
    ]
    return {
        "chat": chat,
        "question": question,
        "answer": answer,
        "failed": failed,
        "fixed": fixed,
        "sql": sql,
        "json": json_result,
        "usage": usage,
    }


# what a message shows ------------------------------------------------------


def test_messages_in_order_with_role_time_and_model(staff_client, rich):
    response = staff_client.get(url(rich["chat"]))

    assert response.status_code == 200
    root = parse_html(response.content)
    assert message_ids(root) == [rich[name].pk for name in ("question", "answer", "sql", "json")]
    answer = message(root, rich["answer"])
    assert answer.classes == ["msg", "role-assistant"]
    header = answer.find("header")
    assert header.find("span", cls="role").text == "Assistant"
    assert header.find("time").attrs["datetime"] == "2024-03-13T10:01:00+00:00"
    assert header.find("time").text == "13 Mar 2024 10:01:00"
    assert [chip.text for chip in header.find_all("span", cls="chip")] == [
        "gpt-4o",
        "1,200 / 300 tokens",
    ]
    question = message(root, rich["question"])
    assert question.find("span", cls="role").text == "User"
    assert question.find("header").find_all("span", cls="chip") == []
    assert response.context["total"] == 4


def test_order_is_created_at_then_id(staff_client):
    chat = f.ChatFactory()
    late = f.MessageFactory(chat=chat, created_at=at(5), content="late")
    early = f.MessageFactory(
        chat=chat, created_at=at(1), content="early"
    )  # made after, shown first
    tie_b = f.MessageFactory(chat=chat, created_at=at(3), content="tie b")
    tie_a = f.MessageFactory(chat=chat, created_at=at(3), content="tie a")
    assert tie_b.pk < tie_a.pk

    root = parse_html(staff_client.get(url(chat)).content)

    assert message_ids(root) == [early.pk, tie_b.pk, tie_a.pk, late.pk]


def test_markdown_rendered(staff_client, rich):
    root = parse_html(staff_client.get(url(rich["chat"])).content)

    content = message(root, rich["answer"]).find("div", cls="content")
    assert content.find("strong").text == "up 12%"
    table = content.find("table")
    assert [th.text for th in table.find_all("th")] == ["region", "total"]
    assert [[td.text for td in tr.find_all("td")] for tr in table.find("tbody").find_all("tr")] == [
        ["North", "1200"],
        ["South", "800"],
    ]
    code = content.find("pre").find("code")
    assert code.attrs["class"] == "language-python"
    assert code.text == "print(df.groupby('region').sum())\n"
    question = message(root, rich["question"]).find("div", cls="content")
    assert question.find("strong").text == "sales"


def test_code_executions_with_diff_result_output_and_agent_errors(staff_client, rich):
    root = parse_html(staff_client.get(url(rich["chat"])).content)

    runs = message(root, rich["answer"]).find_all("details", cls="execution")
    assert [run.classes for run in runs] == [["execution", "failed"], ["execution", "ok"]]
    failed, fixed = runs
    assert "open" in failed.attrs and "open" not in fixed.attrs
    assert failed.find("summary").squashed() == (
        "Code execution: failed · gpt-4o · failed agents: data_viz_agent, stats_agent"
    )
    diff = [(span.attrs["class"], span.text) for span in failed.find("pre", cls="diff").find_all()]
    assert diff == [
        ("header", "--- initial"),
        ("header", "+++ latest"),
        ("hunk", "@@ -1,2 +1,2 @@"),
        ("context", " df = load()"),
        ("removed", "-print(df.sum())"),
        ("added", "+print(df.groupby('region').sum())"),
    ]
    assert failed.find("pre", cls="output").text == (
        "Traceback (most recent call last):\nKeyError: 'region'"
    )
    headings = [h.text for h in failed.find_all("h4")]
    assert headings == [
        "Initial → latest code",
        "Output",
        "Error in data_viz_agent",
        "Error in stats_agent",
    ]
    assert [pre.text for pre in failed.find_all("pre", cls="error")] == [
        "KeyError: 'region'",
        "ValueError: <x>",
    ]
    # Same code before and after: no diff, the code itself.
    assert fixed.find("summary").squashed() == "Code execution: succeeded · gpt-4o-mini"
    assert fixed.find_all("pre", cls="diff") == []
    assert fixed.find("code").text == "x = 1"
    assert fixed.find("pre", cls="output").text == "North 1200\nSouth 800"
    assert fixed.find_all("pre", cls="error") == []


def test_feedback_stars_and_model_settings(staff_client, rich):
    root = parse_html(staff_client.get(url(rich["chat"])).content)

    answer = message(root, rich["answer"])
    stars = answer.find("header").find("span", cls="stars")
    assert stars.text == "★★☆☆☆"
    assert stars.attrs["title"] == "2 of 5"
    assert answer.find("p", cls="feedback-settings").squashed() == (
        "Rated 2/5 · openai gpt-4o · temperature 0.7 · max tokens 2048"
    )
    for name in ("question", "sql", "json"):
        shown = message(root, rich[name])
        assert shown.find_all("span", cls="stars") == []
        assert shown.find_all("p", cls="feedback-settings") == []


def test_ai_metadata_where_present(staff_client, rich):
    root = parse_html(staff_client.get(url(rich["chat"])).content)

    items = message(root, rich["answer"]).find("ul", cls="metadata").find_all("li")
    assert [li.squashed() for li in items] == [
        "persona analyst",
        "tone friendly",
        "behaviour concise",
        "context follow_up",
        "confidence 0.9",
        "signal strength 0.75",
        "context clear True",
        "needs knowledge True",
    ]
    assert message(root, rich["question"]).find_all("ul", cls="metadata") == []


def test_sql_with_result_table_and_json_otherwise(staff_client, rich):
    root = parse_html(staff_client.get(url(rich["chat"])).content)

    sql = message(root, rich["sql"]).find("details", cls="sql")
    assert sql.find("summary").text == "SQL · 0.42 s"
    assert sql.find("code").text == "SELECT region, SUM(total) FROM sales GROUP BY region"
    table = sql.find("table", cls="result")
    assert [th.text for th in table.find_all("th")] == ["region", "sum"]
    assert [[td.text for td in tr.find_all("td")] for tr in table.find("tbody").find_all("tr")] == [
        ["North", "1200"],
        ["South", "800"],
    ]
    assert sql.find_all("pre", cls="json") == []

    other = message(root, rich["json"]).find("details", cls="sql")
    assert other.find("summary").text == "SQL"
    assert other.find_all("table") == []
    assert other.find("pre", cls="json").text == '{\n  "count": 3,\n  "status": "ok"\n}'


def test_result_table_shapes():
    rows = [{"region": "North", "n": i} for i in range(60)]

    assert transcript.result_table({"columns": ["a"], "data": [[1], [2]]}) == (["a"], [[1], [2]], 0)
    assert transcript.result_table(rows) == (
        ["region", "n"],
        [["North", i] for i in range(50)],
        10,
    )
    assert transcript.result_table({"status": "ok"}) is None
    assert transcript.result_table([1, 2]) is None
    assert transcript.result_table([]) is None


def test_files_analysis_results_and_usage_of_the_chat(staff_client, rich):
    chat = rich["chat"]

    response = staff_client.get(url(chat))

    root = parse_html(response.content)
    sections = root.find_all("section", cls="attachments")
    files, usage = sections
    assert [h.text for h in files.find_all("h2")] == ["Uploaded files", "Analysis results"]
    assert [td.text for td in files.find("tbody").find_all("td")] == [
        "sales_q1.csv",
        "text/csv",
        "2.0\xa0KB",
        "13 Mar 2024 10:00",
        "no",
    ]
    result = files.find("details")
    assert result.find("summary").text == "correlation · 13 Mar 2024 10:04 · sales_q1.csv"
    assert result.find("pre", cls="json").text == '{\n  "r": 0.82\n}'
    assert result.find("p").text == "Visualisations: heatmap, scatter"

    # The figures are the usage ledger's: the same as a plain SQL sum.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost) "
            "FROM usage_modelusage WHERE chat_id = %s",
            [chat.pk],
        )
        requests, prompt, completion, cost = cursor.fetchone()
    totals = response.context["usage_totals"]
    assert (requests, prompt, completion) == (3, 3700, 1150)
    assert totals["requests"] == requests
    assert totals["prompt"] == prompt
    assert totals["completion"] == completion
    assert Decimal(str(totals["cost"])) == Decimal(str(cost)) == Decimal("0.2625")
    facts = {
        div.find("dt").text: div.find("dd").squashed()
        for div in root.find("dl", cls="facts").find_all("div")
    }
    assert facts == {
        "App user": "ann@acme.test",
        "Organisation": "Acme",
        "Source": "auto-analyst",
        "Started": "13 Mar 2024 10:00",
        "Messages": "4",
        "Tokens": "3,700 in / 1,150 out",
        "Cost": "$0.2625 over 3 requests",
    }
    rows = [[td.text for td in tr.find_all("td")] for tr in usage.find("tbody").find_all("tr")]
    assert rows == [
        ["claude-3-5-sonnet", "anthropic", "1", "500", "150", "–"],
        ["gpt-4o", "openai", "2", "3,200", "1,000", "$0.2625"],
    ]


def test_a_chat_without_usage_files_or_messages(staff_client):
    chat = f.ChatFactory(user=None, title="Empty")

    response = staff_client.get(url(chat))

    assert response.status_code == 200
    root = parse_html(response.content)
    assert root.find("li", cls="empty").text == "This chat has no messages."
    assert root.find_all("section", cls="attachments") == []
    facts = {
        div.find("dt").text: div.find("dd").squashed()
        for div in root.find("dl", cls="facts").find_all("div")
    }
    assert facts["App user"] == "anonymous"
    assert facts["Tokens"] == "0 in / 0 out"
    assert facts["Cost"] == "$0.00 over 0 requests"


# sanitising ----------------------------------------------------------------


def test_message_payloads_render_inert_on_the_page(staff_client):
    chat = f.ChatFactory()
    evil = f.MessageFactory(chat=chat, role="assistant", content=XSS)
    f.MessageFactory(chat=chat, role="user", content="<b onmouseover=alert(1)>hi</b>")

    response = staff_client.get(url(chat))

    html = response.content.decode()
    root = parse_html(html)
    shown = root.find("ol", cls="transcript")
    for content in shown.find_all("div", cls="content"):
        assert unsafe_markup(content) == []
    # Outside the message text only our flag form, on the assistant message.
    assert unsafe_markup(shown) == [("tag", "form")]
    assert shown.find("form").attrs["action"] == reverse("review:flag_mistake", args=[evil.pk])
    assert shown.find_all("script") == shown.find_all("iframe") == shown.find_all("svg") == []
    assert [a.attrs["href"] for a in shown.find_all("a")] == [
        f"#message-{m}" for m in message_ids(root)
    ]  # only our permalinks
    content = message(root, evil).find("div", cls="content")
    assert "<script>alert(1)</script>" in content.text  # shown as text
    # The whole page: every script is one of the admin's files, none inline.
    scripts = root.find_all("script")
    assert scripts and all(s.attrs.get("src", "").startswith("/static/") for s in scripts)
    assert all(not s.text.strip() for s in scripts)
    assert root.find_all("iframe") == []
    assert [where for where in unsafe_markup(root) if where[0] != "tag"] == []
    assert "javascript:alert" not in " ".join(
        value or "" for el in root.iter() for _, value in el.attr_list
    )


# queries -------------------------------------------------------------------


def _chat_of(size):
    """A chat of ``size`` messages: every other one an assistant message with
    feedback (some unrated) and one or two code executions, plus a file, an
    analysis result and usage rows."""
    chat = f.ChatFactory(organization=f.OrganizationFactory(), source=f.SourceFactory())
    flagger = f.UserFactory()
    messages = Message.objects.bulk_create(
        Message(
            chat=chat,
            role="assistant" if n % 2 else "user",
            content=f"Message {n} with **bold** and `code` {n}",
            created_at=at(n),
            model_name="gpt-4o" if n % 2 else None,
            persona="analyst" if n % 4 == 1 else None,
            is_mistake=n % 10 == 1,
            mistake_flagged_by=flagger if n % 10 == 1 else None,
            mistake_note="wrong" if n % 10 == 1 else None,
            sql_query="SELECT 1" if n % 6 == 3 else None,
            query_result={"columns": ["a"], "rows": [[n]]} if n % 6 == 3 else None,
        )
        for n in range(size)
    )
    answers = [m for m in messages if m.role == "assistant"]
    MessageFeedback.objects.bulk_create(
        MessageFeedback(message=m, rating=None if i % 5 == 4 else 1 + i % 5, temperature=0.2)
        for i, m in enumerate(answers)
    )
    CodeExecution.objects.bulk_create(
        CodeExecution(
            message=m,
            chat=chat,
            initial_code="a = 1",
            latest_code=f"a = {k}",
            is_successful=bool(k % 2),
            error_messages={"agent": "boom"},
            failed_agents=["agent"],
            created_at=at(i, k),
        )
        for i, m in enumerate(answers)
        for k in range(1 + i % 2)
    )
    upload = f.UploadedFileFactory(chat=chat)
    f.AnalysisResultFactory(chat=chat, file=upload)
    f.ModelUsageFactory(chat=chat)
    f.ModelUsageFactory(chat=chat, model_name="claude-3-5-sonnet", provider="anthropic")
    return chat


@pytest.mark.parametrize("size", [5, 250])
def test_query_count_is_fixed_whatever_the_length(staff_client, django_assert_num_queries, size):
    chat = _chat_of(size)
    staff_client.get(url(chat))  # fills process-wide caches (content types)
    cache.clear()  # ... but every message is rendered again, none from the cache

    # session, staff account, its user permissions, its group permissions;
    # the chat (user, organisation, source joined); the message count; the
    # page's messages (feedback and flagger joined); their code executions;
    # the chat's uploaded files; analysis results (file joined); usage totals
    with django_assert_num_queries(11):
        response = staff_client.get(url(chat))

    assert response.status_code == 200
    assert len(response.context["rows"]) == min(size, 100)
    assert response.context["total"] == size


def test_query_count_at_a_message(staff_client, django_assert_num_queries):
    chat = _chat_of(250)
    target = Message.objects.filter(chat=chat).order_by("created_at", "id")[180]

    # as above, plus the target's time and the count of messages before it
    with django_assert_num_queries(13):
        response = staff_client.get(url(chat, at=target.pk))

    assert response.context["page"] == 2


# pagination ----------------------------------------------------------------


@pytest.fixture
def long_chat():
    """2,000 messages, three to a second (ties broken by id), inserted in a
    shuffled order so ids and times disagree; returns (chat, ordered)."""
    chat = f.ChatFactory(title="Long")
    order = list(range(2000))
    random.Random(4).shuffle(order)
    made = Message.objects.bulk_create(
        Message(
            chat=chat,
            role="user" if n % 2 else "assistant",
            content=f"line {n}",
            created_at=T0 + dt.timedelta(seconds=n // 3),
        )
        for n in order
    )
    ordered = sorted(made, key=lambda m: (m.created_at, m.pk))
    return chat, ordered


def test_long_chat_first_page(staff_client, long_chat):
    chat, ordered = long_chat

    response = staff_client.get(url(chat))

    root = parse_html(response.content)
    assert message_ids(root) == [m.pk for m in ordered[:100]]
    pagers = root.find_all("nav", cls="pager")
    assert len(pagers) == 2
    assert pagers[0].squashed().startswith("Page 1 of 20 (100 messages a page)")
    assert [a.attrs["href"] for a in pagers[0].find_all("a")] == ["?page=2"]


def test_long_chat_last_page(staff_client, long_chat):
    chat, ordered = long_chat

    root = parse_html(staff_client.get(url(chat, page=20)).content)

    assert message_ids(root) == [m.pk for m in ordered[1900:]]
    pager = root.find("nav", cls="pager")
    assert pager.squashed().startswith("Page 20 of 20")
    assert [a.attrs["href"] for a in pager.find_all("a")] == ["?page=19"]


def test_long_chat_at_a_message(staff_client, long_chat):
    chat, ordered = long_chat
    target = ordered[1233]  # message 1,234

    response = staff_client.get(url(chat, at=target.pk))

    assert response.context["page"] == 13
    root = parse_html(response.content)
    assert message_ids(root) == [m.pk for m in ordered[1200:1300]]
    assert message(root, target).find("a", cls="permalink").attrs["href"] == (
        f"#message-{target.pk}"
    )


@pytest.mark.parametrize("index, page", [(99, 1), (100, 2), (101, 2), (1999, 20), (0, 1)])
def test_at_a_message_at_page_edges_among_ties(staff_client, long_chat, index, page):
    # Messages 100, 101 and 102 share a second: page 1 ends between them.
    chat, ordered = long_chat
    assert ordered[99].created_at == ordered[100].created_at == ordered[101].created_at

    response = staff_client.get(url(chat, at=ordered[index].pk))

    assert response.context["page"] == page
    assert f'id="message-{ordered[index].pk}"' in response.content.decode()


@pytest.mark.parametrize(
    "query, page",
    [
        ("page=abc", 1),
        ("page=0", 1),
        ("page=-3", 1),
        ("page=2.5", 1),
        ("page=", 1),
        ("page=999", 20),
        ("page=99999999999999999999999", 20),
        ("page=%00", 1),
        ("at=abc", 1),
        ("at=-1", 1),
        ("at=999999999", 1),
        ("at=99999999999999999999999", 1),
        ("page=7&at=abc", 7),
    ],
)
def test_bad_page_and_at_values_do_not_fail(staff_client, long_chat, query, page):
    chat, ordered = long_chat

    response = staff_client.get(f"{url(chat)}?{query}")

    assert response.status_code == 200
    assert response.context["page"] == page
    assert message_ids(parse_html(response.content)) == [
        m.pk for m in ordered[(page - 1) * 100 : page * 100]
    ]


def test_at_a_message_of_another_chat_shows_page_one(staff_client, long_chat):
    chat, _ = long_chat
    stranger = f.MessageFactory(created_at=T0 + dt.timedelta(days=1))

    response = staff_client.get(url(chat, at=stranger.pk))

    assert response.context["page"] == 1
    assert f'id="message-{stranger.pk}"' not in response.content.decode()


# access --------------------------------------------------------------------


def test_unknown_chat_is_404(staff_client):
    response = staff_client.get(reverse("review:transcript", args=[987654]))

    assert response.status_code == 404


def test_anonymous_is_sent_to_the_login_page(client, rich):
    path = url(rich["chat"])

    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={path}"


def test_staff_account_without_view_chat_is_refused(client, rich):
    client.force_login(f.UserFactory())  # is_staff, no permission

    assert client.get(url(rich["chat"])).status_code == 403


@pytest.mark.parametrize("group", ["Staff", "Managers", "Admins"])
def test_every_role_reads_transcripts(client, rich, group):
    client.force_login(f.UserFactory(groups=[group]))

    assert client.get(url(rich["chat"])).status_code == 200


def test_the_chat_and_message_admin_link_here(staff_client, rich):
    chat, answer = rich["chat"], rich["answer"]

    listing = staff_client.get(reverse("admin:chats_chat_changelist")).content.decode()
    change = staff_client.get(reverse("admin:chats_message_change", args=[answer.pk]))

    assert f'href="{url(chat)}"' in listing
    assert f'href="{url(chat)}?at={answer.pk}#message-{answer.pk}"' in change.content.decode()


def test_usage_rows_are_counted_per_chat_only(rich):
    extras = transcript.chat_extras(rich["chat"])

    assert extras["usage_totals"]["requests"] == 3
    assert ModelUsage.objects.filter(chat=rich["chat"]).count() == 3


def test_agent_errors_follow_the_failed_agents_order():
    errors = {"zeta": "z failed", "beta": "b failed", "alpha": "a failed", "extra": "x"}

    assert transcript._errors(errors, ["zeta", "alpha", "beta"]) == [
        ("zeta", "z failed"),
        ("alpha", "a failed"),
        ("beta", "b failed"),
        ("extra", "x"),
    ]
    assert transcript._errors(errors, None)[0] == ("alpha", "a failed")
    assert transcript._errors(["boom"]) == [("", '[\n  "boom"\n]')]
    assert transcript._errors(None) == transcript._errors([]) == transcript._errors({}) == []


def test_code_diff_lines():
    assert transcript.code_diff("a\nb", "a\nc") == [
        ("header", "--- initial"),
        ("header", "+++ latest"),
        ("hunk", "@@ -1,2 +1,2 @@"),
        ("context", " a"),
        ("removed", "-b"),
        ("added", "+c"),
    ]
    assert transcript.code_diff("same", "same") == []
    assert transcript.code_diff(None, "only latest") == []
    assert transcript.code_diff("only initial", "") == []
