"""The review-queue pages (#19): the queues, the review page ("complete and
next", keyboard shortcuts in static/chats/review.js), disagreements for an
Admin to settle, agreement and progress, and exports of the reviews.

Staff review (``chats.review_items``); Managers read results
(``chats.view_review_results``); Admins settle (``chats.settle_disagreement``)
and edit queues and the taxonomy in the admin.
"""

import csv
import datetime as dt
import json

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import OuterRef, Prefetch, Q, Subquery
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_POST

from core.pages.views import admin_page

from . import queues, transcript
from .models import Message, MistakeCategory, Review, ReviewItem, ReviewQueue
from .rendering import render_many
from .views import _int, transcript_url

REVIEW = "chats.review_items"
RESULTS = "chats.view_review_results"
SETTLE = "chats.settle_disagreement"
ITEMS_PAGE_SIZE = 50
CONTEXT_BEFORE, CONTEXT_AFTER = 4, 2
EXPORT_BATCH = 500


def _context(request, title, **extra):
    return {**admin.site.each_context(request), "title": title, **extra}


@admin_page(REVIEW)
def queue_list(request):
    rows = list(ReviewQueue.objects.filter(is_active=True).order_by("name"))
    counts = queues.queue_counts(rows)
    context = _context(
        request,
        "Review queues",
        queues=[(q, counts[q.pk]) for q in rows],
        can_results=request.user.has_perm(RESULTS),
    )
    return render(request, "chats/review_queues.html", context)


@admin_page(REVIEW)
def queue_detail(request, pk):
    queue = get_object_or_404(ReviewQueue, pk=pk)
    status = request.GET.get("status", "")
    items = queue.items.select_related("message").order_by("pk")
    if status in ReviewItem.Status.values:
        items = items.filter(status=status)
    page = Paginator(items, ITEMS_PAGE_SIZE).get_page(request.GET.get("page"))
    # previews as text, not raw markdown
    html = render_many({item.message.content for item in page.object_list})
    can_results = request.user.has_perm(RESULTS)
    context = _context(
        request,
        queue.name,
        queue=queue,
        counts=queues.queue_counts([queue])[queue.pk],
        page_obj=page,
        rows=[(item, html[item.message.content]) for item in page.object_list],
        status=status,
        statuses=ReviewItem.Status.choices,
        mine=queues.open_items(queue, request.user).count(),
        can_results=can_results,
        progress=queues.progress(queue) if can_results else None,
        agreement=_agreement(queue) if can_results and queue.reviewers_per_item > 1 else None,
    )
    return render(request, "chats/review_queue.html", context)


def _agreement(queue):
    from django.contrib.auth import get_user_model

    result = queues.agreement(queue)
    ids = {p["a"] for p in result["pairs"]} | {p["b"] for p in result["pairs"]}
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    for pair in result["pairs"]:
        pair["a"], pair["b"] = names.get(pair["a"], pair["a"]), names.get(pair["b"], pair["b"])
    return result


def _go_next(request, queue, after=None):
    item = queues.next_item(queue, request.user, after=after)
    if item is None:
        messages.success(request, f"“{queue.name}” has nothing left for you to review.")
        return redirect("queues:queue", queue.pk)
    queues.claim(request, item)
    return redirect("queues:item", item.pk)


@require_POST
@admin_page(REVIEW)
def start(request, pk):
    queue = get_object_or_404(ReviewQueue, pk=pk)
    return _go_next(request, queue)


def _focus(rows, message_id):
    for n, row in enumerate(rows):
        if row.message.pk == message_id:
            return n
    return None


