"""403 and 404 answers inside the admin's frame: the reason and a way back.

Django's defaults render a bare page ("403 Forbidden"); a Staff account
opening a dashboard should see the site's header, what was refused and why,
and a link back. The 500 and 503 pages stay plain templates rendered without
the database (templates/500.html, 503.html).
"""

import re
from urllib.parse import urlsplit

from django.contrib import admin
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

GENERIC_REASONS = {
    403: "Your account does not have the permission this page needs.",
    404: (
        "There is nothing at this address: the record may have been deleted, or the link is wrong."
    ),
}


def _back(request):
    """Where "back" leads: the page the user came from, on this site, else home."""
    referer = request.headers.get("referer", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(referer)
        if parts.path != request.path:
            return referer
    return reverse("admin:index")


# get_object_or_404's message, e.g. "No AppUser matches the given query."
MISSING_OBJECT = re.compile(r"^No (\w+) matches the given query\.$")


def _reason(status, exception):
    message = exception.args[0] if exception is not None and exception.args else ""
    # Resolver404 carries a dict of tried patterns, not a sentence for people.
    if not isinstance(message, str) or not message:
        return GENERIC_REASONS[status]
    missing = MISSING_OBJECT.match(message)
    if missing:
        name = re.sub(r"(?<!^)(?=[A-Z])", " ", missing.group(1)).lower()
        return f"There is no {name} with this id: it may have been deleted, or the link is wrong."
    return message


def _render(request, status, title, exception):
    user = getattr(request, "user", None)
    signed_in = bool(user and user.is_authenticated and user.is_staff)
    context = {
        **(
            admin.site.each_context(request)
            if signed_in
            else {"site_header": admin.site.site_header}
        ),
        "title": title,
        "status": status,
        "reason": _reason(status, exception),
        "back": _back(request),
        "roles": list(user.groups.values_list("name", flat=True)) if signed_in else [],
        "signed_in": signed_in,
    }
    return render(request, "errors/page.html", context, status=status)


def permission_denied(request, exception=None):
    return _render(request, 403, "Not allowed", exception)


def page_not_found(request, exception=None):
    return _render(request, 404, "Not found", exception)
