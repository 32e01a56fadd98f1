"""Formatting of dashboard figures by kind (money, ms, share, …): the
template side of core.pages.formats, the one format of every page."""

from django import template
from django.http import QueryDict

from core.pages import formats

register = template.Library()


@register.filter
def figure(value, kind="number"):
    """Format a figure for reading (core.pages.formats); None is an en dash."""
    return formats.display(value, kind)


duration = formats.duration


@register.filter
def change(value):
    """A relative change as '+12.3%' / '−4.0%' (nothing for None)."""
    return "" if value is None else formats.change(value)


@register.simple_tag
def sort_link(query, current, key):
    """The query string that sorts by ``key``, toggling the direction."""
    params = QueryDict(query, mutable=True)
    params["sort"] = key if current == f"-{key}" else f"-{key}"
    return "?" + params.urlencode()


@register.filter
def get_item(mapping, key):
    return mapping.get(key)