@admin_page(REVIEW)
def review_item(request, pk):
    item = get_object_or_404(
        ReviewItem.objects.select_related("queue", "message", "settled_by").prefetch_related(
            Prefetch(
                "reviews",
                queryset=Review.objects.select_related("reviewer")
                .prefetch_related("categories")
                .order_by("pk"),
            )
        ),
        pk=pk,
    )
    queue = item.queue
    if request.method == "POST":
        return _post_review(request, item)
    message = item.message
    chat = transcript.get_chat(message.chat_id)
    _page, _pages, _total, rows = transcript.page_of(chat, at=message.pk)
    focus = _focus(rows, message.pk)
    answer = rows[focus] if focus is not None else None
    question = None
    if focus is not None:
        question = next(
            (r for r in reversed(rows[:focus]) if r.message.role == Message.Role.USER), None
        )
    window = rows[max(0, (focus or 0) - CONTEXT_BEFORE) : (focus or 0) + CONTEXT_AFTER + 1]
    reviews = list(item.reviews.all())
    mine = next((r for r in reviews if r.reviewer_id == request.user.pk), None)
    can_results = request.user.has_perm(RESULTS)
    # Two reviewers judge independently: another's verdict shows once yours is in.
    show_others = can_results or (mine is not None and mine.completed_at is not None)
    siblings = queue.items.order_by("pk")
    prev_id = siblings.filter(pk__lt=item.pk).order_by("-pk").values_list("pk", flat=True).first()
    next_id = siblings.filter(pk__gt=item.pk).values_list("pk", flat=True).first()
    can_review = queues.can_review(item, request.user)
    context = _context(
        request,
        f"Review: {queue.name}",
        item=item,
        queue=queue,
        chat=chat,
        answer=answer,
        question=question,
        window=window,
        mine=mine,
        my_categories={c.pk for c in mine.categories.all()} if mine else set(),
        others=[r for r in reviews if r is not mine] if show_others else [],
        categories=queues.active_categories(),
        verdicts=ReviewItem.Verdict.choices,
        can_review=can_review,
        can_settle=request.user.has_perm(SETTLE)
        and item.status == ReviewItem.Status.DONE
        and len([r for r in reviews if r.completed_at]) > 1,
        opened=queues.opened_token(),
        transcript_link=transcript_url(message),
        keys={
            "next": reverse("queues:item", args=[next_id]) if next_id else "",
            "prev": reverse("queues:item", args=[prev_id]) if prev_id else "",
            "canReview": can_review,
        },
    )
    return render(request, "chats/review_item.html", context)


def _post_review(request, item):
    action = request.POST.get("action", "complete")
    verdict = request.POST.get("verdict", "")
    if action != "skip" and verdict not in ReviewItem.Verdict.values:
        return HttpResponseBadRequest("Choose a verdict: correct, partly or wrong.")
    if not queues.can_review(item, request.user):
        messages.error(request, "This item is not yours to review.")
        return redirect("queues:item", item.pk)
    if action == "skip":
        queues.skip(request, item)
        messages.info(request, f"Item {item.pk} skipped.")
        return _go_next(request, item.queue, after=item.pk)
    ids = [_int(v) for v in request.POST.getlist("categories")]
    categories = list(MistakeCategory.objects.filter(pk__in=[i for i in ids if i is not None]))
    queues.complete(
        request,
        item,
        verdict,
        categories=categories,
        corrected_answer=request.POST.get("corrected_answer", ""),
        note=request.POST.get("note", ""),
        opened=queues.opened_at(request.POST.get("opened")),
    )
    return _go_next(request, item.queue, after=item.pk)


@require_POST
@admin_page(SETTLE)
def settle(request, pk):
    item = get_object_or_404(ReviewItem, pk=pk)
    verdict = request.POST.get("verdict", "")
    if verdict not in ReviewItem.Verdict.values:
        return HttpResponseBadRequest("Choose a verdict: correct, partly or wrong.")
    queues.settle(request, item, verdict, request.POST.get("note", ""))
    messages.success(request, f"Item {item.pk} settled: {verdict}.")
    return redirect("queues:disagreements")


@admin_page(RESULTS)
def disagreement_list(request):
    rows = list(
        queues.disagreements().prefetch_related(
            Prefetch("reviews", queryset=Review.objects.select_related("reviewer").order_by("pk"))
        )[:200]
    )
    context = _context(
        request,
        "Disagreements",
        rows=rows,
        verdicts=ReviewItem.Verdict.choices,
        can_settle=request.user.has_perm(SETTLE),
    )
    return render(request, "chats/review_disagreements.html", context)


@admin_page(RESULTS)
def results(request):
    rows = list(ReviewQueue.objects.order_by("name"))
    context = _context(
        request,
        "Review results",
        queues=[(q, _agreement(q)) for q in rows if q.reviewers_per_item > 1],
        progress=queues.progress(),
        counts=queues.queue_counts(rows),
        all_queues=rows,
        open_disagreements=queues.disagreements().count(),
    )
    return render(request, "chats/review_results.html", context)


