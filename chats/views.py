"""Reviewer pages for Staff, Managers and Admins, inside the admin's frame:
a chat as a conversation, the feedback queue, the mistake flag, search.
"""

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from core import audit
from core.pages.views import admin_page

from . import search, transcript
from .filters import FeedbackQueueFilter
from .models import Chat, Message

QUEUE_PAGE_SIZE = 50
SEARCH_PAGE_SIZE = 50
# Deeper pages help no reader, and a huge ?page= would overflow OFFSET (a 500).
SEARCH_MAX_PAGE = 10_000


def transcript_url(message):
    url = reverse("review:transcript", args=[message.chat_id])
    return f"{url}?at={message.pk}#message-{message.pk}"


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@admin_page("chats.view_chat")
def chat_transcript(request, pk):
    try:
        chat = transcript.get_chat(pk)
    except Chat.DoesNotExist as missing:
        raise Http404("No such chat.") from missing
    page, pages, total, rows = transcript.page_of(
        chat, page=_int(request.GET.get("page")), at=_int(request.GET.get("at"))
    )
    context = {
        **admin.site.each_context(request),
        "title": chat.title,
        "chat": chat,
        "rows": rows,
        "page": page,
        "pages": pages,
        "total": total,
        "page_size": transcript.PAGE_SIZE,
        "can_flag": request.user.has_perm("chats.flag_mistake"),
        **transcript.chat_extras(chat),
    }
    return render(request, "chats/transcript.html", context)


@require_POST
@admin_page("chats.flag_mistake")
def flag_mistake(request, pk):
    message = get_object_or_404(Message, pk=pk)
    if message.role != Message.Role.ASSISTANT:
        return HttpResponseBadRequest("Only assistant messages can be flagged as mistakes.")
    old = {"is_mistake": message.is_mistake, "mistake_note": message.mistake_note}
    flag = request.POST.get("is_mistake") == "on"
    note = request.POST.get("mistake_note", "").strip() if flag else ""
    message.is_mistake = flag
    message.mistake_note = note or None
    message.mistake_flagged_by = request.user if flag else None
    message.mistake_flagged_at = timezone.now() if flag else None
    message.save(
        update_fields=["is_mistake", "mistake_note", "mistake_flagged_by", "mistake_flagged_at"]
    )
    audit.record(
        request,
        "flag_mistake" if flag else "clear_mistake",
        message,
        old=old,
        new={"is_mistake": message.is_mistake, "mistake_note": message.mistake_note},
    )
    messages.success(request, "Flagged as a mistake." if flag else "Mistake flag cleared.")
    return redirect(transcript_url(message))


@admin_page("chats.view_messagefeedback")
def feedback_queue(request):
    filters = FeedbackQueueFilter.queue(request.GET)
    paginator = Paginator(filters.qs, QUEUE_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        **admin.site.each_context(request),
        "title": "Feedback queue",
        "filters": filters,
        "page_obj": page,
        "rows": [(f, transcript_url(f.message)) for f in page.object_list],
        "query": query.urlencode(),
    }
    return render(request, "chats/feedback_queue.html", context)


@admin_page("chats.view_message")
def message_search(request):
    query = request.GET.get("q", "").strip()
    page = min(max(_int(request.GET.get("page")) or 1, 1), SEARCH_MAX_PAGE)
    try:
        found = search.search_messages(
            query, limit=SEARCH_PAGE_SIZE + 1, offset=(page - 1) * SEARCH_PAGE_SIZE
        )
        error = None
    except search.SearchError as refused:
        found, error = [], str(refused)
    context = {
        **admin.site.each_context(request),
        "title": "Search messages",
        "q": query.replace("\x00", ""),
        "error": error,
        "page": page,
        "has_next": len(found) > SEARCH_PAGE_SIZE,
        "results": [(m, snippet, transcript_url(m)) for m, snippet in found[:SEARCH_PAGE_SIZE]],
    }
    return render(request, "chats/search.html", context)
