"""Formatting of dashboard figures by kind (money, ms, share, …)."""

from decimal import Decimal

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.http import QueryDict

register = template.Library()


@register.filter
def figure(value, kind="number"):
    """Format a figure for reading; None is shown as an en dash."""
    if value is None or value == "":
        return "–"
    if kind == "money":
        value = Decimal(value)
        if value and abs(value) < Decimal("0.01"):
            # Costs are stored to 8 places: $0.00000015 must not read "$0.".
            return "$" + f"{value:.8f}".rstrip("0").rstrip(".")
        return "$" + intcomma(f"{value:.2f}")
    if kind == "number":
        return intcomma(int(value))
    if kind == "ms":
        return f"{intcomma(round(float(value)))} ms"
    if kind == "share":
        return f"{float(value) * 100:.1f}%"
    if kind == "rating":
        return f"{float(value):.2f} ★"
    return value


@register.filter
def change(value):
    """A relative change as '+12.3%' / '−4.0%'."""
    if value is None:
        return ""
    sign = "+" if value >= 0 else "−"
    return f"{sign}{abs(value) * 100:.1f}%"


@register.simple_tag
def sort_link(query, current, key):
    """The query string that sorts by ``key``, toggling the direction."""
    params = QueryDict(query, mutable=True)
    params["sort"] = key if current == f"-{key}" else f"-{key}"
    return "?" + params.urlencode()


@register.filter
def get_item(mapping, key):
    return mapping.get(key)