# Export ---------------------------------------------------------------------

EXPORT_COLUMNS = [
    "review_id",
    "queue",
    "item_id",
    "message_id",
    "chat_id",
    "model",
    "source",
    "question",
    "answer",
    "verdict",
    "final_verdict",
    "categories",
    "corrected_answer",
    "note",
    "reviewer",
    "started_at",
    "completed_at",
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A CSV cell a spreadsheet will not run as a formula (OWASP: a leading
    quote before = + - @ tab and carriage return)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def export_filters(params):
    """The completed reviews the URL's filters pick: queue, verdict,
    reviewer, model, since and until (dates of completion, inclusive)."""
    reviews = Review.objects.filter(completed_at__isnull=False)
    if _int(params.get("queue")) is not None:
        reviews = reviews.filter(item__queue_id=_int(params.get("queue")))
    if params.get("verdict") in ReviewItem.Verdict.values:
        reviews = reviews.filter(verdict=params["verdict"])
    if params.get("final") in ReviewItem.Verdict.values:
        reviews = reviews.filter(item__verdict=params["final"])
    if params.get("reviewer"):
        reviews = reviews.filter(reviewer__username=params["reviewer"])
    if params.get("model"):
        reviews = reviews.filter(item__model_name=params["model"])
    zone = timezone.get_current_timezone()
    since, until = parse_date(params.get("since") or ""), parse_date(params.get("until") or "")
    if since:
        reviews = reviews.filter(
            completed_at__gte=dt.datetime.combine(since, dt.time.min, tzinfo=zone)
        )
    if until:
        end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
        reviews = reviews.filter(completed_at__lt=end)
    return reviews


def _question_subquery():
    return Subquery(
        Message.objects.filter(
            chat_id=OuterRef("item__message__chat_id"),
            role=Message.Role.USER,
        )
        .filter(
            Q(created_at__lt=OuterRef("item__message__created_at"))
            | Q(
                created_at=OuterRef("item__message__created_at"),
                pk__lt=OuterRef("item__message_id"),
            )
        )
        .order_by("-created_at", "-pk")
        .values("content")[:1]
    )


def export_rows(params):
    """One dict per completed review, in review order, EXPORT_BATCH at a time."""
    reviews = (
        export_filters(params)
        .select_related("reviewer", "item__queue", "item__message", "item__source")
        .annotate(question=_question_subquery())
        .order_by("pk")
    )
    last = 0
    while True:
        batch = list(reviews.filter(pk__gt=last).prefetch_related("categories")[:EXPORT_BATCH])
        if not batch:
            return
        for review in batch:
            item, message = review.item, review.item.message
            yield {
                "review_id": review.pk,
                "queue": item.queue.name,
                "item_id": item.pk,
                "message_id": message.pk,
                "chat_id": message.chat_id,
                "model": item.model_name,
                "source": item.source.name if item.source else "",
                "question": review.question or "",
                "answer": message.content,
                "verdict": review.verdict,
                "final_verdict": item.verdict or "",
                "categories": [c.slug for c in review.categories.all()],
                "corrected_answer": review.corrected_answer,
                "note": review.note,
                "reviewer": review.reviewer.get_username(),
                "started_at": review.started_at.isoformat() if review.started_at else "",
                "completed_at": review.completed_at.isoformat(),
            }
        last = batch[-1].pk


class _Echo:
    def write(self, value):
        return value


def _stamp():
    return timezone.localtime().strftime("%Y%m%d-%H%M")


@admin_page(RESULTS)
def export_csv(request):
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(EXPORT_COLUMNS)
        for row in export_rows(request.GET):
            row["categories"] = " ".join(row["categories"])
            yield writer.writerow([csv_cell(row[c]) for c in EXPORT_COLUMNS])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="reviews-{_stamp()}.csv"'
    return response


@admin_page(RESULTS)
def export_jsonl(request):
    def lines():
        for row in export_rows(request.GET):
            yield json.dumps(row, ensure_ascii=False) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="reviews-{_stamp()}.jsonl"'
    return response
