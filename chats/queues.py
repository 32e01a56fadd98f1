"""Review queues: which assistant messages each queue's rule takes, filling
(as rows arrive and for the backlog), assignment, the reviewers' work, and
agreement (Cohen's kappa) and progress figures.

Every change a person makes is audited (core.audit); a fill, run by the
arrival of rows or by ``fill_review_queues``, writes one audit entry per
queue it added items to.

A chat's cost is the sum of its ledger rows, read through the reverse
relation ``chat.usage_records`` (the usage app's ModelUsage): chats imports
no app above it.
"""

import hashlib
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from core import audit
from core.models import AuditLog

from .models import Chat, CodeExecution, Message, MistakeCategory, Review, ReviewItem, ReviewQueue

CHUNK = 2000
SAMPLE_BUCKETS = 10_000  # a sample's share is kept to 0.01 %
DEFAULT_CONFIDENCE_BELOW = 0.5
OPENED_SALT = "chats.review.opened"
OPENED_MAX_AGE = 24 * 3600

Status = ReviewItem.Status
Verdict = ReviewItem.Verdict
Rule = ReviewQueue.Rule


def _audit(request, action, obj=None, old=None, new=None):
    if request is not None:
        return audit.record(request, action, obj, old=old, new=new)
    return AuditLog.objects.create(
        actor=None,
        action=action,
        resource_type=obj._meta.label_lower if obj is not None else None,
        resource_id=str(obj.pk) if obj is not None else None,
        old_values=old,
        new_values=new,
    )


# Which messages a rule takes ------------------------------------------------


