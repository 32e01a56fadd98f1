"""Export and import of templates (JSON, YAML): the admin actions and pages,
the two commands, validation before any write, and idempotence."""

import json

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from core import template_history, templates_io
from core.models import AgentTemplate, AuditLog, QueryTemplate, TemplateVersion

from . import factories as f

pytestmark = pytest.mark.django_db

Action = TemplateVersion.Action
PROMPT = "You are the SQL agent.\nUse {dataset} to answer {goal}."


def _agent(**changes):
    item = {
        "template_name": "sql_agent",
        "display_name": "SQL agent",
        "description": "Writes SQL.",
        "category": "Data",
        "icon_url": "https://cdn.example.com/sql.svg",
        "variant_type": "individual",
        "prompt_template": "You write SQL for {goal}.",
        "is_active": True,
        "is_premium_only": False,
    }
    item.update(changes)
    return item


def _query(**changes):
    item = {
        "name": "Top products",
        "description": None,
        "category": "sales",
        "question_template": "Top {n} products",
        "sql_template": "SELECT name FROM products LIMIT {n}",
        "is_public": True,
        "is_verified": False,
    }
    item.update(changes)
    return item


def _file(agents=(), queries=()):
    return {
        "format": templates_io.FORMAT,
        "version": 1,
        "agent_templates": list(agents),
        "query_templates": list(queries),
    }


def _problems(result):
    return [str(problem) for problem in result.problems]


@pytest.fixture
def admin_user():
    return f.UserFactory(username="ada", groups=["Admins"])


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


# Export ------------------------------------------------------------------------


def test_export_holds_the_edited_fields_sorted_by_name_without_ids():
    f.AgentTemplateFactory(template_name="b_agent", prompt_template=PROMPT, imported=True)
    f.AgentTemplateFactory(template_name="a_agent")
    f.QueryTemplateFactory(name="Revenue", user=f.AppUserFactory(), usage_count=40)

    data = templates_io.export_data(AgentTemplate.objects.all(), QueryTemplate.objects.all())

    assert (data["format"], data["version"]) == ("analyst-admin-templates", 1)
    assert [item["template_name"] for item in data["agent_templates"]] == ["a_agent", "b_agent"]
    assert data["agent_templates"][1]["prompt_template"] == PROMPT
    assert list(data["agent_templates"][0]) == [
        "template_name",
        "display_name",
        "description",
        "category",
        "icon_url",
        "variant_type",
        "prompt_template",
        "is_active",
        "is_premium_only",
    ]
    [query] = data["query_templates"]
    assert set(query) == {
        "name",
        "description",
        "category",
        "question_template",
        "sql_template",
        "is_public",
        "is_verified",
    }


def test_yaml_writes_prompts_as_blocks_and_reads_back_the_same():
    f.AgentTemplateFactory(template_name="sql_agent", prompt_template=PROMPT)
    data = templates_io.export_data(agent_templates=AgentTemplate.objects.all())

    text = templates_io.dumps(data, "yaml")

    assert (
        "prompt_template: |-\n    You are the SQL agent.\n    Use {dataset} to answer {goal}.\n"
        in (text)
    )
    assert templates_io.loads(text, filename="t.yaml") == data
    assert templates_io.loads(templates_io.dumps(data, "json"), filename="t.json") == data


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_export_moves_templates_to_an_empty_deployment(fmt):
    f.AgentTemplateFactory(template_name="sql_agent", prompt_template=PROMPT, is_premium_only=True)
    f.QueryTemplateFactory(name="Top", is_verified=True)
    data = templates_io.export_data(AgentTemplate.objects.all(), QueryTemplate.objects.all())
    before = [template_history.snapshot(obj) for obj in (*AgentTemplate.objects.all(),)]
    text = templates_io.dumps(data, fmt)
    AgentTemplate.objects.all().delete()
    QueryTemplate.objects.all().delete()

    result = templates_io.import_templates(templates_io.loads(text, fmt))

    assert result.ok, _problems(result)
    assert result.created == {"agent_templates": ["sql_agent"], "query_templates": ["Top"]}
    assert [template_history.snapshot(obj) for obj in AgentTemplate.objects.all()] == before
    assert QueryTemplate.objects.get().is_verified is True


# Import ---------------------------------------------------------------------


