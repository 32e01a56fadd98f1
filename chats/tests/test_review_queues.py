"""Review queues (#19.1): each rule takes the messages it names, queues fill
themselves as rows arrive (one by one and in bulk) and on demand
(fill_review_queues, idempotent), items are claimed or assigned round robin,
and every change is audited.
"""

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from chats import queues
from chats.models import Message, MessageFeedback, MistakeCategory, Review, ReviewItem, ReviewQueue
from core.models import AuditLog
from core.tests import factories as f

pytestmark = pytest.mark.django_db

Rule = ReviewQueue.Rule


def answer(chat=None, **extra):
    return f.MessageFactory(chat=chat or f.ChatFactory(), role="assistant", **extra)


def queued(queue):
    return sorted(queue.items.values_list("message_id", flat=True))


def test_default_taxonomy_is_there():
    assert list(MistakeCategory.objects.values_list("slug", flat=True)) == [
        "wrong-number",
        "wrong-column",
        "code-error",
        "wrong-chart",
        "misread-question",
        "private-data",
        "needless-refusal",
        "other",
    ]


def test_low_rating_takes_answers_rated_at_most_n():
    queue = f.ReviewQueueFactory(rule=Rule.LOW_RATING, max_rating=2)
    low = [f.MessageFeedbackFactory(rating=r).message for r in (1, 2)]
    for rating in (3, 5, None):
        f.MessageFeedbackFactory(rating=rating)
    user_rated = f.MessageFeedbackFactory(rating=1, message=f.MessageFactory(role="user"))

    assert queues.fill(queue) == 2

    assert queued(queue) == sorted(m.pk for m in low)
    assert user_rated.message_id not in queued(queue)  # only assistant answers
    reasons = dict(queue.items.values_list("message_id", "reason"))
    assert reasons[low[0].pk] == "rated 1 of 5"
    item = queue.items.get(message=low[0])
    assert item.model_name == "gpt-4o-mini"  # from the feedback: the message has none
    assert item.status == ReviewItem.Status.PENDING


def test_failed_code_sql_error_and_ai_flag():
    failed = f.CodeExecutionFactory(is_successful=False).message
    f.CodeExecutionFactory(is_successful=True)
    both = f.CodeExecutionFactory(is_successful=True).message
    f.CodeExecutionFactory(message=both, chat=both.chat, is_successful=False)
    sql_bad = answer(error_message="no such column: plan", sql_query="select plan from t")
    answer(error_message="", sql_query="select 1")
    flagged = answer(is_mistake=True)
    reviewer_flagged = answer(is_mistake=True, mistake_flagged_by=f.UserFactory())
    unsure = answer(confidence=0.2)
    answer(confidence=0.9)

    code_q = f.ReviewQueueFactory(rule=Rule.FAILED_CODE, max_rating=None)
    sql_q = f.ReviewQueueFactory(rule=Rule.SQL_ERROR, max_rating=None)
    ai_q = f.ReviewQueueFactory(rule=Rule.AI_FLAG, max_rating=None, confidence_below=0.5)
    queues.fill_all()

    assert queued(code_q) == sorted([failed.pk, both.pk])
    assert queued(sql_q) == [sql_bad.pk]
    assert sql_q.items.get().reason == "SQL error: no such column: plan"
    assert queued(ai_q) == sorted([flagged.pk, unsure.pk])
    assert reviewer_flagged.pk not in queued(ai_q)
    assert dict(ai_q.items.values_list("message_id", "reason")) == {
        flagged.pk: "flagged a mistake",
        unsure.pk: "confidence 0.20",
    }


def test_chat_cost_takes_the_last_answer_of_each_costly_chat():
    dear = f.ChatFactory()
    first = answer(dear, created_at=dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC))
    last = answer(dear, created_at=dt.datetime(2026, 1, 1, 11, tzinfo=dt.UTC))
    f.ModelUsageFactory(chat=dear, cost=Decimal("0.60"))
    f.ModelUsageFactory(chat=dear, cost=Decimal("0.50"))
    f.ModelUsageFactory(chat=dear, cost=None)  # unpriced: adds nothing
    cheap = f.ChatFactory(user=None)  # anonymous
    answer(cheap)
    f.ModelUsageFactory(chat=cheap, user=None, cost=Decimal("1.00"))  # not above 1.00
    no_usage = answer()
    queue = f.ReviewQueueFactory(rule=Rule.CHAT_COST, max_rating=None, min_chat_cost=1)

    assert queues.fill(queue) == 1
    assert queued(queue) == [last.pk]
    assert queue.items.get().reason == "chat cost 1.1000"

    # a later answer of the same chat arriving: the chat is in the queue already
    queues.fill(queue, [first.pk, no_usage.pk, answer(dear).pk])
    assert queued(queue) == [last.pk]


