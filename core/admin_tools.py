"""Shared admin building blocks for tables of millions of rows.

Every ModelAdmin of the project derives from ``BaseAdmin`` (or
``BigTableAdmin`` for tables that grow without bound) and stays declarative:

- ``BaseAdmin`` keeps secrets out of every page (``secret_fields``), shows
  machine JSON and long machine text read-only and pretty-printed
  (``pretty_json_fields``, ``pre_text_fields``), makes the provenance of an
  imported row (``source``, ``source_pk``) read-only, and checks at start-up
  that every foreign key has a raw-id or autocomplete widget.
- ``BigTableAdmin`` adds a paginator that never counts millions of rows, no
  full result count and no facet counts.
- List filters whose choices never come from scanning a big table: a recent
  period of a date field, model name and provider from the price list, and
  the object a URL names (``?chat__id__exact=5``).
- Read-only inlines, and a capped one for long lists ("first 100 of 2,000").
- ``AuditMixin``: every add, change, deletion and bulk action also lands in
  the one audit trail (core.AuditLog, actor = the staff account), with the
  admin's change message (field names, never values).
"""

import datetime as dt
import json
from itertools import islice
from urllib.parse import urlencode

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.options import IncorrectLookupParameters
from django.core import checks
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, transaction
from django.db.models.constants import LOOKUP_SEP
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import capfirst

from core import audit
from core.models import Imported

# Characters of JSON or text shown in a read-only <pre>; plotly figures and
# HTML reports can weigh megabytes.
PRE_MAX_CHARS = 20_000
PRE_STYLE = "white-space: pre-wrap; max-height: 32em; overflow: auto; margin: 0"
PROVENANCE_FIELDS = ("source", "source_pk")
PROVENANCE = ("Provenance", {"fields": PROVENANCE_FIELDS, "classes": ("collapse",)})


# Displays -----------------------------------------------------------------


def preformatted(text, max_chars=PRE_MAX_CHARS):
    """``text`` escaped in a scrollable <pre>, cut after ``max_chars``."""
    if len(text) > max_chars:
        return format_html(
            '<pre style="{}">{}</pre><p class="help">Showing {} of {} characters.</p>',
            PRE_STYLE,
            text[:max_chars],
            f"{max_chars:,}",
            f"{len(text):,}",
        )
    return format_html('<pre style="{}">{}</pre>', PRE_STYLE, text)


def pretty_json(value, max_chars=PRE_MAX_CHARS):
    """A JSON value indented in an escaped <pre>."""
    text = json.dumps(value, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder)
    return preformatted(text, max_chars)


