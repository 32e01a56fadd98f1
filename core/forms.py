"""Forms of the configuration Admins edit: agent and query templates, system
settings, and the upload of a template file.

The template forms hold the rules of a valid template once. The admin's
change forms, an import (core.templates_io) and a revert
(core.template_history) all validate through them, and their ``Meta.fields``
are what a version keeps and what an export carries.
"""

import json

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils import timezone

from core.models import AgentTemplate, QueryTemplate, SystemConfig
from core.template_text import placeholders

# The fields an Admin edits: kept by every version, carried by every export.
AGENT_TEMPLATE_FIELDS = (
    "template_name",
    "display_name",
    "description",
    "category",
    "icon_url",
    "variant_type",
    "prompt_template",
    "is_active",
    "is_premium_only",
)
QUERY_TEMPLATE_FIELDS = (
    "name",
    "description",
    "category",
    "question_template",
    "sql_template",
    "is_public",
    "is_verified",
)
# Uploaded template files larger than this are refused unread.
MAX_IMPORT_BYTES = 5 * 1024 * 1024


def _braced(names):
    return ", ".join(f"{{{name}}}" for name in names)


class TemplateTextField(forms.CharField):
    """Template text in a textarea, with Unix line ends: browsers send a
    textarea's lines ending in CR LF, which would make every save through
    the admin a change of every line."""

    widget = forms.Textarea

    def to_python(self, value):
        value = super().to_python(value)
        return value.replace("\r\n", "\n").replace("\r", "\n") if value else value


class AgentTemplateForm(forms.ModelForm):
    # A plain text field: the model's URLField would quietly turn a relative
    # path into "https://icons/x.svg"; here it is refused with a reason.
    icon_url = forms.CharField(
        label="Icon URL",
        max_length=500,
        required=False,
        widget=forms.TextInput(attrs={"class": "vURLField"}),
        help_text="A full http:// or https:// address, or empty.",
    )

    class Meta:
        model = AgentTemplate
        fields = AGENT_TEMPLATE_FIELDS
        field_classes = {"description": TemplateTextField, "prompt_template": TemplateTextField}
        error_messages = {
            "variant_type": {
                "invalid_choice": "“%(value)s” is not a variant type: "
                "choose planner, individual or both.",
            },
        }
        help_texts = {
            "template_name": "The internal name the applications use; unique.",
            "prompt_template": "Names in braces, such as {goal}, are filled in by the agent.",
        }

    def clean_template_name(self):
        name = self.cleaned_data["template_name"]
        clash = (
            AgentTemplate.objects.filter(template_name__iexact=name)
            .exclude(pk=self.instance.pk)
            .values_list("template_name", flat=True)
            .first()
        )
        if clash is not None:
            raise ValidationError(
                "An agent template named “%(name)s” already exists; template names are "
                "unique, whatever their case. Choose another name or edit that template.",
                code="unique",
                params={"name": clash},
            )
        return name

    def clean_icon_url(self):
        url = self.cleaned_data["icon_url"]
        if not url:
            return None
        message = (
            "Enter a full address starting with http:// or https://, such as "
            "https://cdn.example.com/icons/chart.svg. A relative path like “%(value)s” "
            "is refused: the applications load icons from their own hosts."
        )
        if not url.lower().startswith(("http://", "https://")):
            raise ValidationError(message, code="scheme", params={"value": url})
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError as error:
            raise ValidationError(
                "“%(value)s” is not a valid web address.", code="invalid", params={"value": url}
            ) from error
        return url


