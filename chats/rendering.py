"""Message text → safe HTML: markdown rendered, then sanitised.

markdown-it-py (CommonMark) renders with raw HTML disabled, so markup in a
message shows as text; nh3 then keeps only an allow-list of tags and
attributes and http(s)/mailto links, so no script, event handler or
javascript: URL survives whatever the renderer lets through; images keep
only sources on this site (no external image is fetched). Rendered HTML
is cached by content hash (and a hash of the rules, so a tightened
allow-list is never bypassed by the cache): a transcript re-renders nothing
it has shown.
"""

import hashlib
import re

import markdown_it
import nh3
from django.core.cache import cache
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")

TAGS = {
    "p",
    "br",
    "hr",
    "strong",
    "em",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "del",
    "img",
}
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "code": {"class"}}
URL_SCHEMES = {"http", "https", "mailto"}
CACHE_SECONDS = 24 * 3600


# The start of an image source that leaves this site: a scheme (http:,
# https:, data:, ...) or a network path (//host, and /\\host or \\\\host, which
# browsers read the same way). Leading blanks and control characters are
# ignored by browsers, so by this test too.
_OFFSITE = re.compile(r"^[\x00-\x20]*(?:[a-zA-Z][a-zA-Z0-9+.\-]*:|[/\\]{2})")


def _as_browsers_read(url):
    """Browsers drop tabs and newlines anywhere in a URL and read a
    backslash as a slash."""
    return re.sub(r"[\t\n\r]", "", url).replace("\\", "/")


def _keep_local_images(tag, attribute, value):
    """nh3 attribute filter: an <img> keeps its src only when it points at
    this site. An external image would be fetched by every reviewer's
    browser (a tracking pixel, a leak of who read which report and when);
    the CSP (img-src 'self' data:) blocks it too, but the markup should
    never ask. data: images were already refused by URL_SCHEMES."""
    if tag == "img" and attribute == "src" and _OFFSITE.match(_as_browsers_read(value)):
        return None
    return value


def sanitise(html):
    """Keep only safe markup (used for any HTML we did not write ourselves)."""
    return nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_keep_local_images,
    )


def render_markdown(text):
    """Markdown text → sanitised HTML, marked safe for templates."""
    return mark_safe(sanitise(_markdown.render(text or "")))  # noqa: S308 (sanitised by nh3)


def _config_prefix():
    """A cache-key prefix naming the renderer, the sanitiser and their rules:
    HTML cached under older (perhaps looser) rules is never served."""
    config = repr(
        (
            markdown_it.__version__,
            getattr(nh3, "__version__", ""),
            sorted(TAGS),
            sorted((tag, sorted(names)) for tag, names in ATTRIBUTES.items()),
            sorted(URL_SCHEMES),
            _OFFSITE.pattern,
        )
    )
    return "md:" + hashlib.blake2b(config.encode(), digest_size=6).hexdigest() + ":"


_PREFIX = _config_prefix()


def _key(text):
    return _PREFIX + hashlib.blake2b((text or "").encode(), digest_size=16).hexdigest()


def render_many(texts):
    """Render several texts, reusing cached results: {text: safe HTML}."""
    keys = {text: _key(text) for text in texts}
    cached = cache.get_many(list(set(keys.values())))
    result, fresh = {}, {}
    for text, key in keys.items():
        html = cached.get(key)
        if html is None:
            html = fresh[key] = sanitise(_markdown.render(text or ""))
        result[text] = mark_safe(html)  # noqa: S308 (sanitised by nh3)
    if fresh:
        cache.set_many(fresh, CACHE_SECONDS)
    return result