def test_sample_is_deterministic_and_near_its_share():
    msgs = [answer(model_name=("gpt-4o" if n % 2 else "claude")) for n in range(400)]
    queue = f.ReviewQueueFactory(rule=Rule.SAMPLE, max_rating=None, sample_percent=Decimal(25))
    queues.fill(queue)
    taken = queued(queue)

    keys = {m.pk: queues.message_key(m.source and m.source.name, m.source_pk, m.pk) for m in msgs}
    expected = [m.pk for m in msgs if queues.sample_bucket(queue.name, keys[m.pk]) < 2500]
    assert taken == expected
    assert 60 <= len(taken) <= 140
    for model in ("gpt-4o", "claude"):  # per model too
        share = queue.items.filter(model_name=model).count() / 200
        assert 0.12 <= share <= 0.38, model
    # the same messages again, whatever the order of the fill
    queue.items.all().delete()
    queues.fill(queue, [m.pk for m in reversed(msgs)])
    assert queued(queue) == taken


def test_fill_is_idempotent_and_the_command_reports(capsys):
    queue = f.ReviewQueueFactory(name="Low", rule=Rule.LOW_RATING, max_rating=1)
    for _ in range(3):
        f.MessageFeedbackFactory(rating=1)
    out = StringIO()

    call_command("fill_review_queues", stdout=out)
    call_command("fill_review_queues", stdout=out)

    assert queue.items.count() == 3
    assert out.getvalue().splitlines() == [
        "Low: 3 added",
        "3 items added to 1 queue(s)",
        "Low: 0 added",
        "0 items added to 1 queue(s)",
    ]
    entry = AuditLog.objects.get(action="fill_review_queue")
    assert entry.actor is None
    assert entry.new_values["added"] == 3
    with pytest.raises(CommandError, match="no such queue: Nope"):
        call_command("fill_review_queues", "Nope")


def test_inactive_queues_are_not_filled():
    queue = f.ReviewQueueFactory(rule=Rule.LOW_RATING, max_rating=1, is_active=False)
    f.MessageFeedbackFactory(rating=1)
    call_command("fill_review_queues", stdout=StringIO())
    assert queue.items.count() == 0


# Filling as rows arrive -----------------------------------------------------


def test_a_rating_saved_fills_the_queue_when_the_transaction_commits(
    django_capture_on_commit_callbacks,
):
    queue = f.ReviewQueueFactory(rule=Rule.LOW_RATING, max_rating=2)
    msg = answer()
    with django_capture_on_commit_callbacks(execute=True):
        MessageFeedback.objects.create(message=msg, rating=1)
    assert queued(queue) == [msg.pk]


def test_bulk_writes_fill_the_queues(django_capture_on_commit_callbacks):
    """The importers and the API write with bulk_create/bulk_update."""
    low = f.ReviewQueueFactory(rule=Rule.LOW_RATING, max_rating=2)
    sql = f.ReviewQueueFactory(rule=Rule.SQL_ERROR, max_rating=None)
    chat = f.ChatFactory()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        made = Message.objects.bulk_create(
            [
                Message(chat=chat, role="assistant", content="a", error_message="boom"),
                Message(chat=chat, role="assistant", content="b"),
                Message(chat=chat, role="user", content="c", error_message="user side"),
            ]
        )
        MessageFeedback._default_manager.bulk_create([MessageFeedback(message=made[1], rating=4)])
    assert len(callbacks) == 2
    assert queued(sql) == [made[0].pk]
    assert queued(low) == []

    # a re-import lowers the rating (bulk_update)
    rating = MessageFeedback.objects.get(message=made[1])
    rating.rating = 1
    with django_capture_on_commit_callbacks(execute=True):
        MessageFeedback.objects.bulk_update([rating], ["rating"])
    assert queued(low) == [made[1].pk]


