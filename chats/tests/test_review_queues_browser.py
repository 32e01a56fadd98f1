"""A reviewer clears a queue of 50 items by keyboard alone (Debian's Chromium
through Playwright, #19): Enter on "Start reviewing", then for each item a
verdict key (1/2/3) and Enter, or s to skip; ? opens the help, Esc closes
it; j/k move between items. Screenshots: test-artifacts/review-item.png,
test-artifacts/review-help.png and test-artifacts/review-queue-done.png.
"""

import importlib

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.hashers import make_password
from django.db.models import Count

from chats import queues
from chats.models import Message, ReviewItem, ReviewQueue
from core.tests import factories as f

from .test_review_browser import _role_groups  # noqa: F401 (the groups, after a flush)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PASSWORD = "review-pass-4711"
ITEMS = 50
KEYS = {"correct": "1", "partly": "2", "wrong": "3"}


@pytest.fixture
def reviewer(_role_groups):  # noqa: F811
    return f.UserFactory(username="kim", groups=["Staff"], password=make_password(PASSWORD))


@pytest.fixture
def queue():
    # The taxonomy comes from a data migration; a transactional test before
    # this one may have flushed it, so put it back as the migration does.
    taxonomy = importlib.import_module("chats.migrations.0007_review_taxonomy_groups")
    taxonomy.add_taxonomy(django_apps, None)
    queue = ReviewQueue.objects.create(
        name="Low ratings", rule=ReviewQueue.Rule.LOW_RATING, max_rating=2
    )
    source = f.SourceFactory(name="auto-analyst")
    for n in range(ITEMS):
        chat = f.ChatFactory(title=f"Sales question {n}", source=source, source_pk=f"c-{n}")
        f.MessageFactory(chat=chat, role="user", content=f"What were **sales** in region {n}?")
        answer = f.MessageFactory(
            chat=chat,
            role="assistant",
            content=f"Sales in region {n} were **{1000 + n}**.\n\n| month | sales |\n|---|---:|\n"
            f"| Jan | {400 + n} |\n| Feb | {600} |",
            model_name="gpt-4o" if n % 2 else "claude-3-5-sonnet",
            sql_query=f"select month, sum(amount) from sales where region = {n} group by month",
            query_result={"columns": ["month", "sales"], "rows": [["Jan", 400 + n], ["Feb", 600]]},
        )
        if n % 5 == 0:
            f.CodeExecutionFactory(
                message=answer, chat=chat, is_successful=False, output="KeyError: 'region'"
            )
        f.MessageFeedbackFactory(message=answer, rating=1 + n % 2)
    queues.fill(queue)
    assert queue.items.count() == ITEMS
    return queue


def verdict_for(n):
    if n % 10 == 9:
        return "skip"
    return ("correct", "partly", "wrong")[n % 3]


def test_a_reviewer_clears_a_queue_of_fifty_by_keyboard(
    live_server, page, login, screenshot, reviewer, queue
):
    login(page, "kim", PASSWORD)
    page.goto(f"{live_server.url}/admin/review/queues/")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # "Start reviewing" has the focus

    items = list(queue.items.order_by("pk"))
    shots = {}
    for n, item in enumerate(items):
        assert page.url == f"{live_server.url}/admin/review/queues/items/{item.pk}/", n
        if n == 0:
            page.wait_for_load_state("load")
            page.keyboard.press("?")
            assert page.locator("#review-help").is_visible()
            shots["help"] = screenshot(page, "review-help")
            page.keyboard.press("Escape")
            assert not page.locator("#review-help").is_visible()
            # j and k move to the next item and back, changing nothing
            with page.expect_navigation():
                page.keyboard.press("j")
            assert page.url.endswith(f"/items/{items[1].pk}/")
            with page.expect_navigation():
                page.keyboard.press("k")
            assert page.url.endswith(f"/items/{item.pk}/")
        verdict = verdict_for(n)
        if verdict == "skip":
            with page.expect_navigation():
                page.keyboard.press("s")
            continue
        page.keyboard.press(KEYS[verdict])
        assert page.locator(f"input[name=verdict][value={verdict}]").is_checked()
        if verdict == "wrong" and n == 2:
            # Tab to the first category, Space ticks it, Enter completes
            page.keyboard.press("Tab")
            page.keyboard.press("Space")
            assert page.locator("input[name=categories]").first.is_checked()
            shots["item"] = screenshot(page, "review-item")
        with page.expect_navigation():
            page.keyboard.press("Enter")

    assert page.url == f"{live_server.url}/admin/review/queues/{queue.pk}/"
    assert "nothing left for you to review" in page.locator(".messagelist").inner_text()
    shots["done"] = screenshot(page, "review-queue-done")

    statuses = dict(
        ReviewItem.objects.filter(queue=queue)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    assert statuses == {"done": 45, "skipped": 5}
    for n, item in enumerate(items):
        item.refresh_from_db()
        verdict = verdict_for(n)
        if verdict == "skip":
            assert item.status == "skipped" and item.verdict is None
            continue
        assert item.verdict == verdict, n
        review = item.reviews.get()
        assert review.reviewer == reviewer
        assert review.started_at <= review.completed_at
        if verdict == "wrong":
            assert Message.objects.get(pk=item.message_id).is_mistake
    first_wrong = items[2]
    assert [c.slug for c in first_wrong.reviews.get().categories.all()] == ["wrong-number"]
    assert page.locator("#for-you").inner_text() == "0"
    for path in shots.values():
        assert path.stat().st_size > 20_000
