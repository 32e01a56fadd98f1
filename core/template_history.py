"""Versions of agent and query templates: record them, compare two, revert.

A version (core.TemplateVersion) holds the values of the fields an Admin edits
(``Meta.fields`` of the template's form in core.forms). This site records one
on every save it makes: the admin form, a bulk action, an import, a revert. A
save that changes none of those fields records nothing. A template that
existed before its first change here (imported, demo data) first gets a
*baseline* version of its stored state, so that change can be compared too.
"""

import difflib
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from core.forms import TEMPLATE_FORMS
from core.models import TemplateVersion

Action = TemplateVersion.Action


def fields_of(model):
    """The names of the fields a version of ``model`` keeps."""
    return TEMPLATE_FORMS[model]._meta.fields


def snapshot(obj):
    """The kept fields' values of ``obj`` (text, booleans or None)."""
    return {name: getattr(obj, name) for name in fields_of(type(obj))}


def versions_of(obj):
    """The versions of ``obj``, newest first."""
    content_type = ContentType.objects.get_for_model(obj)
    return TemplateVersion.objects.filter(content_type=content_type, object_id=obj.pk).order_by(
        "-number"
    )


def _latest(model, pks):
    """{pk: latest version} of the templates of ``model`` among ``pks``."""
    content_type = ContentType.objects.get_for_model(model)
    numbers = (
        TemplateVersion.objects.filter(content_type=content_type, object_id__in=pks)
        .values("object_id")
        .annotate(last=Max("number"))
    )
    wanted = {row["object_id"]: row["last"] for row in numbers}
    if not wanted:
        return {}
    rows = TemplateVersion.objects.filter(content_type=content_type, object_id__in=wanted)
    return {v.object_id: v for v in rows if wanted[v.object_id] == v.number}


def record_versions(objs, action, user=None, comment=""):
    """A new version of each of ``objs`` (templates of one model) whose kept
    fields differ from its latest version. Returns the versions written."""
    objs = list(objs)
    if not objs:
        return []
    model = type(objs[0])
    content_type = ContentType.objects.get_for_model(model)
    with transaction.atomic():
        latest = _latest(model, [obj.pk for obj in objs])
        new = []
        for obj in objs:
            data = snapshot(obj)
            last = latest.get(obj.pk)
            if last is not None and last.data == data:
                continue
            new.append(
                TemplateVersion(
                    content_type=content_type,
                    object_id=obj.pk,
                    number=last.number + 1 if last else 1,
                    data=data,
                    action=action,
                    comment=comment[:255],
                    created_by=user if user is not None and user.is_authenticated else None,
                )
            )
        return TemplateVersion.objects.bulk_create(new)


def record_version(obj, action, user=None, comment=""):
    """A new version of ``obj``, or None when its kept fields are unchanged."""
    written = record_versions([obj], action, user, comment)
    return written[0] if written else None


def ensure_baselines(model, pks):
    """Record the stored state of those templates that have no version yet.

    Call it before changing them. The rows are locked (PostgreSQL) for the
    rest of the transaction, so two first edits cannot both number a
    baseline 1.
    """
    pks = list(pks)
    if not pks:
        return []
    with transaction.atomic():
        rows = list(model._default_manager.select_for_update().filter(pk__in=pks))
        content_type = ContentType.objects.get_for_model(model)
        kept = set(
            TemplateVersion.objects.filter(content_type=content_type, object_id__in=pks)
            .values_list("object_id", flat=True)
            .distinct()
        )
        missing = [obj for obj in rows if obj.pk not in kept]
        return record_versions(missing, Action.BASELINE, comment="Stored state when history began")


