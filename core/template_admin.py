"""What the admins of agent and query templates share: versions (history, diff,
revert), export and import, and bulk changes of a flag that keep history.

The pages are admin URLs (``get_urls``) behind ``admin_site.admin_view``, so
they keep the admin's frame and login; each checks the model permission
it needs (view for versions and export, change for revert, add and change
for import). Only Admins hold those permissions (core.roles).
"""

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.text import capfirst

from core import audit, template_history, templates_io
from core.admin_tools import update_and_log
from core.forms import TemplateImportForm

Action = template_history.Action


class TemplateAdminMixin:
    """Mix into the ModelAdmin of a template model (one in TEMPLATE_FORMS)."""

    # The section of an export file that holds this model's templates.
    export_section = None
    # Template names are looked up as admin/<app>/<model>/<name>.html.
    versions_template = "versions.html"
    revert_template = "revert_confirmation.html"
    import_template = "import.html"

    # URLs -----------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        urls = [
            path("import/", view(self.import_view), name="{}_{}_import".format(*info)),
            path("export/", view(self.export_view), name="{}_{}_export".format(*info)),
            path(
                "<path:object_id>/versions/",
                view(self.versions_view),
                name="{}_{}_versions".format(*info),
            ),
            path(
                "<path:object_id>/versions/<int:number>/revert/",
                view(self.revert_view),
                name="{}_{}_revert".format(*info),
            ),
        ]
        # Before the admin's own: its "<path:object_id>/" would catch them.
        return urls + super().get_urls()

    def _url(self, name, *args):
        info = self.admin_site.name, self.opts.app_label, self.opts.model_name
        return reverse("{}:{}_{}_".format(*info) + name, args=args)

    def _templates(self, name):
        return [f"admin/{self.opts.app_label}/{self.opts.model_name}/{name}"]

    def _context(self, request, obj=None, **extra):
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "original": obj,
            "has_view_permission": self.has_view_permission(request, obj),
            "has_change_permission": self.has_change_permission(request, obj),
            "media": self.media,
            **extra,
        }

    def _object_or_404(self, request, object_id, allowed):
        """The object, once ``allowed(request)`` (a permission hook) says the
        model may be seen, so a refusal comes before "no such object"."""
        if not allowed(request):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with id {object_id!r}.")
        if not allowed(request, obj):
            raise PermissionDenied
        return obj

    # Saving keeps history ----------------------------------------------------

    def save_model(self, request, obj, form, change):
        if change:
            template_history.ensure_baselines(self.model, [obj.pk])
        super().save_model(request, obj, form, change)
        action = Action.CHANGED if change else Action.CREATED
        template_history.record_version(obj, action, request.user)

    def set_flag(self, request, queryset, name, value, action, verb):
        """A bulk action: set ``name`` to ``value`` on the selected rows that
        differ, with an admin history entry, an audit entry and a version each."""
        pks = list(queryset.exclude(**{name: value}).values_list("pk", flat=True))
        changes = {name: value}
        if any(f.name == "updated_at" for f in self.opts.concrete_fields):
            changes["updated_at"] = timezone.now()
        with transaction.atomic():
            template_history.ensure_baselines(self.model, pks)
            rows = self.model._default_manager.filter(pk__in=pks)
            count = update_and_log(request, rows, changes, action=action)
            template_history.record_versions(
                self.model._default_manager.filter(pk__in=pks), Action.BULK, request.user, verb
            )
        noun = self.opts.verbose_name if count == 1 else self.opts.verbose_name_plural
        self.message_user(request, f"{verb}: {count} {noun}.", messages.SUCCESS)

    # Versions ------------------------------------------------------------------

    def versions_view(self, request, object_id):
        obj = self._object_or_404(request, object_id, self.has_view_or_change_permission)
        versions = list(template_history.versions_of(obj).select_related("created_by"))
        by_number = {version.number: version for version in versions}
        older = newer = None
        if len(versions) >= 2:
            newer = by_number.get(_int(request.GET.get("to")), versions[0])
            older = by_number.get(_int(request.GET.get("from")))
            if older is None:
                older = next((v for v in versions if v.number < newer.number), versions[-1])
        changes = template_history.diff(self.model, older.data, newer.data) if newer else []
        context = self._context(
            request,
            obj,
            title=f"Versions of {obj}",
            versions=versions,
            older=older,
            newer=newer,
            changes=changes,
            current=versions[0] if versions else None,
            can_revert=self.has_change_permission(request, obj),
            change_url=self._url("change", quote(obj.pk)),
            trail=[("Versions", None)],
        )
        return TemplateResponse(request, self._templates(self.versions_template), context)

    def revert_view(self, request, object_id, number):
        obj = self._object_or_404(request, object_id, self.has_change_permission)
        version = get_object_or_404(template_history.versions_of(obj), number=number)
        versions_url = self._url("versions", quote(obj.pk))
        if request.method == "POST":
            return self._revert(request, obj, version, versions_url)
        current = template_history.snapshot(obj)
        context = self._context(
            request,
            obj,
            title=f"Revert {obj} to version {version.number}?",
            version=version,
            changes=template_history.diff(self.model, current, version.data),
            versions_url=versions_url,
            trail=[("Versions", versions_url), (f"Revert to version {version.number}", None)],
        )
        return TemplateResponse(request, self._templates(self.revert_template), context)

    def _revert(self, request, obj, version, versions_url):
        before = template_history.versions_of(obj).first()
        try:
            obj, new = template_history.revert(obj, version, request.user)
        except ValidationError as error:
            for message in error.messages:
                self.message_user(
                    request, f"Cannot revert to version {version.number}: {message}", messages.ERROR
                )
            return HttpResponseRedirect(versions_url)
        if new is None:
            self.message_user(
                request,
                f"Nothing to revert: the template already holds version {version.number}.",
                messages.INFO,
            )
            return HttpResponseRedirect(versions_url)
        # ``before`` exists: the version reverted to is one of the template's.
        changes = template_history.diff(self.model, before.data, new.data)
        changed = [str(capfirst(change.label)) for change in changes]
        LogEntry.objects.log_actions(
            request.user.pk,
            [obj],
            CHANGE,
            [{"changed": {"fields": changed}}],
            single_object=True,
        )
        audit.record(
            request,
            "template_revert",
            obj,
            old={"version": before.number},
            new={"version": new.number, "reverted_to": version.number, "fields": changed},
        )
        self.message_user(
            request,
            f"Reverted “{obj}” to version {version.number}; saved as version {new.number}.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._url("change", quote(obj.pk)))

    # Export and import -------------------------------------------------------

    def export_response(self, queryset, fmt):
        data = templates_io.export_data(**{self.export_section: queryset})
        content_type = "application/json" if fmt == "json" else "application/yaml"
        response = HttpResponse(templates_io.dumps(data, fmt), content_type=content_type)
        name = self.export_section.replace("_", "-")
        stamp = timezone.localdate().isoformat()
        response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.{fmt}"'
        return response

    @admin.action(description="Export selected as JSON", permissions=["view"])
    def export_json(self, request, queryset):
        return self.export_response(queryset, "json")

    @admin.action(description="Export selected as YAML", permissions=["view"])
    def export_yaml(self, request, queryset):
        return self.export_response(queryset, "yaml")

    def export_view(self, request):
        """Every template of this kind, as ``?format=json`` (default) or yaml."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        fmt = request.GET.get("format", "json")
        if fmt not in templates_io.FORMATS:
            raise Http404(f"Unknown format {fmt!r}.")
        return self.export_response(self.model._default_manager.all(), fmt)

    def import_view(self, request):
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        form = TemplateImportForm(request.POST or None, request.FILES or None)
        result = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            result = self._import(request, form, upload)
            if result is not None and result.ok and not result.dry_run:
                self.message_user(
                    request, f"Imported {upload.name}: {result.summary()}.", messages.SUCCESS
                )
                return HttpResponseRedirect(self._url("changelist"))
        context = self._context(
            request,
            title="Import templates",
            form=form,
            result=result,
            changelist_url=self._url("changelist"),
            trail=[("Import", None)],
        )
        return TemplateResponse(request, self._templates(self.import_template), context)

    def _import(self, request, form, upload):
        try:
            text = upload.read().decode("utf-8-sig")
            data = templates_io.loads(text, filename=upload.name)
        except UnicodeDecodeError:
            form.add_error("file", "The file is not UTF-8 text.")
            return None
        except templates_io.TemplateFileError as error:
            form.add_error("file", f"The file is {error}.")
            return None
        for model in templates_io.models_in(data):
            model_admin = self.admin_site._registry.get(model)
            allowed = model_admin is not None and (
                model_admin.has_add_permission(request)
                and model_admin.has_change_permission(request)
            )
            if not allowed:
                raise PermissionDenied
        return templates_io.import_templates(
            data, request=request, dry_run=form.cleaned_data["dry_run"], origin=upload.name
        )


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
