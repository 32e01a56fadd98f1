"""The review pages (#19.2, #19.3, #19.5, #19.6): the queue list, the review
page with the question and the answer side by side, "complete and next",
skip, settle, results, exports; who may open what; query counts pinned.
"""

import csv
import io
import json

import pytest
from django.urls import reverse

from chats import queues
from chats.models import MistakeCategory, ReviewItem, ReviewQueue
from core.models import AuditLog
from core.tests import factories as f

from .test_rendering import parse_html

pytestmark = pytest.mark.django_db


@pytest.fixture
def rita():
    return f.UserFactory(username="rita", groups=["Staff"])


@pytest.fixture
def staff(client, rita):
    client.force_login(rita)
    return client


def as_group(client, group):
    client.force_login(f.UserFactory(groups=[group]))
    return client


def conversation(n=0, rating=1, model="gpt-4o"):
    chat = f.ChatFactory(title=f"Churn {n}")
    f.MessageFactory(chat=chat, role="user", content=f"Why did **churn** rise? ({n})")
    msg = f.MessageFactory(
        chat=chat,
        role="assistant",
        content=f"Because of *prices* ({n}).",
        model_name=model,
        sql_query="select plan, count(*) from churn group by plan",
        query_result={"columns": ["plan", "n"], "rows": [["pro", 4], ["free", 9]]},
    )
    f.CodeExecutionFactory(message=msg, chat=chat, is_successful=False, output="KeyError: 'x'")
    f.MessageFeedbackFactory(message=msg, rating=rating)
    f.MessageFactory(chat=chat, role="user", content="Thanks")
    return msg


@pytest.fixture
def queue():
    queue = f.ReviewQueueFactory(name="Low ratings", rule=ReviewQueue.Rule.LOW_RATING, max_rating=2)
    for n in range(3):
        conversation(n)
    queues.fill(queue)
    return queue


def test_queue_list_shows_counts(staff, queue):
    response = staff.get(reverse("queues:list"))

    assert response.status_code == 200
    row = parse_html(response.content).find("table", cls="review-queues").find("tbody").find("tr")
    cells = [td.squashed() for td in row.find_all("td")]
    assert cells[:5] == ["Rating at most N", "3", "0", "0", "0"]


def test_start_claims_the_first_item_and_the_page_shows_it(staff, rita, queue):
    first = queue.items.order_by("pk").first()

    response = staff.post(reverse("queues:start", args=[queue.pk]))

    assert response.status_code == 302
    assert response["Location"] == reverse("queues:item", args=[first.pk])
    first.refresh_from_db()
    assert first.status == ReviewItem.Status.IN_PROGRESS
    assert first.reviews.get().reviewer == rita
    page = parse_html(staff.get(response["Location"]).content)
    question = page.find("section", cls="question")
    assert question.find("strong").text == "churn"
    answer = page.find("section", cls="answer")
    assert answer.find("em").text == "prices"
    assert [th.text for th in answer.find("table", cls="result").find_all("th")] == ["plan", "n"]
    assert answer.find("details", cls="execution").attrs["class"] == "execution failed"
    focus = page.find("li", cls="focus")
    assert focus.attrs["id"] == f"message-{first.message_id}"
    labels = [label.squashed() for label in page.find("fieldset", cls="verdicts").find_all("label")]
    assert labels == ["1 Correct", "2 Partly correct", "3 Wrong"]
    categories = page.find("fieldset", cls="categories").find_all("input")
    assert len(categories) == MistakeCategory.objects.filter(is_active=True).count() == 8
    keys = json.loads(page.by_id("review-keys").text)
    second = queue.items.order_by("pk")[1]
    assert keys == {
        "next": reverse("queues:item", args=[second.pk]),
        "prev": "",
        "canReview": True,
    }
    assert page.find("script", src="/static/chats/review.js") is not None


