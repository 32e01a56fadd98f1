"""Export and import of agent and query templates as JSON or YAML, so a
template set moves between deployments.

A file holds the fields an Admin edits (``Meta.fields`` of the forms in
core.forms), never ids, provenance or usage::

    format: analyst-admin-templates
    version: 1
    agent_templates:
      - template_name: sql_agent
        prompt_template: |
          You write SQL for {goal}.
        ...
    query_templates:
      - name: Top customers
        ...

An import matches agent templates by ``template_name`` and query templates by
``name``. It validates every item with the admin's forms first and writes
nothing unless all of them pass (then in one transaction); each problem names
the item's index and field. Items equal to what is stored are left alone, so
importing the same file twice changes nothing the second time.
"""

import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import yaml
from django.db import transaction
from django.utils import timezone

from core import audit, template_history
from core.forms import TEMPLATE_FORMS
from core.models import AgentTemplate, QueryTemplate

FORMAT = "analyst-admin-templates"
FORMAT_VERSION = 1
FORMATS = ("json", "yaml")
# section of a file: (model, the field an item is matched by)
SECTIONS = {
    "agent_templates": (AgentTemplate, "template_name"),
    "query_templates": (QueryTemplate, "name"),
}
HEADER_KEYS = {"format", "version", "exported_at"}


class TemplateFileError(ValueError):
    """The file cannot be read as JSON or YAML."""


@dataclass
class Problem:
    """Why an item (or the file) cannot be imported."""

    message: str
    section: str | None = None
    index: int | None = None
    name: str | None = None
    field: str | None = None

    def __str__(self):
        where = ""
        if self.section is not None:
            where = self.section if self.index is None else f"{self.section}[{self.index}]"
            if self.name:
                where += f" “{self.name}”"
        if self.field:
            where = f"{where}, field {self.field}" if where else f"field {self.field}"
        return f"{where}: {self.message}" if where else self.message


@dataclass
class ImportResult:
    problems: list = field(default_factory=list)
    # {section: [template names]}
    created: dict = field(default_factory=dict)
    updated: dict = field(default_factory=dict)
    unchanged: dict = field(default_factory=dict)
    dry_run: bool = False

    @property
    def ok(self):
        return not self.problems

    def summary(self):
        parts = []
        for section in SECTIONS:
            label = section.replace("_", " ")
            counts = [
                (len(getattr(self, kind).get(section, [])), kind)
                for kind in ("created", "updated", "unchanged")
            ]
            if any(count for count, _kind in counts):
                figures = ", ".join(f"{count} {kind}" for count, kind in counts)
                parts.append(f"{label}: {figures}")
        text = "; ".join(parts) or "nothing to import"
        return f"{text} (check only: nothing written)" if self.dry_run else text


# Export ------------------------------------------------------------------


def _item(obj):
    return template_history.snapshot(obj)


def export_data(agent_templates=None, query_templates=None):
    """The export of the given querysets (None: that kind is left out)."""
    data = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "exported_at": timezone.now().replace(microsecond=0).isoformat(),
    }
    for section, queryset in (
        ("agent_templates", agent_templates),
        ("query_templates", query_templates),
    ):
        if queryset is not None:
            _model, key = SECTIONS[section]
            data[section] = [_item(obj) for obj in queryset.order_by(key, "pk")]
    return data


class _BlockDumper(yaml.SafeDumper):
    """YAML with multi-line text (prompts, SQL) as readable ``|`` blocks."""