def test_no_active_queue_costs_one_query(django_capture_on_commit_callbacks):
    msg = answer()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        MessageFeedback.objects.create(message=msg, rating=1)
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        for callback in callbacks:
            callback()
    assert len(ctx.captured_queries) == 1


# Assignment -------------------------------------------------------------------


def test_round_robin_gives_items_in_turn():
    ann, bob, cy = (f.UserFactory(username=n, groups=["Staff"]) for n in ("ann", "bob", "cy"))
    queue = f.ReviewQueueFactory(
        rule=Rule.LOW_RATING,
        max_rating=1,
        assignment=ReviewQueue.Assignment.ROUND_ROBIN,
        reviewers_per_item=2,
    )
    queue.reviewers.set([ann, bob, cy])
    msgs = [f.MessageFeedbackFactory(rating=1).message for _ in range(3)]

    queues.fill(queue, [m.pk for m in msgs[:2]])
    queues.fill(queue, [msgs[2].pk])

    assigned = [
        sorted(queue.items.get(message=m).reviews.values_list("reviewer__username", flat=True))
        for m in msgs
    ]
    assert assigned == [["ann", "bob"], ["ann", "cy"], ["bob", "cy"]]
    assert list(queues.open_items(queue, ann).values_list("message_id", flat=True)) == [
        msgs[0].pk,
        msgs[1].pk,
    ]
    fills = AuditLog.objects.filter(action="fill_review_queue").order_by("id")
    assert [e.new_values["assigned"] for e in fills] == [
        {"ann": 2, "bob": 1, "cy": 1},
        {"bob": 1, "cy": 1},
    ]


def test_claim_queue_offers_an_item_until_it_has_its_reviewers(rf):
    ann, bob, cy = (f.UserFactory(groups=["Staff"]) for _ in range(3))
    queue = f.ReviewQueueFactory(reviewers_per_item=2)
    item = f.ReviewItemFactory(queue=queue)

    for user in (ann, bob):
        request = rf.post("/")
        request.user = user
        assert queues.next_item(queue, user) == item
        queues.claim(request, item)

    assert queues.next_item(queue, cy) is None
    assert queues.next_item(queue, ann) == item  # claimed, not done
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.IN_PROGRESS
    assert AuditLog.objects.filter(action="claim_review_item").count() == 2


def test_complete_and_agreement_states(rf):
    ann, bob = f.UserFactory(groups=["Staff"]), f.UserFactory(groups=["Staff"])
    queue = f.ReviewQueueFactory(reviewers_per_item=2)
    agreed, split = f.ReviewItemFactory(queue=queue), f.ReviewItemFactory(queue=queue)

    def as_(user):
        request = rf.post("/", REMOTE_ADDR="203.0.113.4")
        request.user = user
        return request

    queues.complete(as_(ann), agreed, "correct")
    agreed.refresh_from_db()
    assert (agreed.status, agreed.verdict) == ("in_progress", None)
    queues.complete(as_(bob), agreed, "correct")
    queues.complete(as_(ann), split, "correct")
    queues.complete(as_(bob), split, "wrong", note="Sum is off")
    agreed.refresh_from_db()
    split.refresh_from_db()
    assert (agreed.status, agreed.verdict) == ("done", "correct")
    assert (split.status, split.verdict) == ("done", None)
    assert list(queues.disagreements()) == [split]
    # bob's "wrong" flagged the message
    split.message.refresh_from_db()
    assert split.message.is_mistake
    assert split.message.mistake_flagged_by == bob
    assert split.message.mistake_note == "Review: Sum is off"

    admin = f.UserFactory(groups=["Admins"])
    queues.settle(as_(admin), split, "partly", "Only the total is off")
    split.refresh_from_db()
    assert (split.verdict, split.settled_by, split.settle_note) == (
        "partly",
        admin,
        "Only the total is off",
    )
    assert list(queues.disagreements()) == []
    actions = list(AuditLog.objects.order_by("id").values_list("action", flat=True))
    assert actions.count("complete_review") == 4
    assert actions.count("settle_review_item") == 1
    assert actions.count("flag_mistake") == 1


# Agreement and progress -----------------------------------------------------