def admin_changelist_url(model, site_name="admin", **params):
    """The changelist of ``model`` (a model, or its "app_label.model" label, so
    core can link to the apps above it without importing them) with ``params``
    as its query string."""
    if isinstance(model, str):
        app_label, model_name = model.lower().split(".")
    else:
        app_label, model_name = model._meta.app_label, model._meta.model_name
    url = reverse(f"{site_name}:{app_label}_{model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def update_and_log(request, queryset, changes, action="admin_action", batch_size=500):
    """Apply ``changes`` to the rows of ``queryset`` for an admin action.

    One UPDATE per batch, plus an admin history entry and an audit entry
    (``action``, with the new values) per row, so an action on a whole
    selection ("select all 40,000") neither loads every row at once nor
    leaves a row changed without history. Returns the number of rows.
    """
    model = queryset.model
    fields = [capfirst(model._meta.get_field(name).verbose_name) for name in changes]
    message = [{"changed": {"fields": fields}}]
    new = json.loads(
        json.dumps(
            {name: getattr(value, "pk", value) for name, value in changes.items()},
            cls=DjangoJSONEncoder,
        )
    )
    pks = iter(list(queryset.order_by().values_list("pk", flat=True)))
    count = 0
    with transaction.atomic():
        while batch := list(islice(pks, batch_size)):
            rows = list(model._default_manager.filter(pk__in=batch))
            LogEntry.objects.log_actions(request.user.pk, rows, CHANGE, message)
            for row in rows:
                audit.record(request, action, row, new=new)
            model._default_manager.filter(pk__in=batch).update(**changes)
            count += len(rows)
    return count


# Pagination ---------------------------------------------------------------


class LargeTablePaginator(Paginator):
    """A paginator that does not run an exact COUNT(*) over millions of rows.

    It counts at most ``count_limit + 1`` matching rows (bounded work, whatever
    the table size). Past that it reports PostgreSQL's planner estimate for an
    unfiltered table, or ``count_limit`` as a lower bound; ``count_kind`` says
    which ("exact", "estimate", "at_least") for the pagination template.
    """

    count_limit = 10_000
    count_kind = "exact"

    @cached_property
    def count(self):
        queryset = self.object_list
        if not isinstance(queryset, models.QuerySet):
            return len(queryset)
        bounded = queryset.select_related(None).order_by().values("pk")
        count = bounded[: self.count_limit + 1].count()
        if count <= self.count_limit:
            return count
        estimate = self._estimate(queryset)
        if estimate > self.count_limit:
            self.count_kind = "estimate"
            return estimate
        self.count_kind = "at_least"
        return self.count_limit

    @staticmethod
    def _estimate(queryset):
        """PostgreSQL's row estimate for an unfiltered table, else 0."""
        connection = connections[queryset.db]
        if connection.vendor != "postgresql" or queryset.query.has_filters():
            return 0
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [queryset.model._meta.db_table],
            )
            row = cursor.fetchone()
        return max(row[0], 0) if row else 0


# List filters -------------------------------------------------------------


class FieldFilter(admin.SimpleListFilter):
    """A SimpleListFilter about one field, made with ``for_field(name)``."""

    field_name = None

    @classmethod
    def parameter_for(cls, field_name):
        return field_name

    @classmethod
    def for_field(cls, field_name, title=None):
        attrs = {
            "field_name": field_name,
            "parameter_name": cls.parameter_for(field_name),
            "title": title,
        }
        return type(f"{cls.__name__}_{field_name}", (cls,), attrs)

    def __init__(self, request, params, model, model_admin):
        if self.title is None:
            self.title = model._meta.get_field(self.field_name).verbose_name
        super().__init__(request, params, model, model_admin)


class RecentPeriodFilter(FieldFilter):
    """Rows of today or of the last 7, 30 or 90 days (in TIME_ZONE).

    Fixed choices, so unlike ``date_hierarchy`` it never runs SELECT DISTINCT
    over the table; the filter is one range on an indexed timestamp. Usage:
    ``list_filter = [RecentPeriodFilter.for_field("created_at")]``.
    """

    PERIODS = {
        "today": ("Today", 1),
        "7d": ("Last 7 days", 7),
        "30d": ("Last 30 days", 30),
        "90d": ("Last 90 days", 90),
    }

    @classmethod
    def parameter_for(cls, field_name):
        return f"{field_name}_recent"

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _days) in self.PERIODS.items()]

    def queryset(self, request, queryset):
        if self.value() not in self.PERIODS:
            return queryset
        days = self.PERIODS[self.value()][1]
        start = timezone.localdate() - dt.timedelta(days=days - 1)
        if isinstance(queryset.model._meta.get_field(self.field_name), models.DateTimeField):
            start = timezone.make_aware(dt.datetime.combine(start, dt.time.min))
        return queryset.filter(**{f"{self.field_name}__gte": start})