def _str_representer(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


def dumps(data, fmt):
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def guess_format(filename="", text=""):
    name = (filename or "").lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith((".yaml", ".yml")):
        return "yaml"
    return "json" if text.lstrip().startswith(("{", "[")) else "yaml"


# A template file is a mapping of lists of flat mappings: three levels. Far
# deeper nesting is an attack (the parsers and everything after them recurse:
# RecursionError), and so are YAML aliases that expand to millions of values.
MAX_DEPTH = 20
MAX_VALUES = 100_000


def _check_shape(data):
    """TemplateFileError when the data nests deeper than MAX_DEPTH or holds
    more than MAX_VALUES values (counting each use of a YAML alias)."""
    stack, seen = [(data, 1)], 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise TemplateFileError(f"too large: more than {MAX_VALUES:,} values")
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise TemplateFileError(f"nested deeper than {MAX_DEPTH} levels")
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return data


def _parse(text, fmt):
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise TemplateFileError(
                f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
            ) from error
    if fmt == "yaml":
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or "unreadable"
            raise TemplateFileError(f"not valid YAML: {problem}{where}") from error
    raise TemplateFileError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def loads(text, fmt=None, filename=""):
    """The data of a template file; TemplateFileError says why it is unreadable."""
    fmt = fmt or guess_format(filename, text)
    try:
        data = _parse(text, fmt)
    except RecursionError as error:
        raise TemplateFileError(f"nested deeper than {MAX_DEPTH} levels") from error
    return _check_shape(data)


# Import ------------------------------------------------------------------


def models_in(data):
    """The template models a file's data holds items of."""
    if not isinstance(data, dict):
        return []
    return [model for section, (model, _key) in SECTIONS.items() if data.get(section)]


def _check_header(data, problems):
    if not isinstance(data, dict):
        problems.append(
            Problem("the file must hold a mapping with agent_templates and/or query_templates")
        )
        return False
    for key in data:
        if key not in HEADER_KEYS and key not in SECTIONS:
            problems.append(Problem(f"unknown key “{key}”", field=str(key)))
    if data.get("format", FORMAT) != FORMAT:
        problems.append(Problem(f"format must be “{FORMAT}”", field="format"))
    if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        problems.append(
            Problem(f"version {data['version']!r} is not supported (only 1)", field="version")
        )
    if not any(section in data for section in SECTIONS):
        problems.append(Problem("the file holds neither agent_templates nor query_templates"))
    for section in SECTIONS:
        if section in data and not isinstance(data[section], list):
            problems.append(Problem("must be a list of templates", section=section))
    return not problems


def _type_problems(model, item):
    """Values of the wrong JSON type (the forms would quietly coerce them)."""
    for name, value in item.items():
        model_field = model._meta.get_field(name)
        if model_field.get_internal_type() == "BooleanField":
            if not isinstance(value, bool):
                yield name, "must be true or false"
        elif value is None:
            if not model_field.null:
                yield name, "is required"
        elif not isinstance(value, str):
            yield name, "must be text"


class _Plan:
    """One item of the file, validated: its form, and what it would do."""

    def __init__(self, section, index, form, adding):
        self.section, self.index, self.form, self.adding = section, index, form, adding

    @property
    def changed(self):
        return self.adding or self.form.has_changed()


def _validate_section(section, items, problems):
    model, key = SECTIONS[section]
    allowed = set(TEMPLATE_FORMS[model]._meta.fields)
    plans = []
    seen = {}
    for index, item in enumerate(items):

        def problem(message, field_name=None, name=None, index=index):
            problems.append(Problem(message, section, index, name, field_name))

        if not isinstance(item, dict):
            problem("must be a mapping of field names to values")
            continue
        name = item.get(key)
        label = name if isinstance(name, str) else None
        for unknown in sorted(set(map(str, item)) - allowed):
            problem(f"unknown field (known: {', '.join(sorted(allowed))})", unknown, label)
        bad_types = list(_type_problems(model, {k: v for k, v in item.items() if k in allowed}))
        for field_name, message in bad_types:
            problem(message, field_name, label)
        if not isinstance(name, str) or not name.strip():
            if not any(field_name == key for field_name, _message in bad_types):
                problem("is required: items are matched by it", key, label)
            continue
        folded = name.strip().casefold()
        if folded in seen:
            problem(f"the same {key} as {section}[{seen[folded]}]", key, label)
            continue
        seen[folded] = index
        if bad_types:
            continue
        matches = list(model._default_manager.filter(**{key: name.strip()})[:2])
        if len(matches) > 1:
            problem(f"several stored {section.replace('_', ' ')} have this {key}", key, label)
            continue
        instance = matches[0] if matches else model()
        data = {**template_history.snapshot(instance), **{k: item[k] for k in item if k in allowed}}
        form = TEMPLATE_FORMS[model](data=data, instance=instance)
        if not form.is_valid():
            for field_name, errors in form.errors.items():
                for message in errors:
                    problem(message, None if field_name == "__all__" else field_name, label)
            continue
        plans.append(_Plan(section, index, form, adding=not matches))
    return plans


def import_templates(data, user=None, request=None, dry_run=False, origin=""):
    """Validate every item of ``data`` (a loaded file), then write them all or
    none. ``request`` (admin) or ``user`` (command) is the audit trail's actor;
    ``origin`` (a file name) goes into each version's comment."""
    result = ImportResult(dry_run=dry_run)
    if not _check_header(data, result.problems):
        return result
    plans = []
    for section in SECTIONS:
        plans += _validate_section(section, data.get(section) or [], result.problems)
    if result.problems:
        return result

    user = getattr(request, "user", user)
    # A command has no request; the audit trail then records the actor alone.
    audit_request = request or SimpleNamespace(user=user, META={}, headers={})
    comment = f"Imported from {origin}" if origin else "Imported"
    with transaction.atomic():
        for plan in plans:
            model, key = SECTIONS[plan.section]
            name = plan.form.cleaned_data[key]
            if not plan.changed:
                result.unchanged.setdefault(plan.section, []).append(name)
                continue
            bucket = result.created if plan.adding else result.updated
            bucket.setdefault(plan.section, []).append(name)
            if dry_run:
                continue
            if not plan.adding:
                template_history.ensure_baselines(model, [plan.form.instance.pk])
            changed = list(plan.form.changed_data)
            obj = plan.form.save()
            version = template_history.record_version(
                obj, template_history.Action.IMPORTED, user, comment
            )
            audit.record(
                audit_request,
                "template_import",
                obj,
                new={
                    "created": plan.adding,
                    "fields": sorted(changed),
                    "version": version.number if version else None,
                    "origin": origin,
                },
            )
    return result