def revert(obj, version, user):
    """Give ``obj`` the values of ``version``, validated by the template's form,
    and record the result as a new version (None when nothing changed).

    Raises ValidationError when today's rules refuse the old values (a name
    another template has taken since, say).
    """
    model = type(obj)
    with transaction.atomic():
        ensure_baselines(model, [obj.pk])
        obj = model._default_manager.select_for_update().get(pk=obj.pk)
        data = snapshot(obj)
        data.update({name: value for name, value in version.data.items() if name in data})
        form = TEMPLATE_FORMS[model](data=data, instance=obj)
        if not form.is_valid():
            raise ValidationError(
                [
                    f"{name}: {message}" if name != "__all__" else message
                    for name, messages in form.errors.items()
                    for message in messages
                ]
            )
        obj = form.save()
        new = record_version(obj, Action.REVERTED, user, f"Reverted to version {version.number}")
    return obj, new


# Comparing ---------------------------------------------------------------

# Words, runs of spaces, and single other characters: what a changed line is
# compared by, so the words that changed can be marked.
TOKEN = re.compile(r"\w+|\s+|[^\w\s]")
# Below this likeness, a changed line is marked as a whole, not word by word.
WORD_DIFF_MIN_RATIO = 0.5


class DiffLine(NamedTuple):
    """One line of a diff. ``kind``: ``del``, ``add``, ``ctx`` (unchanged
    context) or ``gap`` (lines skipped). ``parts`` marks the words that changed
    in a line edited in place: (changed, text) pairs; empty otherwise."""

    kind: str
    text: str
    parts: tuple = ()


@dataclass
class FieldDiff:
    """What changed in one field, as DiffLines."""

    name: str
    label: str
    lines: list = field(default_factory=list)

    @property
    def added(self):
        return sum(1 for line in self.lines if line.kind == "add")

    @property
    def removed(self):
        return sum(1 for line in self.lines if line.kind == "del")


def as_text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def word_parts(old, new):
    """(changed, text) parts of two versions of a line, or two empty tuples
    when they have too little in common for word marks to help."""
    a, b = TOKEN.findall(old), TOKEN.findall(new)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.ratio() < WORD_DIFF_MIN_RATIO:
        return (), ()
    old_parts, new_parts = [], []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        changed = tag != "equal"
        if i2 > i1:
            old_parts.append((changed, "".join(a[i1:i2])))
        if j2 > j1:
            new_parts.append((changed, "".join(b[j1:j2])))
    return tuple(old_parts), tuple(new_parts)


def _changed_lines(old_lines, new_lines):
    """DiffLines of a replaced block: removed lines, then added ones, the
    lines edited in place (paired in order) with their changed words marked."""
    pairs = [word_parts(a, b) for a, b in zip(old_lines, new_lines, strict=False)]
    removed = [
        DiffLine("del", line, pairs[n][0] if n < len(pairs) else ())
        for n, line in enumerate(old_lines)
    ]
    added = [
        DiffLine("add", line, pairs[n][1] if n < len(pairs) else ())
        for n, line in enumerate(new_lines)
    ]
    return removed + added


def diff_lines(old, new, context=3):
    """A line diff of two texts with ``context`` unchanged lines around each change."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    multiline = len(old_lines) > 1 or len(new_lines) > 1
    lines = []
    for group in difflib.SequenceMatcher(None, old_lines, new_lines).get_grouped_opcodes(context):
        first = group[0]
        if multiline and (first[1] or first[3]):  # lines skipped before this group
            lines.append(DiffLine("gap", f"line {first[3] + 1}"))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines.extend(DiffLine("ctx", line) for line in old_lines[i1:i2])
            else:
                lines.extend(_changed_lines(old_lines[i1:i2], new_lines[j1:j2]))
    return lines


def diff(model, old, new):
    """The FieldDiffs between two versions' data of ``model``, in form order."""
    result = []
    for name in fields_of(model):
        before, after = as_text(old.get(name)), as_text(new.get(name))
        if before == after:  # None and "" read the same
            continue
        lines = diff_lines(before, after) or [DiffLine("gap", "only line endings changed")]
        label = model._meta.get_field(name).verbose_name
        result.append(FieldDiff(name, str(label), lines))
    return result