def test_cohens_kappa_by_hand():
    # 10 items, 7 agreements. Rater a: 5 correct, 3 wrong, 2 partly; rater b:
    # 6 correct, 3 wrong, 1 partly.
    pairs = (
        [("correct", "correct")] * 4
        + [("wrong", "wrong")] * 2
        + [("partly", "partly")]
        + [("correct", "wrong"), ("wrong", "correct"), ("partly", "correct")]
    )
    po = 7 / 10
    a = {"correct": 5, "wrong": 3, "partly": 2}
    b = {"correct": 6, "wrong": 3, "partly": 1}
    assert [sum(1 for x, _ in pairs if x == k) for k in a] == list(a.values())
    assert [sum(1 for _, y in pairs if y == k) for k in b] == list(b.values())
    pe = sum(a[k] * b[k] for k in a) / 100
    assert queues.cohens_kappa(pairs) == pytest.approx((po - pe) / (1 - pe))
    assert queues.cohens_kappa([("correct", "correct")] * 3) is None  # undefined
    assert queues.cohens_kappa([]) is None
    assert queues.cohens_kappa([("correct", "wrong"), ("wrong", "correct")]) == pytest.approx(-1)


def test_agreement_per_queue_and_pair():
    ann, bob, cy = (f.UserFactory(username=n) for n in ("ann", "bob", "cy"))
    queue = f.ReviewQueueFactory(reviewers_per_item=2)
    verdicts = [
        (ann, "correct", bob, "correct"),
        (ann, "wrong", bob, "wrong"),
        (ann, "correct", bob, "wrong"),
        (bob, "partly", cy, "partly"),
    ]
    for x, vx, y, vy in verdicts:
        item = f.ReviewItemFactory(queue=queue)
        f.ReviewFactory(item=item, reviewer=x, verdict=vx)
        f.ReviewFactory(item=item, reviewer=y, verdict=vy)
    f.ReviewFactory(item=f.ReviewItemFactory(queue=queue), reviewer=cy)  # one review: no pair

    result = queues.agreement(queue)

    assert (result["items"], result["agreed"]) == (4, 3)
    all_pairs = [(vx, vy) for x, vx, y, vy in verdicts]
    assert result["kappa"] == pytest.approx(queues.cohens_kappa(all_pairs))
    assert [(p["a"], p["b"], p["items"], p["agreed"]) for p in result["pairs"]] == [
        (ann.pk, bob.pk, 3, 2),
        (bob.pk, cy.pk, 1, 1),
    ]


def test_progress_today_week_and_median(settings):
    settings.TIME_ZONE = "UTC"
    now = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)  # a Wednesday
    ann = f.UserFactory(username="ann")
    queue = f.ReviewQueueFactory(name="Q")
    for started, completed in [
        (now - dt.timedelta(seconds=30), now),  # today
        (now.replace(hour=0) - dt.timedelta(seconds=50), now.replace(hour=0)),  # today 00:00
        (
            dt.datetime(2026, 11, 30, 9, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 30, 9, 2, tzinfo=dt.UTC),
        ),
        (None, dt.datetime(2026, 11, 29, 23, 59, tzinfo=dt.UTC)),  # last week, no start
    ]:
        f.ReviewFactory(
            item=f.ReviewItemFactory(queue=queue),
            reviewer=ann,
            started_at=started,
            completed_at=completed,
        )
    Review.objects.create(item=f.ReviewItemFactory(queue=queue), reviewer=ann)  # open

    assert queues.progress(queue, now=now) == [
        {
            "queue": "Q",
            "reviewer": "ann",
            "today": 2,
            "week": 3,
            "total": 4,
            "median_seconds": 50,
        }
    ]


def test_demo_queues_fill_and_review():
    for rating in (1, 2, 5):
        f.MessageFeedbackFactory(rating=rating)
    ann, bob = f.UserFactory(), f.UserFactory()

    made = queues.demo_queues([ann, bob], reviewed=5)
    queues.demo_queues([ann, bob], reviewed=5)  # again: nothing doubles

    low = next(q for q in made if q.name == "Low ratings")
    assert low.items.count() == 2
    assert set(low.items.values_list("status", flat=True)) == {"done"}
    assert Review.objects.filter(item__queue=low).count() == 2
    assert ReviewQueue.objects.count() == 4