class LocalDayFilter(FieldFilter):
    """Rows of one local day (in TIME_ZONE) or of a range of them, named in
    the URL: ``?timestamp_day=2024-03-14`` or
    ``?timestamp_day=2024-03-01..2024-03-14`` (both days included).

    The drill-down of the dashboards' per-day charts and tables: one range
    on an indexed timestamp. It lists nothing until a link selects a day;
    then it shows that day, and "All" clears it.
    """

    SEPARATOR = ".."

    @classmethod
    def parameter_for(cls, field_name):
        return f"{field_name}_day"

    @classmethod
    def days(cls, value):
        """(first, last) local days of a parameter value; ValueError if bad."""
        first, _, last = str(value).partition(cls.SEPARATOR)
        start = dt.date.fromisoformat(first.strip())
        end = dt.date.fromisoformat(last.strip()) if last else start
        if end < start:
            raise ValueError("the last day is before the first")
        return start, end

    @classmethod
    def value_for(cls, start, end=None):
        """The parameter value of the local days ``start`` to ``end``."""
        end = end or start
        return start.isoformat() if end == start else f"{start}{cls.SEPARATOR}{end}"

    def lookups(self, request, model_admin):
        if not self.value():
            return []
        try:
            start, end = self.days(self.value())
        except ValueError:
            return [(self.value(), self.value())]
        label = start.isoformat() if start == end else f"{start} to {end}"
        return [(self.value(), f"{label} ({timezone.get_current_timezone_name()})")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            start, end = self.days(self.value())
            first = timezone.make_aware(dt.datetime.combine(start, dt.time.min))
            after = timezone.make_aware(
                dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min)
            )
        except (ValueError, OverflowError) as error:
            raise IncorrectLookupParameters(error) from error
        return queryset.filter(
            **{f"{self.field_name}__gte": first, f"{self.field_name}__lt": after}
        )


class CatalogFilter(FieldFilter):
    """Exact values of a text column of a big table, offered from the price
    list (``usage.ModelPrice``, a row per model and price change) instead of
    a DISTINCT over the big table. A value not in the list (from a link)
    still shows as the selected choice.
    """

    catalog_field = None

    def lookups(self, request, model_admin):
        price_model = apps.get_model("usage", "ModelPrice")
        values = list(
            price_model.objects.order_by(self.catalog_field)
            .values_list(self.catalog_field, flat=True)
            .distinct()
        )
        if self.value() and self.value() not in values:
            values.append(self.value())
        return [(value, value) for value in values]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field_name: self.value()})
        return queryset


class ModelNameFilter(CatalogFilter):
    title = "model"
    field_name = parameter_name = catalog_field = "model_name"


class ProviderFilter(CatalogFilter):
    title = "provider"
    field_name = parameter_name = catalog_field = "provider"


class RelatedIdFilter(FieldFilter):
    """Rows of one related object named in the URL: ``?chat__id__exact=5``.

    For a foreign key to a big table, where the stock filter would load the
    whole related table to list its choices. It lists nothing until a link
    (a "view all" link, another page) selects an object; then it shows that
    one object, and "All" clears it.
    """

    @classmethod
    def parameter_for(cls, field_name):
        return f"{field_name}__id__exact"

    def __init__(self, request, params, model, model_admin):
        # Checked before the base class reads it (its lookups() queries it).
        values = params.get(self.parameter_name)
        if values:
            raw = values[-1] if isinstance(values, list) else values
            value = self._valid_id(model, raw)
            if value is None:
                # A 2^64 from a hand-made URL: OverflowError on SQLite, an
                # error on PostgreSQL. Show the list unfiltered and say why.
                params.pop(self.parameter_name)
                messages.warning(request, f"“{raw}” is not a valid id: the filter was ignored.")
            else:
                params[self.parameter_name] = [value]
        super().__init__(request, params, model, model_admin)

    def _valid_id(self, model, raw):
        """The id as a canonical string, or None outside the key's range."""
        target = model._meta.get_field(self.field_name).target_field
        ops = connections[model._default_manager.db].ops
        if target.get_internal_type() not in ops.integer_field_ranges:
            return str(raw)  # not an integer key: the lookup itself checks it
        low, high = ops.integer_field_range(target.get_internal_type())
        try:
            value = int(str(raw).strip())
        except ValueError:
            return None
        if low is not None and value < low or high is not None and value > high:
            return None
        return str(value)

    def lookups(self, request, model_admin):
        if not self.value():
            return []
        related = model_admin.model._meta.get_field(self.field_name).related_model
        try:
            obj = related._default_manager.filter(pk=self.value()).first()
        except (ValueError, ValidationError) as error:
            raise IncorrectLookupParameters(error) from error
        return [(self.value(), str(obj) if obj else f"#{self.value()} (deleted)")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{f"{self.field_name}_id": self.value()})
        return queryset


