"""Search across message text.

PostgreSQL: full-text search (websearch syntax, English configuration) on
an expression GIN index (migration chats 0003), the newest RANKED_MATCHES
matches ranked, with a highlighted snippet from ts_headline. SQLite: a
case-insensitive substring match with a snippet cut around the first hit.
Snippets are escaped before the match is marked, so message text never
becomes markup (on PostgreSQL the text is escaped before ts_headline, which
would otherwise drop what looks like tags).
"""

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank, SearchVector
from django.db import connections
from django.db.models import F, Value
from django.db.models.functions import Replace
from django.utils.html import escape
from django.utils.safestring import mark_safe

from .models import Message

CONFIG = "english"
START, STOP = "\x02", "\x03"  # match markers that cannot occur in escaped text
SNIPPET_CHARS = 240
# PostgreSQL ranks the newest this many matches (four pages of results).
RANKED_MATCHES = 200


def _mark(text):
    return mark_safe(  # noqa: S308 (escaped first; only our <mark> tags added)
        escape(text).replace(START, "<mark>").replace(STOP, "</mark>")
    )


def _escaped_in_sql(field):
    """``field`` with &, < and > as entities: ts_headline drops what its parser
    takes for a tag, so a message's markup must reach it as text."""
    expression = F(field)
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        expression = Replace(expression, Value(char), Value(entity))
    return expression


def _mark_escaped(text):
    """A headline of escaped text: only our <mark> tags added."""
    return mark_safe(  # noqa: S308 (escaped in SQL; stray brackets escaped again here)
        text.replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace(START, "<mark>")
        .replace(STOP, "</mark>")
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


class SearchError(ValueError):
    """Search text that cannot be searched for; the message says why."""


def clean(term):
    """The search text stripped; SearchError for text no database can take
    (PostgreSQL refuses a NUL character in any text value)."""
    term = (term or "").strip()
    if "\x00" in term:
        raise SearchError("The search text may not contain a NUL character (\\0).")
    return term


def matching(queryset, term, field="content"):
    """The rows of ``queryset`` whose message text (``field``) matches
    ``term``: the one message-text search of the search page and the admin.

    PostgreSQL: full-text search (websearch syntax) on the expression that
    the GIN index chats_msg_content_fts holds; elsewhere a case-insensitive
    substring match. SearchError for a term ``clean`` refuses.
    """
    term = clean(term)
    if connections[queryset.db].vendor == "postgresql":
        query = SearchQuery(term, config=CONFIG, search_type="websearch")
        vector = SearchVector(field, config=CONFIG)
        return queryset.alias(message_document=vector).filter(message_document=query)
    return queryset.filter(**{f"{field}__icontains": term})


def search_messages(query, limit=50, offset=0):
    """[(message, snippet)] best first; message has chat joined. SearchError
    for a query ``clean`` refuses."""
    query = clean(query)
    if not query:
        return []
    base = Message.objects.select_related("chat", "chat__user")
    if connections[base.db].vendor == "postgresql":
        search = SearchQuery(query, config=CONFIG, search_type="websearch")
        vector = SearchVector("content", config=CONFIG)
        # Rank only the newest RANKED_MATCHES matches: ts_rank recomputes each
        # message's tsvector, so ranking every match of a common word costs as
        # much as the table holds (2.4 s for 46,000 matches at 200k messages).
        # The planner finds rare words through the GIN index, common ones by
        # walking the created_at index until it has enough.
        newest = (
            matching(Message.objects.all(), query)
            .order_by("-created_at")
            .values("pk")[:RANKED_MATCHES]
        )
        rows = (
            base.filter(pk__in=newest)
            .annotate(
                rank=SearchRank(vector, search),
                snippet=SearchHeadline(
                    _escaped_in_sql("content"),
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
        return [(m, _mark_escaped(m.snippet)) for m in rows[offset : offset + limit]]
    rows = matching(base, query).order_by("-created_at")
    return [(m, _snippet_around(m.content, query)) for m in rows[offset : offset + limit]]