def test_import_creates_updates_and_matches_by_name(admin_user):
    stored = f.AgentTemplateFactory(**_agent(description="Old."))
    f.QueryTemplateFactory(name="Top products", question_template="Top {n} products")

    result = templates_io.import_templates(
        _file([_agent(description="New."), _agent(template_name="viz_agent")], [_query()]),
        user=admin_user,
        origin="set.json",
    )

    assert result.ok, _problems(result)
    assert result.created == {"agent_templates": ["viz_agent"]}
    assert result.updated == {"agent_templates": ["sql_agent"], "query_templates": ["Top products"]}
    stored.refresh_from_db()
    assert stored.description == "New."
    assert AgentTemplate.objects.count() == 2 and QueryTemplate.objects.count() == 1
    # The update is a version on top of the stored state, by the importer.
    versions = list(template_history.versions_of(stored))
    assert [(v.number, v.action) for v in versions] == [(2, Action.IMPORTED), (1, Action.BASELINE)]
    assert (versions[0].comment, versions[0].created_by) == ("Imported from set.json", admin_user)
    entry = AuditLog.objects.get(
        action="template_import", resource_type="core.agenttemplate", resource_id=str(stored.pk)
    )
    assert entry.actor == admin_user
    assert entry.new_values == {
        "created": False,
        "fields": ["description"],
        "version": 2,
        "origin": "set.json",
    }


def test_importing_the_same_file_twice_changes_nothing_the_second_time():
    data = _file([_agent(prompt_template=PROMPT), _agent(template_name="b")], [_query()])
    first = templates_io.import_templates(data)
    assert first.ok, _problems(first)
    counts = (TemplateVersion.objects.count(), AuditLog.objects.count())
    stored = {t.pk: template_history.snapshot(t) for t in AgentTemplate.objects.all()}

    second = templates_io.import_templates(data)

    assert second.ok
    assert (second.created, second.updated) == ({}, {})
    assert second.unchanged == {
        "agent_templates": ["sql_agent", "b"],
        "query_templates": ["Top products"],
    }
    assert (TemplateVersion.objects.count(), AuditLog.objects.count()) == counts
    assert {t.pk: template_history.snapshot(t) for t in AgentTemplate.objects.all()} == stored


def test_an_item_with_some_fields_changes_only_those():
    stored = f.AgentTemplateFactory(template_name="sql_agent", is_premium_only=True)

    result = templates_io.import_templates(
        {"agent_templates": [{"template_name": "sql_agent", "is_active": False}]}
    )

    assert result.ok, _problems(result)
    stored.refresh_from_db()
    assert (stored.is_active, stored.is_premium_only) == (False, True)


def test_every_problem_is_reported_with_index_and_field_and_nothing_is_written():
    f.QueryTemplateFactory.create_batch(2, name="Twice stored")
    f.AgentTemplateFactory(template_name="taken")
    data = _file(
        [
            _agent(template_name="fine_one"),
            _agent(template_name="bad_icon", icon_url="/icons/x.svg"),
            "not a mapping",
            _agent(template_name="fine_one"),
            _agent(template_name="bad_variant", variant_type="solo", colour="red"),
            _agent(template_name="bad_flag", is_active="yes"),
            _agent(template_name=None),
            _agent(template_name="TAKEN"),
        ],
        [
            _query(name="Mismatch", sql_template="SELECT 1"),
            _query(name="Twice stored"),
            _query(name="No SQL", sql_template=None),
        ],
    )

    result = templates_io.import_templates(data)

    assert _problems(result) == [
        "agent_templates[1] “bad_icon”, field icon_url: Enter a full address starting with "
        "http:// or https://, such as https://cdn.example.com/icons/chart.svg. A relative path "
        "like “/icons/x.svg” is refused: the applications load icons from their own hosts.",
        "agent_templates[2]: must be a mapping of field names to values",
        "agent_templates[3] “fine_one”, field template_name: the same template_name as "
        "agent_templates[0]",
        "agent_templates[4] “bad_variant”, field colour: unknown field (known: category, "
        "description, display_name, icon_url, is_active, is_premium_only, prompt_template, "
        "template_name, variant_type)",
        "agent_templates[4] “bad_variant”, field variant_type: “solo” is not a variant type: "
        "choose planner, individual or both.",
        "agent_templates[5] “bad_flag”, field is_active: must be true or false",
        "agent_templates[6], field template_name: is required",
        "agent_templates[7] “TAKEN”, field template_name: An agent template named “taken” "
        "already exists; template names are unique, whatever their case. Choose another name "
        "or edit that template.",
        "query_templates[0] “Mismatch”, field sql_template: The SQL does not use {n}, which the "
        "question has. The question and the SQL must use the same placeholders.",
        "query_templates[1] “Twice stored”, field name: several stored query templates have "
        "this name",
        "query_templates[2] “No SQL”, field sql_template: is required",
    ]
    assert not result.ok
    assert set(AgentTemplate.objects.values_list("template_name", flat=True)) == {"taken"}
    assert QueryTemplate.objects.count() == 2
    assert not TemplateVersion.objects.exists()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "the file must hold a mapping with agent_templates and/or query_templates"),
        (
            {"format": "other", "agent_templates": []},
            "field format: format must be “analyst-admin-templates”",
        ),
        (
            {"version": 2, "agent_templates": []},
            "field version: version 2 is not supported (only 1)",
        ),
        ({"templates": []}, "field templates: unknown key “templates”"),
        ({"agent_templates": {"a": 1}}, "agent_templates: must be a list of templates"),
    ],
)
def test_a_file_of_the_wrong_shape_is_refused_whole(data, problem):
    result = templates_io.import_templates(data)

    assert problem in _problems(result)


