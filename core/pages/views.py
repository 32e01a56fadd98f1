"""How a custom page answers: the permission check, the parsed request, and
render-or-export.

A view is thin: ``admin_page(permission)`` checks the login and the
permission, the view hands its request, its filter bar and its ``Page`` (a
template, its tables and its context, declared as data by the app) to
``render_page``. Rendering computes the context and every table; an export
(``?export=<table>``) computes that one table only.
"""

from dataclasses import dataclass, field
from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from .memo import memo
from .tables import csv_response

# Exports need this permission on every page (Managers and Admins have it).
EXPORT_PERMISSION = "usage.export_usage"
PAGE_SIZE = 50
EXPORT_LIMIT = 10_000  # rows of a list page's CSV


def admin_page(permission):
    """The one decorator of custom pages: the admin's login (the login page
    for anonymous visitors), then ``permission`` (403 without it). The view
    runs in a ``memo()`` block: figures it asks for twice are computed once."""

    def decorate(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            if not request.user.has_perm(permission):
                raise PermissionDenied
            with memo():
                return view(request, *args, **kwargs)

        return admin.site.admin_view(checked)

    return decorate


def pager_query(request):
    """This page's query string without its page number (the pager's links)."""
    query = request.GET.copy()
    for key in ("export", "page"):
        query.pop(key, None)
    return query.urlencode()


# Parameters of one page that a link to another page does not carry.
PAGE_PARAMS = ("export", "page", "sort", "outcome", "error_type", "agent")


@dataclass
class PageRequest:
    """What a page's tables and context are computed from: the request, its
    filter bar's period, scope and errors, and what else the view parsed."""

    request: object
    filters: object
    period: object
    scope: object
    errors: dict
    options: dict = field(default_factory=dict)
    page_obj: object = None

    @classmethod
    def parse(cls, request, filters, **options):
        period, scope, errors = filters.resolve()
        return cls(request, filters, period, scope, errors, options)

    @property
    def export(self):
        return self.request.GET.get("export") or None

    def url(self, name, **params):
        """Another page's URL with this page's filters, changed by ``params``."""
        query = self.request.GET.copy()
        for key in PAGE_PARAMS:
            query.pop(key, None)
        for key, value in params.items():
            query[key] = value
        return f"{reverse(name)}?{query.urlencode()}"

    def rows_of(self, found):
        """The rows of a list: its page (``page_obj`` kept for the pager), or
        for an export its first EXPORT_LIMIT rows."""
        if self.export:
            return list(found[:EXPORT_LIMIT])
        self.page_obj = Paginator(found, PAGE_SIZE).get_page(self.request.GET.get("page"))
        return self.page_obj.object_list


@dataclass(frozen=True)
class Page:
    """A page as data: its template and title, its tables (name → function
    of a PageRequest answering a Table) and its context (a function of a
    PageRequest answering a dict: figures, charts), the CSV file name."""

    template: str
    title: str
    filename: str
    tables: dict = field(default_factory=dict)
    context: object = None


def render_page(request, page, filters, title=None, filename=None, **options):
    """Render ``page`` for ``request``, or stream one of its tables as CSV
    (``?export=name``, which needs EXPORT_PERMISSION) computing that table
    only."""
    view = PageRequest.parse(request, filters, **options)
    filename = filename or page.filename
    if view.export:
        if not request.user.has_perm(EXPORT_PERMISSION):
            raise PermissionDenied
        if view.export not in page.tables:
            raise PermissionDenied("No such table.")
        table = page.tables[view.export](view)
        if table is None:
            raise Http404("This table is not on the page for these parameters.")
        period = view.period
        return csv_response(
            table,
            f"{filename}-{view.export}-{period.start.isoformat()}-to-{period.end.isoformat()}",
        )
    # A table's function answers None when the request does not ask for it.
    tables = [table for build in page.tables.values() if (table := build(view)) is not None]
    context = {
        **admin.site.each_context(request),
        "title": title or page.title,
        "filters": filters,
        "errors": view.errors,
        "period": view.period,
        "tables": tables,
        "query": _query(request),
        "time_zone": timezone.get_current_timezone_name(),
        "can_export": request.user.has_perm(EXPORT_PERMISSION),
        **(page.context(view) if page.context else {}),
    }
    if view.page_obj is not None:
        context.update(page_obj=view.page_obj, pager_query=pager_query(request))
    return render(request, page.template, context)


def _query(request):
    query = request.GET.copy()
    query.pop("export", None)
    return query.urlencode()