# ModelAdmin mixins --------------------------------------------------------


class PrettyFieldsMixin:
    """Machine JSON and long machine text, read-only and escaped in a <pre>.

    Name the fields in ``pretty_json_fields`` (indented JSON) and
    ``pre_text_fields`` (code, SQL, HTML source: whitespace kept, never
    rendered). The raw field is excluded from the form and replaced, in
    ``fields``, ``fieldsets`` and ``readonly_fields``, by a display named
    ``<field>_pretty``; declarations keep using the field names. Override
    ``get_pretty_json_fields`` to choose per object; an override of
    ``get_fieldsets`` must return through ``super()`` for the swap to apply.
    """

    pretty_json_fields = ()
    pre_text_fields = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.model._meta.concrete_fields:
            if isinstance(field, models.JSONField) or field.name in self.pre_text_fields:
                setattr(self, f"{field.name}_pretty", self._pretty_display(field))

    def _pretty_display(self, field):
        is_json = isinstance(field, models.JSONField)

        @admin.display(description=capfirst(field.verbose_name))
        def display(obj):
            value = getattr(obj, field.attname)
            if value is None or (value == "" and not is_json):
                return self.get_empty_value_display()
            return pretty_json(value) if is_json else preformatted(value)

        return display

    def get_pretty_json_fields(self, request, obj=None):
        return self.pretty_json_fields

    def pretty_fields(self, request, obj=None):
        return {*self.get_pretty_json_fields(request, obj), *self.pre_text_fields}

    def with_pretty_fields(self, request, obj, names):
        """``names`` with each pretty-printed field replaced by its display."""
        pretty = self.pretty_fields(request, obj)
        result = []
        for name in names:
            if isinstance(name, (list, tuple)):
                name = tuple(self.with_pretty_fields(request, obj, name))
            elif name in pretty:
                name = f"{name}_pretty"
            if name not in result:
                result.append(name)
        return result

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        displays = [f"{name}_pretty" for name in sorted(self.pretty_fields(request, obj))]
        return self.with_pretty_fields(request, obj, [*readonly, *displays])

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or ())
        return exclude + [name for name in self.pretty_fields(request, obj) if name not in exclude]

    def get_fields(self, request, obj=None):
        return self.with_pretty_fields(request, obj, super().get_fields(request, obj))

    def get_fieldsets(self, request, obj=None):
        return [
            (name, {**options, "fields": self.with_pretty_fields(request, obj, options["fields"])})
            for name, options in super().get_fieldsets(request, obj)
        ]


class SecretFieldsMixin:
    """Fields that never reach a page: excluded from every form (not merely
    hidden) and refused as URL lookups, so ``?password_hash__startswith=``
    cannot probe them. The system check refuses them in list_display,
    search_fields, list_filter, fields, fieldsets and readonly_fields.
    ``get_secret_fields`` may narrow the excluded set per object.
    """

    secret_fields = ()

    def get_secret_fields(self, request, obj=None):
        return self.secret_fields

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or ())
        secrets = self.get_secret_fields(request, obj)
        return exclude + [name for name in secrets if name not in exclude]

    def lookup_allowed(self, lookup, value, request=None):
        if lookup.split(LOOKUP_SEP)[0] in self.secret_fields:
            return False
        return super().lookup_allowed(lookup, value, request)

    def check(self, **kwargs):
        return [*super().check(**kwargs), *self._check_secret_fields()]

    def _check_secret_fields(self):
        def names(items):
            for item in items or ():
                if isinstance(item, (list, tuple)):
                    yield from names(item)
                elif isinstance(item, str):
                    yield item.lstrip("^=@").split(LOOKUP_SEP)[0]

        declared = [
            *self.list_display,
            *self.search_fields,
            *(self.fields or ()),
            *self.readonly_fields,
            *(item[0] if isinstance(item, (list, tuple)) else item for item in self.list_filter),
            *(options["fields"] for _name, options in self.fieldsets or ()),
        ]
        leaked = sorted(set(names(declared)) & set(self.secret_fields))
        return [
            checks.Error(
                f"Secret field {name!r} is displayed or searchable.",
                obj=self.__class__,
                id="core.E001",
            )
            for name in leaked
        ]