def test_complete_and_next(staff, rita, queue):
    items = list(queue.items.order_by("pk"))
    wrong_column = MistakeCategory.objects.get(slug="wrong-column")
    staff.post(reverse("queues:start", args=[queue.pk]))
    token = queues.opened_token()

    response = staff.post(
        reverse("queues:item", args=[items[0].pk]),
        {
            "verdict": "wrong",
            "categories": [wrong_column.pk],
            "corrected_answer": "Churn rose on the pro plan.",
            "note": "Invented the plan column",
            "opened": token,
            "action": "complete",
        },
    )

    assert response["Location"] == reverse("queues:item", args=[items[1].pk])
    items[0].refresh_from_db()
    assert (items[0].status, items[0].verdict) == ("done", "wrong")
    review = items[0].reviews.get()
    assert list(review.categories.all()) == [wrong_column]
    assert review.corrected_answer == "Churn rose on the pro plan."
    message = items[0].message
    message.refresh_from_db()
    assert message.is_mistake and message.mistake_flagged_by == rita
    assert message.mistake_note == (
        "Review: Wrong or invented column or table; Invented the plan column"
    )
    entry = AuditLog.objects.get(action="complete_review")
    assert entry.actor == rita
    assert entry.old_values["status"] == "in_progress"
    assert entry.new_values == {
        "verdict": "wrong",
        "categories": ["wrong-column"],
        "corrected_answer": "Churn rose on the pro plan.",
        "note": "Invented the plan column",
        "status": "done",
        "final_verdict": "wrong",
    }
    # the next one was claimed for rita
    assert items[1].reviews.get().reviewer == rita


def test_skip_and_the_end_of_the_queue(staff, queue):
    items = list(queue.items.order_by("pk"))
    for item in items:
        response = staff.post(reverse("queues:item", args=[item.pk]), {"action": "skip"})
    assert response["Location"] == reverse("queues:queue", args=[queue.pk])
    assert set(queue.items.values_list("status", flat=True)) == {"skipped"}
    assert AuditLog.objects.filter(action="skip_review_item").count() == 3
    follow = staff.get(response["Location"])
    assert [m.message for m in follow.context["messages"]] == [
        *(f"Item {item.pk} skipped." for item in items),
        "“Low ratings” has nothing left for you to review.",
    ]


def test_a_verdict_is_required(staff, queue):
    item = queue.items.first()
    response = staff.post(reverse("queues:item", args=[item.pk]), {"action": "complete"})
    assert response.status_code == 400
    item.refresh_from_db()
    assert item.status == "pending"


def test_round_robin_items_are_not_others_to_take(client, queue):
    ann, bob = f.UserFactory(groups=["Staff"]), f.UserFactory(groups=["Staff"])
    queue.assignment = ReviewQueue.Assignment.ROUND_ROBIN
    queue.save()
    queue.reviewers.set([ann])
    item = f.ReviewItemFactory(queue=queue, message=conversation(9))
    client.force_login(bob)

    response = client.post(reverse("queues:item", args=[item.pk]), {"verdict": "correct"})
    skipped = client.post(reverse("queues:item", args=[item.pk]), {"action": "skip"})

    assert response.status_code == skipped.status_code == 302
    item.refresh_from_db()
    assert item.status == "pending" and not item.reviews.exists()
    assert not AuditLog.objects.filter(action="skip_review_item").exists()


