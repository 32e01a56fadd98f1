"""Formatting of dashboard figures by kind (money, ms, share, …)."""

from datetime import timedelta
from decimal import Decimal

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.http import QueryDict
from django.utils import timezone
from django.utils.formats import date_format

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
    if kind == "money_change":
        # A difference of money: "+$1.20", "−$0.0004", "$0.00".
        sign = "+" if value > 0 else "−" if value < 0 else ""
        return sign + figure(abs(Decimal(value)), "money")
    if kind == "change":
        return change(value)
    if kind == "number":
        return intcomma(int(value))
    if kind == "ms":
        return f"{intcomma(round(float(value)))} ms"
    if kind == "share":
        return f"{float(value) * 100:.1f}%"
    if kind == "rating":
        return f"{float(value):.2f} ★"
    if kind == "decimal":
        return intcomma(f"{float(value):.2f}")
    if kind == "duration":
        return duration(value)
    if kind == "date":
        return date_format(value, "D j M Y")
    if kind == "datetime":
        return date_format(timezone.localtime(value), "j M Y H:i")
    return value


def duration(seconds):
    """Seconds (or a timedelta) for reading: '0.42 s', '12.5 s', '3 min 05 s',
    '2 h 04 min'."""
    seconds = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


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