def test_a_failure_while_writing_rolls_back_every_item(monkeypatch):
    calls = []
    real = template_history.record_version

    def fail_on_second(obj, *args, **kwargs):
        calls.append(obj)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(template_history, "record_version", fail_on_second)

    with pytest.raises(RuntimeError):
        templates_io.import_templates(_file([_agent(), _agent(template_name="second")]))

    assert not AgentTemplate.objects.exists()
    assert not TemplateVersion.objects.exists()


def test_dry_run_reports_what_would_change_and_writes_nothing():
    f.AgentTemplateFactory(template_name="sql_agent", description="Old.")

    result = templates_io.import_templates(
        _file([_agent(), _agent(template_name="new_one")]), dry_run=True
    )

    assert result.summary() == (
        "agent templates: 1 created, 1 updated, 0 unchanged (check only: nothing written)"
    )
    assert AgentTemplate.objects.get(template_name="sql_agent").description == "Old."
    assert AgentTemplate.objects.count() == 1
    assert not TemplateVersion.objects.exists()


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        (
            '{"agent_templates": [}',
            "t.json",
            "not valid JSON: Expecting value at line 1, column 22",
        ),
        ("agent_templates: [a\n  b: c", "t.yaml", "not valid YAML: "),
    ],
)
def test_unreadable_file_says_why(text, name, message):
    with pytest.raises(templates_io.TemplateFileError) as error:
        templates_io.loads(text, filename=name)

    assert str(error.value).startswith(message)


# Commands ----------------------------------------------------------------------


def test_export_command_writes_yaml_and_import_command_reads_it_back(tmp_path, admin_user):
    f.AgentTemplateFactory(template_name="sql_agent", prompt_template=PROMPT)
    f.QueryTemplateFactory(name="Top")
    path = tmp_path / "templates.yaml"

    call_command("export_templates", "--output", str(path))
    exported = yaml.safe_load(path.read_text())
    AgentTemplate.objects.update(prompt_template="changed")
    out = _call("import_templates", str(path), "--actor", "ada")

    assert [item["template_name"] for item in exported["agent_templates"]] == ["sql_agent"]
    assert AgentTemplate.objects.get().prompt_template == PROMPT
    assert out == (
        "templates.yaml: agent templates: 0 created, 1 updated, 0 unchanged; "
        "query templates: 0 created, 0 updated, 1 unchanged.\n"
    )
    assert AuditLog.objects.get(action="template_import").actor == admin_user


def _call(*args):
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_export_command_to_stdout_of_one_kind_as_json():
    f.AgentTemplateFactory(template_name="sql_agent")
    f.QueryTemplateFactory(name="Top")

    data = json.loads(_call("export_templates", "--only", "query"))

    assert "agent_templates" not in data
    assert [item["name"] for item in data["query_templates"]] == ["Top"]


def test_import_command_with_problems_fails_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_file([_agent(), _agent(template_name="x", icon_url="/x.svg")])))

    with pytest.raises(CommandError, match=r"nothing imported from bad.json: 1 problem$"):
        call_command("import_templates", str(path))

    assert not AgentTemplate.objects.exists()


def test_import_command_dry_run_writes_nothing(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(_file([_agent()])))

    out = _call("import_templates", str(path), "--dry-run")

    assert "1 created" in out and "check only: nothing written" in out
    assert not AgentTemplate.objects.exists()


def test_import_command_refuses_an_unreadable_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("agent_templates: [\n")

    with pytest.raises(CommandError, match=r"^bad.yaml is not valid YAML"):
        call_command("import_templates", str(path))


# Admin ---------------------------------------------------------------------------