class QueryTemplateForm(forms.ModelForm):
    class Meta:
        model = QueryTemplate
        fields = QUERY_TEMPLATE_FIELDS
        field_classes = {
            "description": TemplateTextField,
            "question_template": TemplateTextField,
            "sql_template": TemplateTextField,
        }
        labels = {"sql_template": "SQL template"}
        help_texts = {
            "question_template": "Names in braces, such as {year}, are the parameters.",
            "sql_template": "Uses exactly the placeholders of the question.",
        }

    def clean(self):
        cleaned = super().clean()
        question, sql = cleaned.get("question_template"), cleaned.get("sql_template")
        if question is None or sql is None:
            return cleaned
        in_question, in_sql = placeholders(question), placeholders(sql)
        if missing := [name for name in in_question if name not in in_sql]:
            self.add_error(
                "sql_template",
                ValidationError(
                    "The SQL does not use %(names)s, which the question has. The question "
                    "and the SQL must use the same placeholders.",
                    code="placeholders",
                    params={"names": _braced(missing)},
                ),
            )
        if missing := [name for name in in_sql if name not in in_question]:
            self.add_error(
                "question_template",
                ValidationError(
                    "The question does not use %(names)s, which the SQL has. The question "
                    "and the SQL must use the same placeholders.",
                    code="placeholders",
                    params={"names": _braced(missing)},
                ),
            )
        return cleaned

    def save(self, commit=True):
        self.instance.updated_at = timezone.now()
        return super().save(commit)


# The form of each kind of template, for import and revert.
TEMPLATE_FORMS = {AgentTemplate: AgentTemplateForm, QueryTemplate: QueryTemplateForm}


class TemplateImportForm(forms.Form):
    file = forms.FileField(
        label="Template file",
        help_text="JSON or YAML, as written by an export (.json, .yaml or .yml).",
    )
    dry_run = forms.BooleanField(
        label="Check only",
        required=False,
        help_text="Validate the file and show what would change; write nothing.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise ValidationError(
                "The file is larger than %(limit)s MB.",
                params={"limit": MAX_IMPORT_BYTES // (1024 * 1024)},
            )
        return upload


# System settings ----------------------------------------------------------


class JSONValueField(forms.JSONField):
    """JSON whose parse error says where and how it is wrong, never echoing
    the value (which may be a secret)."""

    default_error_messages = {
        "invalid": "This is not valid JSON (%(detail)s). Write text in double quotes "
        '("text"), and numbers, true, false, null, [lists] and {"objects": 1} as in JSON.',
    }

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            try:
                json.loads(value)
            except json.JSONDecodeError as error:
                raise ValidationError(
                    self.error_messages["invalid"],
                    code="invalid",
                    params={"detail": f"{error.msg} at line {error.lineno}, column {error.colno}"},
                ) from error
        return super().to_python(value)


class SystemConfigForm(forms.ModelForm):
    """Add form, and change form of a non-sensitive setting: the value is
    edited as JSON. A form sent back with errors does not echo a value
    marked sensitive."""

    class Meta:
        model = SystemConfig
        fields = ("config_key", "config_value", "description", "is_sensitive")
        field_classes = {"config_value": JSONValueField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        sensitive = self.add_prefix("is_sensitive")
        if self.is_bound and self.data.get(sensitive) and "config_value" in self.fields:
            self.fields["config_value"].widget = forms.PasswordInput(render_value=False)


class SensitiveSystemConfigForm(forms.ModelForm):
    """Change form of a sensitive setting: the value is write-only."""

    new_value = forms.CharField(
        label="New value",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=(
            "Leave empty to keep the current value. Valid JSON (123, true, "
            '{"a": 1}, "text") is stored as JSON, anything else as a string.'
        ),
    )

    class Meta:
        model = SystemConfig
        fields = ("config_key", "description", "is_sensitive")

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("is_sensitive") and not self._new_value():
            self.add_error(
                "is_sensitive",
                "To make this setting non-sensitive, enter its new value: "
                "the current one is never shown.",
            )
        return cleaned

    def _new_value(self):
        value = self.cleaned_data.get("new_value") or ""
        return value if value.strip() else ""

    def save(self, commit=True):
        if raw := self._new_value():
            try:
                self.instance.config_value = json.loads(raw)
            except ValueError:
                self.instance.config_value = raw
        return super().save(commit)