def test_settle_is_for_admins(client, queue):
    item = queue.items.first()
    for user in (f.UserFactory(), f.UserFactory()):
        f.ReviewFactory(item=item, reviewer=user, verdict="correct" if user.pk % 2 else "wrong")
    item.status = "done"
    item.save()

    assert (
        as_group(client, "Managers")
        .post(reverse("queues:settle", args=[item.pk]), {"verdict": "wrong"})
        .status_code
        == 403
    )
    listed = client.get(reverse("queues:disagreements"))
    assert [i.pk for i in listed.context["rows"]] == [item.pk]
    response = as_group(client, "Admins").post(
        reverse("queues:settle", args=[item.pk]), {"verdict": "wrong", "note": "total off"}
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.verdict == "wrong"
    item.message.refresh_from_db()
    assert item.message.is_mistake


def test_staff_may_not_read_results_managers_may(client, queue):
    for name in ("results", "disagreements", "export_csv", "export_jsonl"):
        assert as_group(client, "Staff").get(reverse(f"queues:{name}")).status_code == 403
        assert as_group(client, "Managers").get(reverse(f"queues:{name}")).status_code == 200


# Export ---------------------------------------------------------------------


def _reviewed(queue, verdicts):
    reviews = []
    for item, verdict in zip(queue.items.order_by("pk"), verdicts, strict=False):
        reviews.append(
            f.ReviewFactory(
                item=item,
                reviewer=f.UserFactory(username=f"r-{item.pk}"),
                verdict=verdict,
                note='=HYPERLINK("http://x")' if verdict == "wrong" else "fine",
            )
        )
        item.status, item.verdict = "done", verdict
        item.save()
    return reviews


def test_export_csv_escapes_formulas_and_keeps_filters(client, queue):
    _reviewed(queue, ["correct", "wrong", "partly"])
    first = queue.items.order_by("pk").first()
    first.message.content = "-1 is the churn"
    first.message.save()
    client = as_group(client, "Managers")

    body = b"".join(client.get(reverse("queues:export_csv")).streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))

    assert [r["verdict"] for r in rows] == ["correct", "wrong", "partly"]
    assert rows[0]["answer"] == "'-1 is the churn"
    assert rows[1]["note"] == '\'=HYPERLINK("http://x")'
    assert rows[0]["question"] == "Why did **churn** rise? (0)"
    assert rows[0]["queue"] == "Low ratings"
    filtered = client.get(reverse("queues:export_csv"), {"verdict": "wrong"})
    rows = list(csv.DictReader(io.StringIO(b"".join(filtered.streaming_content).decode())))
    assert [r["verdict"] for r in rows] == ["wrong"]


def test_export_jsonl(client, queue):
    reviews = _reviewed(queue, ["correct", "wrong"])
    reviews[1].categories.set(MistakeCategory.objects.filter(slug__in=["code-error", "other"]))
    client = as_group(client, "Managers")

    response = client.get(reverse("queues:export_jsonl"), {"queue": queue.pk, "final": "wrong"})

    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["categories"] == ["code-error", "other"]
    assert row["note"] == '=HYPERLINK("http://x")'  # JSON needs no escaping
    assert row["answer"] == "Because of *prices* (1)."
    assert response["Content-Type"].startswith("application/x-ndjson")


def test_csv_cell():
    from chats.review_views import csv_cell

    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("ok = fine") == "ok = fine"
    assert csv_cell(None) == ""


# Query counts -----------------------------------------------------------------


@pytest.mark.parametrize("queues_made", [1, 8])
def test_queue_list_query_count(staff, django_assert_num_queries, queues_made):
    for _n in range(queues_made):
        q = f.ReviewQueueFactory()
        f.ReviewItemFactory(queue=q)
    # session, user, its permissions (user, groups); the queues; their counts
    with django_assert_num_queries(6):
        response = staff.get(reverse("queues:list"))
    assert response.status_code == 200


@pytest.mark.parametrize("extra_messages", [0, 30])
@pytest.mark.parametrize("claimed", [False, True])
def test_review_page_query_count(staff, queue, django_assert_num_queries, extra_messages, claimed):
    item = queue.items.order_by("pk").first()
    for n in range(extra_messages):
        f.MessageFactory(chat=item.message.chat, role="user", content=f"more {n}")
    if claimed:
        staff.post(reverse("queues:start", args=[queue.pk]))
    # session, user, permissions (user, groups); the item with its queue, message
    # and settler; its reviews (and, when there are some, their categories); the
    # chat; the transcript page (count, target, before, rows, code runs);
    # previous and next item; the categories
    with django_assert_num_queries(16 if claimed else 15):
        response = staff.get(reverse("queues:item", args=[item.pk]))
    assert response.status_code == 200
    assert len(response.context["window"]) == (3 if extra_messages == 0 else 4)