def test_export_action_downloads_the_selected_templates_as_json(admin_client):
    chosen = f.AgentTemplateFactory(template_name="chosen")
    f.AgentTemplateFactory(template_name="left_out")

    response = admin_client.post(
        reverse("admin:core_agenttemplate_changelist"),
        {"action": "export_json", "_selected_action": [chosen.pk]},
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="agent-templates-')
    data = json.loads(response.content)
    assert [item["template_name"] for item in data["agent_templates"]] == ["chosen"]


def test_export_button_downloads_every_query_template_as_yaml(admin_client):
    f.QueryTemplateFactory.create_batch(3)

    response = admin_client.get(reverse("admin:core_querytemplate_export") + "?format=yaml")

    assert response["Content-Type"] == "application/yaml"
    assert len(yaml.safe_load(response.content)["query_templates"]) == 3


def _upload(data, name="set.json", fmt="json"):
    return SimpleUploadedFile(name, templates_io.dumps(data, fmt).encode())


def test_import_page_imports_a_file_and_says_what_it_did(admin_client):
    url = reverse("admin:core_agenttemplate_import")

    response = admin_client.post(
        url, {"file": _upload(_file([_agent()], [_query()]), "set.yaml", "yaml")}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("admin:core_agenttemplate_changelist")
    assert (
        "Imported set.yaml: agent templates: 1 created, 0 updated, 0 unchanged; "
        "query templates: 1 created, 0 updated, 0 unchanged."
    ) in response.content.decode()
    assert AgentTemplate.objects.count() == QueryTemplate.objects.count() == 1


def test_import_page_lists_every_problem_and_imports_nothing(admin_client):
    url = reverse("admin:core_querytemplate_import")
    data = _file([_agent(icon_url="/x.svg")], [_query(sql_template="SELECT 1")])

    response = admin_client.post(url, {"file": _upload(data)})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Nothing was imported: 2 problems." in html
    assert "agent_templates[0] “sql_agent”, field icon_url: Enter a full address" in html
    assert "query_templates[0] “Top products”, field sql_template: The SQL does not use {n}" in (
        html
    )
    assert not AgentTemplate.objects.exists() and not QueryTemplate.objects.exists()


def test_import_page_check_only_shows_the_summary_and_writes_nothing(admin_client):
    url = reverse("admin:core_agenttemplate_import")

    response = admin_client.post(url, {"file": _upload(_file([_agent()])), "dry_run": "on"})

    assert "importing it would give agent templates: 1 created" in response.content.decode()
    assert not AgentTemplate.objects.exists()


def test_import_page_refuses_a_file_that_is_not_json(admin_client):
    url = reverse("admin:core_agenttemplate_import")
    upload = SimpleUploadedFile("set.json", b'{"agent_templates": [')

    response = admin_client.post(url, {"file": upload})

    assert response.context["form"].errors["file"] == [
        "The file is not valid JSON: Expecting value at line 1, column 22."
    ]


# Hostile shapes (#17.6) ------------------------------------------------------------

DEEP_JSON = '{"agent_templates": ' + "[" * 100_000 + "]" * 100_000 + "}"
DEEP_YAML = "agent_templates: " + "[" * 100_000 + "]" * 100_000 + "\n"
# Each level refers to the one above nine times: 9^9 values once expanded.
LAUGHS_YAML = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    + [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    + ["agent_templates: *a9"]
)


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        (DEEP_JSON, "deep.json", "is nested deeper than 20 levels"),
        (DEEP_YAML, "deep.yaml", "is nested deeper than 20 levels"),
        (
            '{"agent_templates": ' + "[" * 30 + "]" * 30 + "}",
            "deep.json",
            "is nested deeper than 20 levels",
        ),
        (LAUGHS_YAML, "laughs.yaml", "is too large: more than 100,000 values"),
    ],
)
def test_deeply_nested_or_exploding_files_are_refused_with_a_clear_error(text, name, message):
    with pytest.raises(templates_io.TemplateFileError) as refused:
        templates_io.loads(text, filename=name)

    assert f"The file {message}" == f"The file is {refused.value}"


@pytest.mark.parametrize(
    ("text", "name"), [(DEEP_JSON, "deep.json"), (DEEP_YAML, "deep.yaml"), (LAUGHS_YAML, "l.yaml")]
)
def test_import_page_answers_a_hostile_file_with_a_form_error(admin_client, text, name):
    url = reverse("admin:core_agenttemplate_import")

    response = admin_client.post(url, {"file": SimpleUploadedFile(name, text.encode())})

    assert response.status_code == 200
    (error,) = response.context["form"].errors["file"]
    assert error in (
        "The file is nested deeper than 20 levels.",
        "The file is too large: more than 100,000 values.",
    )
    assert not AgentTemplate.objects.exists()


def test_import_command_refuses_a_deeply_nested_file(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text(DEEP_JSON)

    with pytest.raises(CommandError, match="deep.json is nested deeper than 20 levels"):
        call_command("import_templates", str(path))