class AuditMixin:
    """Copy the admin's history into the audit trail (core.AuditLog).

    Entries carry the admin's change message: the labels of the changed
    fields, never their values, so no secret reaches the trail. Override
    ``audit_change`` to record a domain action instead (the mistake flag).
    """

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        audit.record(request, "admin_add", obj, new={"change": message})
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        self.audit_change(request, obj, message)
        return entry

    def audit_change(self, request, obj, message):
        audit.record(request, "admin_change", obj, new={"change": message})

    def log_deletions(self, request, queryset):
        entries = super().log_deletions(request, queryset)
        for obj in queryset:
            audit.record(request, "admin_delete", obj, old={"object": str(obj)})
        return entries


class BaseAdmin(AuditMixin, SecretFieldsMixin, PrettyFieldsMixin, admin.ModelAdmin):
    """The base of every ModelAdmin of the project.

    Provenance (``source``, ``source_pk``) is read-only: it records where an
    imported row came from. The system check asks for a raw-id or an
    autocomplete widget on every editable foreign key, so no change form
    renders a <select> of a whole table.
    """

    # Django 6 makes https the default scheme of URL inputs; opt in now.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if issubclass(self.model, Imported):
            readonly += [name for name in PROVENANCE_FIELDS if name not in readonly]
        return readonly

    def check(self, **kwargs):
        return [*super().check(**kwargs), *self._check_relation_widgets()]

    def _check_relation_widgets(self):
        covered = {
            *self.raw_id_fields,
            *self.autocomplete_fields,
            *self.readonly_fields,
            *(self.exclude or ()),
            *self.secret_fields,
        }
        if issubclass(self.model, Imported):
            covered |= set(PROVENANCE_FIELDS)
        return [
            checks.Error(
                f"Foreign key {field.name!r} needs raw_id_fields or autocomplete_fields.",
                obj=self.__class__,
                id="core.E002",
            )
            for field in self.model._meta.fields
            if field.is_relation and field.editable and field.name not in covered
        ]


class BigTableMixin:
    """For tables of millions of rows: no full count, no facet counts."""

    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


class BigTableAdmin(BigTableMixin, BaseAdmin):
    pass


class ReadOnlyAdminMixin:
    """Nobody adds, changes or deletes, superusers included; view only."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# Inlines ------------------------------------------------------------------


class ReadOnlyInlineMixin(ReadOnlyAdminMixin):
    """An inline that only shows rows: every name in ``fields`` is read-only."""

    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly + [name for name in self.fields or () if name not in readonly]


class CappedInlineFormSet(BaseInlineFormSet):
    """Shows the first ``cap`` related rows (in the inline's ordering) and
    knows how many there are, for a "view all" link to the changelist."""

    cap = 100
    admin_site_name = "admin"

    def get_queryset(self):
        if not hasattr(self, "_queryset"):
            self._queryset = super().get_queryset()[: self.cap]
        return self._queryset

    @cached_property
    def total_count(self):
        shown = len(self.get_queryset())
        return shown if shown < self.cap else self.queryset.count()

    @property
    def is_capped(self):
        return self.total_count > len(self.get_queryset())

    @property
    def changelist_url(self):
        return admin_changelist_url(
            self.model,
            self.admin_site_name,
            **{RelatedIdFilter.parameter_for(self.fk.name): self.instance.pk},
        )


class CappedTabularInline(ReadOnlyInlineMixin, admin.TabularInline):
    """A read-only table of at most ``max_shown`` related rows, with a link to
    all of them in their changelist (whose admin lists
    ``RelatedIdFilter.for_field(<foreign key>)``)."""

    max_shown = 100
    formset = CappedInlineFormSet
    template = "admin/edit_inline/capped_tabular.html"

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.cap = self.max_shown
        formset.admin_site_name = self.admin_site.name
        return formset
