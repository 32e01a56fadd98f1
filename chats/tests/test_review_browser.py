"""The reviewer pages in a real browser (Debian's Chromium through Playwright):
a Staff account logs in, works the feedback queue, flags a mistake on the
transcript and finds the chat in the chat list filtered by it; message text
full of script renders inert. Screenshots: test-artifacts/feedback-queue.png
and test-artifacts/transcript.png.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission
from django.db.models import Q
from django.utils import timezone

from chats.models import Message
from core import roles
from core.tests import factories as f

# The live server runs in another thread: the data must be committed. The
# serialized rollback gives back the groups made by migration after the flush.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PASSWORD = "review-pass-4711"
NOTE = "Churn is per plan, not per region: the table answers another question."


@pytest.fixture(autouse=True)
def _role_groups(transactional_db):
    """The role groups, made again if a flush took them.

    The serialized rollback should give back the groups the data migrations
    made, but the test database is serialized on the connection object of
    the context that set it up, and under Playwright's sync API (an asyncio
    loop running in this thread) Django's asgiref-local connection handler
    hands test code another connection object, so after an earlier test set
    the database up nothing is restored. Permissions come back with the
    flush's post_migrate; groups are data.
    """
    for name, dotted in roles.GROUPS.items():
        group, created = Group.objects.get_or_create(name=name)
        if created:
            wanted = Q(pk__in=[])
            for item in dotted:
                app_label, codename = item.split(".")
                wanted |= Q(content_type__app_label=app_label, codename=codename)
            group.permissions.set(Permission.objects.filter(wanted))
            assert group.permissions.count() == len(dotted)


@pytest.fixture
def reviewer(_role_groups):
    return f.UserFactory(username="reviewer", groups=["Staff"], password=make_password(PASSWORD))


@pytest.fixture
def conversation():
    """A rated conversation whose answer got one star, among better-rated ones."""
    now = timezone.now().replace(microsecond=0)
    acme = f.OrganizationFactory(name="Acme")
    ann = f.AppUserFactory(organization=acme, email="ann@acme.test")
    source = f.SourceFactory(name="auto-analyst")
    chat = f.ChatFactory(
        user=ann,
        organization=acme,
        source=source,
        source_pk="c-1",
        title="Churn by plan",
        created_at=now - dt.timedelta(minutes=30),
    )

    def say(role, content, minutes, **extra):
        return f.MessageFactory(
            chat=chat,
            role=role,
            content=content,
            created_at=now - dt.timedelta(minutes=minutes),
            **extra,
        )

    say("user", "Why did **churn** rise in March? Split it by plan.", 20)
    answer = say(
        "assistant",
        "Churn rose mostly in the **North** region:\n\n"
        "| region | churned | rate |\n|---|---:|---:|\n"
        "| North | 412 | 6.1% |\n| South | 198 | 2.9% |\n\n"
        "```python\ndf.groupby('region')['churned'].sum()\n```",
        19,
        model_name="gpt-4o",
        prompt_tokens=1840,
        completion_tokens=312,
        persona="analyst",
        tone="neutral",
        signal_strength=0.42,
    )
    f.MessageFeedbackFactory(
        message=answer,
        rating=1,
        model_name="gpt-4o",
        model_provider="openai",
        temperature=0.7,
        max_tokens=2048,
        created_at=now - dt.timedelta(minutes=10),
    )
    f.CodeExecutionFactory(
        message=answer,
        initial_code="df.groupby('plan')['churned'].sum()",
        latest_code="df.groupby('region')['churned'].sum()",
        is_successful=False,
        output="KeyError: 'plan'",
        model_name="gpt-4o",
        failed_agents=["statistical_analytics_agent"],
        error_messages={"statistical_analytics_agent": "KeyError: 'plan'"},
    )
    say("user", "That is by region. I asked by plan.", 15)
    f.ModelUsageFactory(
        user=ann,
        chat=chat,
        model_name="gpt-4o",
        provider="openai",
        prompt_tokens=1840,
        completion_tokens=312,
        cost=Decimal("0.00772000"),
    )
    f.UploadedFileFactory(chat=chat, filename="churn_march.csv", file_size=48_213)

    for n, rating in enumerate([4, 5, 3, 2]):
        other = f.ChatFactory(user=ann, organization=acme, title=f"Revenue question {n}")
        msg = f.MessageFactory(
            chat=other,
            role="assistant",
            content=f"Revenue grew {n + 2}%.",
            created_at=now - dt.timedelta(minutes=40 + n),
        )
        f.MessageFeedbackFactory(
            message=msg,
            rating=rating,
            model_name="gpt-4o-mini",
            model_provider="openai",
            created_at=now - dt.timedelta(minutes=5 + n),
        )
    return {"chat": chat, "answer": answer}


def test_staff_flags_a_low_rated_answer_as_a_mistake(
    live_server, page, login, screenshot, reviewer, conversation
):
    chat, answer = conversation["chat"], conversation["answer"]
    login(page, "reviewer", PASSWORD)
    assert page.url == f"{live_server.url}/admin/"

    # The queue, from the admin index: the one-star answer on top.
    page.click("#custom-pages >> text=Feedback queue")
    assert page.url == f"{live_server.url}/admin/review/feedback/"
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 5
    top = rows.first
    assert top.locator("td.stars").inner_text() == "★☆☆☆☆"
    assert top.locator("td").nth(1).inner_text().startswith("Churn rose mostly in the **North**")
    assert [rows.nth(n).locator("td.stars").inner_text().count("★") for n in range(5)] == [
        1,
        2,
        3,
        4,
        5,
    ]
    queue_shot = screenshot(page, "feedback-queue")

    # Its transcript, at the answer.
    top.locator("a").first.click()
    page.wait_for_load_state()
    assert page.url == (
        f"{live_server.url}/admin/review/chats/{chat.pk}/?at={answer.pk}#message-{answer.pk}"
    )
    shown = page.locator(f"#message-{answer.pk}")
    assert shown.locator(".content table tbody tr").count() == 2
    assert shown.locator(".content strong").inner_text() == "North"
    assert shown.locator("header .stars").inner_text() == "★☆☆☆☆"
    assert shown.locator("details.execution.failed").get_attribute("open") is not None

    # Flag it with a note.
    shown.locator("input[name=is_mistake]").check()
    shown.locator("input[name=mistake_note]").fill(NOTE)
    with page.expect_navigation():
        shown.locator("button", has_text="Save flag").click()

    shown = page.locator(f"#message-{answer.pk}")
    assert page.locator(".messagelist").inner_text().strip() == "Flagged as a mistake."
    assert "mistake" in shown.get_attribute("class").split()
    assert shown.locator("header .mistake-chip").inner_text() == "Mistake"
    note = shown.locator(".mistake-note").inner_text()
    assert note.startswith(f"Mistake: {NOTE} — reviewer, ")
    assert shown.locator("input[name=is_mistake]").is_checked()
    page.evaluate("window.scrollTo(0, 0)")  # the admin's sticky sidebar back at the top
    transcript_shot = screenshot(page, "transcript")

    # The chat list, filtered "With a mistake", holds the chat and only it.
    page.goto(f"{live_server.url}/admin/chats/chat/")
    assert page.locator("#result_list tbody tr").count() == 5
    page.click("#changelist-filter >> text=With a mistake")
    page.wait_for_load_state()
    assert page.url == f"{live_server.url}/admin/chats/chat/?has_mistake=yes"
    listed = page.locator("#result_list tbody tr")
    assert listed.count() == 1
    assert listed.first.locator("th, td").first.inner_text() == "Churn by plan"

    flagged = Message.objects.get(pk=answer.pk)
    assert (flagged.is_mistake, flagged.mistake_note, flagged.mistake_flagged_by_id) == (
        True,
        NOTE,
        reviewer.pk,
    )
    assert queue_shot.name == "feedback-queue.png" and queue_shot.stat().st_size > 20_000
    assert transcript_shot.name == "transcript.png" and transcript_shot.stat().st_size > 20_000


PAYLOAD = (
    "Look: <script>window.__xss=1; alert('script')</script>\n\n"
    "<img src=x onerror=\"window.__xss=2; alert('img')\">\n\n"
    "[x](javascript:window.__xss=3)\n\n"
    '<a href="javascript:window.__xss=4">raw link</a> <svg onload="window.__xss=5">\n\n'
    "[ok](https://example.invalid/)"
)


@pytest.mark.parametrize("csp", [True, False], ids=["with-csp", "sanitiser-alone"])
def test_message_script_renders_inert(live_server, page, login, reviewer, settings, csp):
    if not csp:
        # Without the Content-Security-Policy only the sanitiser stands between.
        settings.CONTENT_SECURITY_POLICY = None
    msg = f.MessageFactory(role="assistant", content=PAYLOAD)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    login(page, "reviewer", PASSWORD)

    response = page.goto(f"{live_server.url}/admin/review/chats/{msg.chat_id}/")

    assert response.status == 200
    assert ("content-security-policy" in response.headers) is csp
    page.wait_for_load_state("load")
    page.wait_for_timeout(200)  # let an image error or svg load fire, were there any
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    content = page.locator(f"#message-{msg.pk} .content")
    assert "<script>window.__xss=1; alert('script')</script>" in content.inner_text()
    assert content.locator("script, img, svg, iframe").count() == 0
    links = content.locator("a")
    hrefs = [links.nth(n).get_attribute("href") for n in range(links.count())]
    assert hrefs == ["https://example.invalid/"]
    for n in range(links.count()):
        # A link that went anywhere but its http(s) address would be the bug.
        links.nth(n).click(modifiers=["Control"])  # opens no page in this tab
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
