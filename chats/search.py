"""Search across message text.

PostgreSQL: full-text search (websearch syntax, English configuration) on
an expression GIN index (migration chats 0002), ranked, with a highlighted
snippet from ts_headline. SQLite: a case-insensitive substring match with a
snippet cut around the first hit. Snippets are escaped before the match is
marked, so message text never becomes markup.
"""

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank, SearchVector
from django.db import connection
from django.utils.html import escape
from django.utils.safestring import mark_safe

from .models import Message

CONFIG = "english"
START, STOP = "\x02", "\x03"  # match markers that cannot occur in escaped text
SNIPPET_CHARS = 240


def _mark(text):
    return mark_safe(  # noqa: S308 (escaped first; only our <mark> tags added)
        escape(text).replace(START, "<mark>").replace(STOP, "</mark>")
    )


def _snippet_around(content, query):
    lower = content.lower()
    at = lower.find(query.lower())
    if at < 0:
        return _mark(content[:SNIPPET_CHARS])
    start = max(0, at - SNIPPET_CHARS // 3)
    end = min(len(content), at + len(query) + SNIPPET_CHARS // 2)
    text = (
        ("…" if start else "")
        + content[start:at]
        + START
        + content[at : at + len(query)]
        + STOP
        + content[at + len(query) : end]
        + ("…" if end < len(content) else "")
    )
    return _mark(text)


def search_messages(query, limit=50, offset=0):
    """[(message, snippet)] best first; message has chat joined."""
    query = (query or "").strip()
    if not query:
        return []
    base = Message.objects.select_related("chat", "chat__user")
    if connection.vendor == "postgresql":
        search = SearchQuery(query, config=CONFIG, search_type="websearch")
        vector = SearchVector("content", config=CONFIG)
        rows = (
            base.annotate(document=vector)
            .filter(document=search)
            .annotate(
                rank=SearchRank(vector, search),
                snippet=SearchHeadline(
                    "content",
                    search,
                    config=CONFIG,
                    start_sel=START,
                    stop_sel=STOP,
                    max_words=40,
                    min_words=15,
                ),
            )
            .order_by("-rank", "-created_at")
        )
        return [(m, _mark(m.snippet)) for m in rows[offset : offset + limit]]
    rows = base.filter(content__icontains=query).order_by("-created_at")
    return [(m, _snippet_around(m.content, query)) for m in rows[offset : offset + limit]]