def sample_bucket(queue_key, message_key):
    """0 … 9999, from a hash of the queue and the message: the same message
    always falls in the same bucket, so a sample is stable across fills."""
    digest = hashlib.blake2b(f"{queue_key}:{message_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SAMPLE_BUCKETS


def message_key(source_name, source_pk, pk):
    """A message's identity for sampling: where it came from (its source and
    key there) rather than our id, so the same data gives the same sample in
    any database; our id for a message of no source."""
    return f"{source_name}:{source_pk}" if source_pk else f"id:{pk}"


def in_sample(queue, row):
    """``row``: a message's id, source__name and source_pk. The queue is
    known by its name (renaming a sample queue draws a new sample)."""
    threshold = int((queue.sample_percent or 0) * SAMPLE_BUCKETS / 100)
    key = message_key(row["source__name"], row["source_pk"], row["id"])
    return sample_bucket(queue.name, key) < threshold


def _usage_model():
    return Chat._meta.get_field("usage_records").related_model


def chat_cost_subquery():
    """The chat's spend (sum of its ledger rows' cost) for ``OuterRef("chat")``."""
    usage = _usage_model()
    return Subquery(
        usage.objects.filter(chat=OuterRef("chat"))
        .order_by()
        .values("chat")
        .annotate(spend=Sum("cost"))
        .values("spend")[:1]
    )


def _matches(queue, messages):
    """[(message row, reason)] of ``messages`` (assistant messages) the rule takes."""
    fields = ["id", "chat_id", "model_name", "feedback__model_name", "chat__source_id"]
    rule = queue.rule
    if rule == Rule.LOW_RATING:
        rows = messages.filter(feedback__rating__lte=queue.max_rating).values(
            *fields, "feedback__rating"
        )
        return [(r, f"rated {r['feedback__rating']} of 5") for r in rows]
    if rule == Rule.FAILED_CODE:
        failed = CodeExecution.objects.filter(message=OuterRef("pk"), is_successful=False)
        rows = messages.filter(Exists(failed)).values(*fields)
        return [(r, "a code execution failed") for r in rows]
    if rule == Rule.SQL_ERROR:
        rows = (
            messages.exclude(error_message__isnull=True)
            .exclude(error_message="")
            .values(*fields, "error_message")
        )
        return [(r, f"SQL error: {r['error_message'][:150]}") for r in rows]
    if rule == Rule.AI_FLAG:
        below = (
            queue.confidence_below
            if queue.confidence_below is not None
            else DEFAULT_CONFIDENCE_BELOW
        )
        # The application's own flag, not one a reviewer here set.
        flagged = Q(is_mistake=True, mistake_flagged_by__isnull=True)
        rows = messages.filter(flagged | Q(confidence__lt=below)).values(
            *fields, "is_mistake", "mistake_flagged_by", "confidence"
        )
        return [
            (
                r,
                "flagged a mistake"
                if r["is_mistake"] and r["mistake_flagged_by"] is None
                else f"confidence {r['confidence']:.2f}",
            )
            for r in rows
        ]
    if rule == Rule.CHAT_COST:
        rows = (
            messages.annotate(chat_spend=chat_cost_subquery())
            .filter(chat_spend__gt=queue.min_chat_cost)
            .order_by("chat_id", "-created_at", "-id")
            .values(*fields, "chat_spend")
        )
        # One item per chat: its latest assistant message.
        last = {}
        for r in rows:
            last.setdefault(r["chat_id"], r)
        return [(r, f"chat cost {r['chat_spend']:.4f}") for r in last.values()]
    if rule == Rule.SAMPLE:
        rows = messages.values(*fields, "source__name", "source_pk")
        return [(r, f"sampled {queue.sample_percent} %") for r in rows if in_sample(queue, r)]
    return []


def _assistant_messages(ids=None):
    messages = Message.objects.filter(role=Message.Role.ASSISTANT).order_by()
    return messages if ids is None else messages.filter(pk__in=ids)


def _chunks(ids):
    ids = sorted(set(ids))
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _backlog_chunks():
    """Assistant message ids of the whole table, CHUNK at a time (keyset)."""
    last = 0
    while True:
        ids = list(
            _assistant_messages()
            .filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", flat=True)[:CHUNK]
        )
        if not ids:
            return
        yield ids
        last = ids[-1]


def fill(queue, message_ids=None, request=None):
    """Add the messages the queue's rule takes and it does not hold yet.

    ``message_ids``: only those (rows that just arrived); None: the whole
    table (the backlog), CHUNK messages at a time, each chunk in its own
    transaction (an interrupted run keeps what it did; running it again
    carries on). Idempotent: a message is in a queue at most once (a unique
    constraint; conflicts are ignored). Returns how many items it added.
    """
    chunks = _backlog_chunks() if message_ids is None else _chunks(message_ids)
    created, assigned = [], Counter()
    for ids in chunks:
        with transaction.atomic():
            new = _fill_chunk(queue, ids)
            assigned.update(_assign_round_robin(queue, new))
        created += new
    if created:
        _audit(
            request,
            "fill_review_queue",
            queue,
            new={
                "added": len(created),
                "first_messages": sorted(created)[:20],
                **({"assigned": dict(assigned)} if assigned else {}),
            },
        )
    return len(created)


def _fill_chunk(queue, ids):
    matches = _matches(queue, _assistant_messages(ids))
    if not matches:
        return []
    if queue.rule == Rule.CHAT_COST:
        # one item per chat, whichever of its messages came first
        held_chats = set(
            queue.items.filter(message__chat_id__in={r["chat_id"] for r, _ in matches})
            .values_list("message__chat_id", flat=True)
            .distinct()
        )
        matches = [(r, why) for r, why in matches if r["chat_id"] not in held_chats]
    held = set(
        queue.items.filter(message_id__in=[r["id"] for r, _ in matches]).values_list(
            "message_id", flat=True
        )
    )
    new = [
        ReviewItem(
            queue=queue,
            message_id=r["id"],
            reason=why[:200],
            model_name=r["model_name"] or r["feedback__model_name"] or "",
            source_id=r["chat__source_id"],
        )
        for r, why in matches
        if r["id"] not in held
    ]
    ReviewItem.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
    return [item.message_id for item in new]


def _assign_round_robin(queue, message_ids):
    """Round robin: give each new item to the next reviewer(s) in turn.

    Returns {username: items assigned} (empty for a claim queue, or one
    without reviewers, whose items anyone with the right may claim)."""
    if queue.assignment != ReviewQueue.Assignment.ROUND_ROBIN:
        return {}
    reviewers = list(queue.reviewers.order_by("pk"))
    if not reviewers:
        return {}
    per_item = min(queue.reviewers_per_item, len(reviewers))
    items = queue.items.filter(message_id__in=message_ids, reviews__isnull=True).order_by("pk")
    turn = ReviewQueue.objects.select_for_update().get(pk=queue.pk).round_robin_next
    reviews, counts = [], Counter()
    for item in items:
        for n in range(per_item):
            reviewer = reviewers[(turn + n) % len(reviewers)]
            reviews.append(Review(item=item, reviewer=reviewer))
            counts[reviewer.get_username()] += 1
        turn = (turn + per_item) % len(reviewers)
    Review.objects.bulk_create(reviews, batch_size=500)
    ReviewQueue.objects.filter(pk=queue.pk).update(round_robin_next=turn)
    queue.round_robin_next = turn
    return dict(counts)


def fill_for_messages(message_ids):
    """Fill every active queue with those of ``message_ids`` its rule takes
    (called as messages, feedback and code executions arrive)."""
    ids = {pk for pk in message_ids if pk is not None}
    if not ids:
        return {}
    return {
        queue.name: added
        for queue in ReviewQueue.objects.filter(is_active=True)
        if (added := fill(queue, ids))
    }


def fill_all(queues=None):
    """The backlog: every active queue (or ``queues``) over the whole table."""
    queues = ReviewQueue.objects.filter(is_active=True) if queues is None else queues
    return {queue.name: fill(queue) for queue in queues}


def schedule_fill(message_ids):
    """Fill for these messages once the transaction that wrote them commits
    (then the feedback and code runs of the same import are there too)."""
    ids = {pk for pk in message_ids if pk is not None}
    if ids:
        transaction.on_commit(lambda: fill_for_messages(ids))


# The reviewers' work --------------------------------------------------------


def open_items(queue, user):
    """The queue's items ``user`` may work on now, oldest first: those
    assigned to them and not done, and (claim queues) those still wanting a
    reviewer that they have not reviewed."""
    mine = Review.objects.filter(item=OuterRef("pk"), reviewer=user)
    items = queue.items.filter(status__in=[Status.PENDING, Status.IN_PROGRESS])
    mine_open = Exists(mine.filter(completed_at__isnull=True))
    if queue.assignment == ReviewQueue.Assignment.ROUND_ROBIN and queue.reviewers.exists():
        return items.filter(mine_open).order_by("pk")
    return (
        items.alias(taken=Count("reviews"))
        .filter(mine_open | (~Exists(mine) & Q(taken__lt=queue.reviewers_per_item)))
        .order_by("pk")
    )


def next_item(queue, user, after=None):
    items = open_items(queue, user)
    if after is not None:
        later = items.filter(pk__gt=after).first()
        if later is not None:
            return later
    return items.first()


def can_review(item, user):
    """Whether ``user`` may give a verdict on ``item`` now."""
    if item.status == Status.SKIPPED:
        return False
    reviews = list(item.reviews.all())
    if any(r.reviewer_id == user.pk for r in reviews):
        return True
    queue = item.queue
    if queue.assignment == ReviewQueue.Assignment.ROUND_ROBIN and queue.reviewers.exists():
        return False
    return item.status != Status.DONE and len(reviews) < queue.reviewers_per_item


def _item_state(item):
    return {"status": item.status, "final_verdict": item.verdict}


def claim(request, item):
    """The user's review of the item: theirs, or a new claim (audited)."""
    user = request.user
    review = item.reviews.filter(reviewer=user).first()
    if review is not None:
        return review
    if not can_review(item, user):
        raise PermissionDenied("This item is not yours to review.")
    old = _item_state(item)
    review = Review.objects.create(item=item, reviewer=user, started_at=timezone.now())
    if item.status == Status.PENDING:
        item.status = Status.IN_PROGRESS
        item.updated_at = timezone.now()
        item.save(update_fields=["status", "updated_at"])
    _audit(request, "claim_review_item", item, old=old, new=_item_state(item))
    return review


def opened_token():
    """A signed "opened at" for the review form: the time per item."""
    return signing.dumps(timezone.now().timestamp(), salt=OPENED_SALT)


def opened_at(token):
    try:
        stamp = signing.loads(token or "", salt=OPENED_SALT, max_age=OPENED_MAX_AGE)
    except signing.BadSignature:
        return None
    return datetime.fromtimestamp(float(stamp), tz=UTC)


def _settle_from_reviews(item):
    done = [r for r in item.reviews.all() if r.completed_at is not None]
    if len(done) >= item.queue.reviewers_per_item:
        item.status = Status.DONE
        verdicts = {r.verdict for r in done}
        if item.settled_by_id is None:
            item.verdict = verdicts.pop() if len(verdicts) == 1 else None
    else:
        item.status = Status.IN_PROGRESS
        if item.settled_by_id is None:
            item.verdict = None


def flag_message(request, message, note):
    """A "wrong" verdict sets the message's mistake flag (as the flag view does)."""
    if message.is_mistake:
        return
    old = {"is_mistake": message.is_mistake, "mistake_note": message.mistake_note}
    message.is_mistake = True
    message.mistake_note = note or None
    message.mistake_flagged_by = request.user
    message.mistake_flagged_at = timezone.now()
    message.save(
        update_fields=["is_mistake", "mistake_note", "mistake_flagged_by", "mistake_flagged_at"]
    )
    audit.record(
        request,
        "flag_mistake",
        message,
        old=old,
        new={"is_mistake": True, "mistake_note": message.mistake_note},
    )


def _review_state(review, categories=None):
    return {
        "verdict": review.verdict,
        "categories": sorted(
            c.slug for c in (categories if categories is not None else review.categories.all())
        ),
        "corrected_answer": review.corrected_answer,
        "note": review.note,
    }


@transaction.atomic
def complete(request, item, verdict, categories=(), corrected_answer="", note="", opened=None):
    """Save the user's verdict on the item (audited); a "wrong" flags the message."""
    if verdict not in Verdict.values:
        raise ValueError(f"unknown verdict {verdict!r}")
    item = ReviewItem.objects.select_for_update().select_related("queue", "message").get(pk=item.pk)
    review = claim(request, item)
    categories = list(categories)
    was_done = review.completed_at is not None
    old = {**_review_state(review), **_item_state(item)}
    now = timezone.now()
    if review.started_at is None:
        review.started_at = opened if opened is not None and opened <= now else now
    review.verdict = verdict
    review.corrected_answer = corrected_answer.strip()
    review.note = note.strip()
    review.completed_at = review.completed_at if was_done else now
    review.save()
    review.categories.set(categories)
    _settle_from_reviews(item)
    item.updated_at = now
    item.save(update_fields=["status", "verdict", "updated_at"])
    _audit(
        request,
        "change_review" if was_done else "complete_review",
        item,
        old=old,
        new={**_review_state(review, categories), **_item_state(item)},
    )
    if verdict == Verdict.WRONG:
        names = ", ".join(c.name for c in categories)
        text = "; ".join(part for part in (names, review.note) if part)
        flag_message(request, item.message, f"Review: {text}" if text else "Review: wrong")
    return review


@transaction.atomic
def skip(request, item):
    item = ReviewItem.objects.select_for_update().get(pk=item.pk)
    if item.status == Status.DONE:
        return item
    old = _item_state(item)
    item.status = Status.SKIPPED
    item.updated_at = timezone.now()
    item.save(update_fields=["status", "updated_at"])
    _audit(request, "skip_review_item", item, old=old, new=_item_state(item))
    return item


@transaction.atomic
def settle(request, item, verdict, note=""):
    """An Admin's verdict on a disagreement (audited); "wrong" flags the message."""
    if verdict not in Verdict.values:
        raise ValueError(f"unknown verdict {verdict!r}")
    item = ReviewItem.objects.select_for_update().select_related("message").get(pk=item.pk)
    old = {**_item_state(item), "settle_note": item.settle_note}
    item.verdict = verdict
    item.settled_by = request.user
    item.settled_at = timezone.now()
    item.settle_note = note.strip()
    item.updated_at = item.settled_at
    item.save(update_fields=["verdict", "settled_by", "settled_at", "settle_note", "updated_at"])
    _audit(
        request,
        "settle_review_item",
        item,
        old=old,
        new={**_item_state(item), "settle_note": item.settle_note},
    )
    if verdict == Verdict.WRONG:
        flag_message(request, item.message, f"Settled: {item.settle_note or 'wrong'}")
    return item


def disagreements(queue=None):
    """Items whose reviewers all finished and disagree, not yet settled."""
    items = ReviewItem.objects.filter(status=Status.DONE, verdict__isnull=True)
    if queue is not None:
        items = items.filter(queue=queue)
    return items.select_related("queue", "message").order_by("pk")


# Agreement and progress -----------------------------------------------------


def cohens_kappa(pairs):
    """Cohen's kappa of [(verdict of rater a, verdict of rater b)]; None when
    it is undefined (no pairs, or both raters always gave one same verdict)."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for a, b in pairs if a == b) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in set(first) | set(second)) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def _review_pairs(queue):
    """[(reviewer a, reviewer b, verdict a, verdict b)] of the queue's items
    with two completed reviews; a is the reviewer with the lower id."""
    rows = (
        Review.objects.filter(item__queue=queue, completed_at__isnull=False)
        .order_by("item_id", "reviewer_id")
        .values_list("item_id", "reviewer_id", "verdict")
    )
    by_item = defaultdict(list)
    for item_id, reviewer_id, verdict in rows:
        by_item[item_id].append((reviewer_id, verdict))
    return [
        (done[0][0], done[1][0], done[0][1], done[1][1])
        for done in by_item.values()
        if len(done) >= 2
    ]


def agreement(queue, users=None):
    """{"kappa", "items", "agreed", "pairs": [{a, b, kappa, items, agreed}]}."""
    pairs = _review_pairs(queue)
    by_pair = defaultdict(list)
    for a, b, va, vb in pairs:
        by_pair[(a, b)].append((va, vb))
    names = users or {}
    return {
        "kappa": cohens_kappa([(va, vb) for _, _, va, vb in pairs]),
        "items": len(pairs),
        "agreed": sum(1 for _, _, va, vb in pairs if va == vb),
        "pairs": [
            {
                "a": names.get(a, a),
                "b": names.get(b, b),
                "kappa": cohens_kappa(verdicts),
                "items": len(verdicts),
                "agreed": sum(1 for va, vb in verdicts if va == vb),
            }
            for (a, b), verdicts in sorted(by_pair.items())
        ],
    }


def period_starts(now=None):
    """(start of today, start of this week: Monday) in the display time zone."""
    now = timezone.localtime(now)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return today, today - timedelta(days=today.weekday())


def progress(queue=None, now=None):
    """Per reviewer (and queue): reviews done today, this week, in all, and
    the median seconds from opening an item to completing it."""
    today, week = period_starts(now)
    reviews = Review.objects.filter(completed_at__isnull=False)
    if queue is not None:
        reviews = reviews.filter(item__queue=queue)
    rows = reviews.values_list(
        "item__queue__name", "reviewer__username", "started_at", "completed_at"
    ).order_by("item__queue__name", "reviewer__username")
    grouped = defaultdict(list)
    for queue_name, username, started, completed in rows:
        grouped[(queue_name, username)].append((started, completed))
    result = []
    for (queue_name, username), done in grouped.items():
        seconds = [(c - s).total_seconds() for s, c in done if s is not None and c >= s]
        result.append(
            {
                "queue": queue_name,
                "reviewer": username,
                "today": sum(1 for _, c in done if c >= today),
                "week": sum(1 for _, c in done if c >= week),
                "total": len(done),
                "median_seconds": statistics.median(seconds) if seconds else None,
            }
        )
    return result


def queue_counts(queues):
    """{queue id: {status: count}} in one query."""
    counts = defaultdict(lambda: dict.fromkeys(Status.values, 0))
    rows = (
        ReviewItem.objects.filter(queue__in=queues)
        .order_by()
        .values_list("queue_id", "status")
        .annotate(n=Count("id"))
    )
    for queue_id, status, n in rows:
        counts[queue_id][status] = n
    return counts


def active_categories():
    return list(MistakeCategory.objects.filter(is_active=True))


DEMO_QUEUES = [
    {"name": "Low ratings", "rule": Rule.LOW_RATING, "max_rating": 2},
    {"name": "Failed code", "rule": Rule.FAILED_CODE},
    {"name": "SQL errors", "rule": Rule.SQL_ERROR},
    {
        "name": "Sample, two reviewers",
        "rule": Rule.SAMPLE,
        "sample_percent": 2,
        "reviewers_per_item": 2,
    },
]


def demo_queues(reviewers=(), reviewed=10):
    """Demo data (for ingest's seed_demo): the queues above, filled; when
    ``reviewers`` (staff accounts) are given, each completes the first
    ``reviewed`` items of each queue with a verdict derived from the item
    id, so the results pages have something to show."""
    made = []
    for spec in DEMO_QUEUES:
        queue, _ = ReviewQueue.objects.get_or_create(name=spec["name"], defaults=spec)
        fill(queue)
        made.append(queue)
    verdicts = Verdict.values
    now = timezone.now()
    for queue in made:
        items = list(queue.items.order_by("pk")[:reviewed])
        for n, reviewer in enumerate(reviewers[: queue.reviewers_per_item]):
            Review.objects.bulk_create(
                [
                    Review(
                        item=item,
                        reviewer=reviewer,
                        verdict=verdicts[(item.pk + n * (item.pk % 4 == 0)) % 3],
                        started_at=now - timedelta(seconds=30 + item.pk % 90),
                        completed_at=now,
                    )
                    for item in items
                ],
                ignore_conflicts=True,
            )
        for item in items:
            item = ReviewItem.objects.select_related("queue").get(pk=item.pk)
            _settle_from_reviews(item)
            item.save(update_fields=["status", "verdict"])
    return made
