"""Agent templates in the admin: validation, preview, usage, bulk actions,
and their versions (history, diff, revert)."""

import datetime as dt

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.template.loader import render_to_string
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from core import template_history
from core.admin import AgentTemplateAdmin
from core.forms import AgentTemplateForm
from core.models import AgentTemplate, AuditLog, TemplateVersion

from . import factories as f

pytestmark = pytest.mark.django_db

Action = TemplateVersion.Action
WHEN = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def admin_user():
    """An Admin by group membership, not a superuser: the role grants it."""
    return f.UserFactory(username="ada", groups=["Admins"])


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _form_data(template=None, **changes):
    data = {
        "template_name": "sql_agent",
        "display_name": "SQL agent",
        "description": "Writes SQL.",
        "category": "Data",
        "icon_url": "",
        "variant_type": "individual",
        "prompt_template": "You write SQL for {goal}.",
        "is_active": "on",
    }
    if template is not None:
        data.update(
            {
                name: value
                for name, value in template_history.snapshot(template).items()
                if not isinstance(value, bool)
            }
        )
        data["icon_url"] = template.icon_url or ""
        data["display_name"] = template.display_name or ""
        data["category"] = template.category or ""
        for flag in ("is_active", "is_premium_only"):
            data.pop(flag, None)
            if getattr(template, flag):
                data[flag] = "on"
    data.update(changes)
    return data


def _change_url(template):
    return reverse("admin:core_agenttemplate_change", args=[template.pk])


def _versions_url(template, **query):
    url = reverse("admin:core_agenttemplate_versions", args=[template.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


# Validation ----------------------------------------------------------------


def test_template_name_taken_in_another_case_is_refused_with_its_name():
    f.AgentTemplateFactory(template_name="sql_agent")

    form = AgentTemplateForm(data=_form_data(template_name="SQL_Agent"))

    assert not form.is_valid()
    assert form.errors["template_name"] == [
        "An agent template named “sql_agent” already exists; template names are unique, "
        "whatever their case. Choose another name or edit that template."
    ]


def test_template_keeps_its_own_name_on_change():
    template = f.AgentTemplateFactory(template_name="sql_agent")

    form = AgentTemplateForm(data=_form_data(template, description="New."), instance=template)

    assert form.is_valid(), form.errors


def test_unknown_variant_type_is_refused_naming_the_choices():
    form = AgentTemplateForm(data=_form_data(variant_type="solo"))

    assert not form.is_valid()
    assert form.errors["variant_type"] == [
        "“solo” is not a variant type: choose planner, individual or both."
    ]


@pytest.mark.parametrize("variant", ["planner", "individual", "both"])
def test_each_variant_type_is_accepted(variant):
    assert AgentTemplateForm(data=_form_data(variant_type=variant)).is_valid()


def test_relative_icon_path_is_refused_with_a_clear_message():
    form = AgentTemplateForm(data=_form_data(icon_url="/icons/x.svg"))

    assert not form.is_valid()
    assert form.errors["icon_url"] == [
        "Enter a full address starting with http:// or https://, such as "
        "https://cdn.example.com/icons/chart.svg. A relative path like “/icons/x.svg” "
        "is refused: the applications load icons from their own hosts."
    ]


@pytest.mark.parametrize(
    "url", ["ftp://cdn.example.com/x.svg", "javascript:alert(1)", "icons.example.com/x.svg"]
)
def test_icon_url_of_another_scheme_or_none_is_refused(url):
    form = AgentTemplateForm(data=_form_data(icon_url=url))

    assert not form.is_valid()
    assert "starting with http:// or https://" in form.errors["icon_url"][0]


def test_http_url_without_a_host_is_refused_as_invalid():
    form = AgentTemplateForm(data=_form_data(icon_url="https://"))

    assert form.errors["icon_url"] == ["“https://” is not a valid web address."]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://cdn.example.com/icons/sql.svg", "https://cdn.example.com/icons/sql.svg"),
        ("", None),
    ],
)
def test_https_icon_url_or_none_is_stored(given, stored):
    form = AgentTemplateForm(data=_form_data(icon_url=given))

    assert form.is_valid(), form.errors
    assert form.save().icon_url == stored


def test_admin_change_form_shows_the_icon_error_and_saves_nothing(admin_client):
    template = f.AgentTemplateFactory(icon_url=None)

    response = admin_client.post(_change_url(template), _form_data(template, icon_url="/x.svg"))

    assert response.status_code == 200
    assert "A relative path like “/x.svg” is refused" in response.content.decode()
    template.refresh_from_db()
    assert template.icon_url is None
    assert not TemplateVersion.objects.exists()


# Preview ---------------------------------------------------------------------


def test_preview_highlights_placeholders_and_escapes_the_rest(admin_client):
    template = f.AgentTemplateFactory(
        prompt_template="Use <b>{dataset}</b> & answer {goal}; again {dataset}. <script>x</script>"
    )

    html = admin_client.get(_change_url(template)).content.decode()

    assert (
        '<pre class="template-preview">Use &lt;b&gt;<mark class="placeholder">{dataset}</mark>'
        '&lt;/b&gt; &amp; answer <mark class="placeholder">{goal}</mark>; again '
        '<mark class="placeholder">{dataset}</mark>. &lt;script&gt;x&lt;/script&gt;</pre>'
    ) in html
    assert (
        '<p class="placeholder-legend">Placeholders (2): '
        "<code>{dataset}</code> <code>{goal}</code></p>"
    ) in html
    assert "<script>x</script>" not in html


def test_preview_of_a_prompt_without_placeholders_says_so(admin_client):
    template = f.AgentTemplateFactory(prompt_template="Be brief.")

    html = admin_client.get(_change_url(template)).content.decode()

    assert (
        '<pre class="template-preview">Be brief.</pre>'
        '<p class="placeholder-legend">No placeholders.</p>'
    ) in html


# Usage -----------------------------------------------------------------------


@pytest.fixture
def used_templates():
    """Three templates: one used by three users (one switched off), one
    preference never used, one template nobody chose."""
    busy, quiet, unused = (
        f.AgentTemplateFactory(template_name=name) for name in ("busy", "quiet", "unused")
    )
    f.UserTemplatePreferenceFactory(template=busy, usage_count=5, last_used_at=WHEN)
    f.UserTemplatePreferenceFactory(
        template=busy, usage_count=7, last_used_at=WHEN + dt.timedelta(days=3)
    )
    f.UserTemplatePreferenceFactory(
        template=busy, usage_count=1, is_enabled=False, last_used_at=WHEN - dt.timedelta(days=9)
    )
    f.UserTemplatePreferenceFactory(template=quiet, usage_count=0, last_used_at=None)
    return busy, quiet, unused


def _usage_from_sql():
    """The same figures from plain SQL over the raw rows."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.template_name,
                   SUM(CASE WHEN p.is_enabled THEN 1 ELSE 0 END),
                   COALESCE(SUM(p.usage_count), 0),
                   MAX(p.last_used_at)
            FROM core_agenttemplate t
            LEFT JOIN core_usertemplatepreference p ON p.template_id = t.id
            GROUP BY t.template_name
            """
        )
        return {name: (enabled or 0, total) for name, enabled, total, _last in cursor.fetchall()}


def test_changelist_columns_show_usage_per_template(admin_client, used_templates):
    response = admin_client.get(reverse("admin:core_agenttemplate_changelist"))

    rows = {t.template_name: t for t in response.context["cl"].result_list}
    shown = {name: (t.users_enabled, t.total_usage) for name, t in rows.items()}
    assert shown == {"busy": (2, 13), "quiet": (1, 0), "unused": (0, 0)}
    assert shown == _usage_from_sql()
    assert rows["busy"].last_used == WHEN + dt.timedelta(days=3)
    assert rows["quiet"].last_used is None
    html = response.content.decode()
    assert '<td class="field-total_usage">13</td>' in html
    assert '<td class="field-last_used">2024-05-04 12:00</td>' in html
    assert '<td class="field-last_used">never</td>' in html


def test_changelist_sorts_by_total_usage(admin_client, used_templates):
    changelist = reverse("admin:core_agenttemplate_changelist")
    column = AgentTemplateAdmin.list_display.index("total_usage")

    response = admin_client.get(f"{changelist}?o=-{column}")

    names = [t.template_name for t in response.context["cl"].result_list]
    assert names[0] == "busy"


def test_change_page_shows_usage_with_a_link_to_enabled_preferences(admin_client, used_templates):
    busy = used_templates[0]

    html = admin_client.get(_change_url(busy)).content.decode()

    preferences = reverse("admin:core_usertemplatepreference_changelist")
    assert (
        f'<a href="{preferences}?template__id__exact={busy.pk}&amp;is_enabled__exact=1">2</a>'
        in (html)
    )
    assert '<div class="readonly">13</div>' in html
    assert '<div class="readonly">2024-05-04 12:00</div>' in html


# The changelist: session, user, the user's own and group permissions (2),
# the source and category choices, the filtered and the total count (plain
# COUNTs: the usage subqueries are dropped from them), and the page of
# templates with their usage (one query, a subquery per figure).
CHANGELIST_QUERIES = 9


@pytest.mark.parametrize("templates", [2, 12])
def test_changelist_query_count_does_not_grow_with_templates(
    admin_client, templates, django_assert_num_queries
):
    for template in f.AgentTemplateFactory.create_batch(templates):
        f.UserTemplatePreferenceFactory.create_batch(2, template=template)

    with django_assert_num_queries(CHANGELIST_QUERIES):
        response = admin_client.get(reverse("admin:core_agenttemplate_changelist"))

    assert len(response.context["cl"].result_list) == templates


# Bulk actions ------------------------------------------------------------------


def _act(client, action, templates):
    return client.post(
        reverse("admin:core_agenttemplate_changelist"),
        {"action": action, "_selected_action": [t.pk for t in templates]},
    )


@pytest.mark.parametrize(
    ("action", "field", "start", "audit_action"),
    [
        ("activate", "is_active", False, "activate_agent_template"),
        ("deactivate", "is_active", True, "deactivate_agent_template"),
        ("mark_premium_only", "is_premium_only", False, "mark_premium_agent_template"),
        ("unmark_premium_only", "is_premium_only", True, "unmark_premium_agent_template"),
    ],
)
def test_bulk_action_sets_the_flag_with_audit_history_and_versions(
    admin_client, admin_user, action, field, start, audit_action
):
    chosen = f.AgentTemplateFactory.create_batch(2, **{field: start})
    already = f.AgentTemplateFactory(**{field: not start})
    other = f.AgentTemplateFactory(**{field: start})

    response = _act(admin_client, action, [*chosen, already])

    assert response.status_code == 302
    values = dict(AgentTemplate.objects.values_list("pk", field))
    assert [values[t.pk] for t in chosen] == [not start, not start]
    assert values[already.pk] is (not start) and values[other.pk] is start
    # Only the rows that changed: an audit entry, an admin history entry, and
    # a version on top of the baseline of what they held.
    audits = AuditLog.objects.filter(action=audit_action)
    assert sorted(int(a.resource_id) for a in audits) == sorted(t.pk for t in chosen)
    assert {a.actor for a in audits} == {admin_user}
    assert all(a.new_values == {field: not start} for a in audits)
    assert LogEntry.objects.filter(object_id__in=[str(t.pk) for t in chosen]).count() == 2
    for template in chosen:
        versions = list(template_history.versions_of(template))
        assert [(v.number, v.action) for v in versions] == [(2, Action.BULK), (1, Action.BASELINE)]
        assert versions[1].data[field] is start and versions[0].data[field] is (not start)
        assert versions[0].created_by == admin_user
    assert not template_history.versions_of(already).exists()


def test_message_counts_only_the_templates_changed(admin_client):
    templates = [f.AgentTemplateFactory(is_active=False), f.AgentTemplateFactory(is_active=True)]

    response = _act(admin_client, "activate", templates)

    messages = [str(m) for m in response.wsgi_request._messages]
    assert messages == ["Activated: 1 agent template."]


# Permissions -----------------------------------------------------------------


def _custom_template_urls():
    """Every URL our template admins add, found by walking the resolver."""
    found = []

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif (
                isinstance(pattern, URLPattern)
                and pattern.name
                and (pattern.name.endswith(("_versions", "_revert", "_import", "_export")))
            ):
                found.append(pattern.name)

    walk(get_resolver().url_patterns)
    return sorted(found)


def test_resolver_holds_the_custom_template_urls():
    assert _custom_template_urls() == sorted(
        f"core_{model}_{page}"
        for model in ("agenttemplate", "querytemplate")
        for page in ("versions", "revert", "import", "export")
    )


def _args(name, agent, query):
    obj = agent if "agenttemplate" in name else query
    if name.endswith("_versions"):
        return [obj.pk]
    if name.endswith("_revert"):
        return [obj.pk, 1]
    return []


@pytest.mark.parametrize("group", ["Staff", "Managers", None])
def test_every_custom_template_url_refuses_who_is_not_an_admin(client, group):
    agent, query = f.AgentTemplateFactory(), f.QueryTemplateFactory()
    for obj in (agent, query):
        template_history.record_version(obj, Action.CREATED)
    client.force_login(f.UserFactory(groups=[group] if group else None))

    for name in _custom_template_urls():
        url = reverse(f"admin:{name}", args=_args(name, agent, query))
        assert client.get(url).status_code == 403, url
        assert client.post(url).status_code == 403, url

    assert AgentTemplate.objects.get().template_name == agent.template_name


def test_every_custom_template_url_sends_anonymous_to_login(client):
    agent, query = f.AgentTemplateFactory(), f.QueryTemplateFactory()

    for name in _custom_template_urls():
        url = reverse(f"admin:{name}", args=_args(name, agent, query))
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login")), url


# History -----------------------------------------------------------------------


def test_first_change_records_the_stored_state_then_the_change(admin_client, admin_user):
    template = f.AgentTemplateFactory(prompt_template="Old line\nsame line")

    response = admin_client.post(
        _change_url(template), _form_data(template, prompt_template="New line\nsame line")
    )

    assert response.status_code == 302
    baseline, changed = reversed(template_history.versions_of(template))
    assert (baseline.number, baseline.action, baseline.created_by) == (1, Action.BASELINE, None)
    assert baseline.data["prompt_template"] == "Old line\nsame line"
    assert (changed.number, changed.action, changed.created_by) == (2, Action.CHANGED, admin_user)
    assert changed.data["prompt_template"] == "New line\nsame line"
    assert set(changed.data) == set(AgentTemplateForm._meta.fields)


def test_lines_sent_by_a_browser_with_cr_lf_are_stored_with_lf(admin_client):
    template = f.AgentTemplateFactory(prompt_template="First.\nSecond.")

    admin_client.post(_change_url(template), _form_data(template, description="Changed."))
    admin_client.post(
        _change_url(template),
        _form_data(template, description="Changed.", prompt_template="First.\r\nSecond."),
    )

    template.refresh_from_db()
    assert template.prompt_template == "First.\nSecond."
    # The second save changed nothing: no version for line ends alone.
    assert [v.number for v in template_history.versions_of(template)] == [2, 1]


def test_adding_a_template_records_version_one(admin_client, admin_user):
    response = admin_client.post(reverse("admin:core_agenttemplate_add"), _form_data())

    assert response.status_code == 302
    template = AgentTemplate.objects.get(template_name="sql_agent")
    [version] = template_history.versions_of(template)
    assert (version.number, version.action, version.created_by) == (1, Action.CREATED, admin_user)


def test_saving_without_a_change_records_no_version(admin_client):
    template = f.AgentTemplateFactory()
    admin_client.post(_change_url(template), _form_data(template, description="Changed."))
    template.refresh_from_db()

    admin_client.post(_change_url(template), _form_data(template))
    admin_client.post(_change_url(template), _form_data(template))

    assert [v.number for v in template_history.versions_of(template)] == [2, 1]


@pytest.fixture
def edited(admin_client):
    """A template saved three times through the admin: versions 1 to 4."""
    template = f.AgentTemplateFactory(
        template_name="planner", prompt_template="Plan the steps.\nUse {dataset}.", is_active=True
    )
    for prompt in ("Plan the <b>steps</b>.\nUse {dataset}.", "Plan.\nUse {dataset} & {goal}."):
        admin_client.post(_change_url(template), _form_data(template, prompt_template=prompt))
        template.refresh_from_db()
    admin_client.post(_change_url(template), _form_data(template, description="Plans."))
    template.refresh_from_db()
    return template


def test_versions_page_lists_versions_newest_first_and_diffs_the_last_two(admin_client, edited):
    response = admin_client.get(_versions_url(edited))

    assert response.status_code == 200
    assert [v.number for v in response.context["versions"]] == [4, 3, 2, 1]
    assert (response.context["older"].number, response.context["newer"].number) == (3, 4)
    [change] = response.context["changes"]
    assert change.name == "description"
    html = response.content.decode()
    assert "Changes from version 3 to version 4" in html


def test_diff_between_any_two_versions_shows_old_and_new_lines_escaped(admin_client, edited):
    response = admin_client.get(_versions_url(edited, **{"from": 1, "to": 3}))

    [change] = response.context["changes"]
    assert change.name == "prompt_template"
    assert _kinds_and_texts(change.lines) == [
        ("del", "Plan the steps."),
        ("del", "Use {dataset}."),
        ("add", "Plan."),
        ("add", "Use {dataset} & {goal}."),
    ]
    html = response.content.decode()
    assert (
        '<tr class="diff-del"><td class="diff-sign">−</td><td class="diff-text">'
        'Plan<span class="diff-word"> the steps</span>.</td></tr>'
    ) in html
    assert (
        '<tr class="diff-add"><td class="diff-sign">+</td><td class="diff-text">'
        'Use {dataset}<span class="diff-word"> &amp; {goal}</span>.</td></tr>'
    ) in html


def _kinds_and_texts(lines):
    return [(line.kind, line.text) for line in lines]


def _diff_html(old, new):
    changes = template_history.diff(
        AgentTemplate, {"prompt_template": old}, {"prompt_template": new}
    )
    return render_to_string("admin/core/agenttemplate/_diff.html", {"changes": changes})


def test_diff_escapes_markup_in_a_prompt(admin_client, edited):
    response = admin_client.get(_versions_url(edited, **{"from": 1, "to": 2}))

    html = response.content.decode()
    assert '<span class="diff-word">&lt;b&gt;</span>steps<span class="diff-word">&lt;/b&gt;' in (
        html
    )
    assert "<b>steps</b>" not in html


def test_words_changed_in_a_line_are_marked_and_escaped():
    old, new = template_history.word_parts("Answer in <b>3</b> steps", "Answer in <i>5</i> steps")

    assert [text for changed, text in old if changed] == ["b", "3", "b"]
    assert [text for changed, text in new if changed] == ["i", "5", "i"]
    assert "".join(text for _changed, text in new) == "Answer in <i>5</i> steps"
    html = _diff_html("Answer in <b>3</b> steps", "Answer in <i>5</i> steps")
    assert (
        'Answer in &lt;<span class="diff-word">i</span>&gt;<span class="diff-word">5</span>'
        '&lt;/<span class="diff-word">i</span>&gt; steps'
    ) in html
    assert "<b>" not in html


def test_lines_with_little_in_common_are_not_marked_word_by_word():
    assert template_history.word_parts("Be brief.", "Explain every step in detail") == ((), ())
    html = _diff_html("Be brief.", "Explain every step in detail")
    assert '<td class="diff-text">Be brief.</td>' in html
    assert "diff-word" not in html


def test_diff_keeps_context_lines_and_marks_gaps_in_long_prompts():
    old = "\n".join(f"line {n}" for n in range(1, 21))
    new = old.replace("line 10", "line ten")

    lines = template_history.diff_lines(old, new)

    assert _kinds_and_texts(lines[:6]) == [
        ("gap", "line 7"),
        ("ctx", "line 7"),
        ("ctx", "line 8"),
        ("ctx", "line 9"),
        ("del", "line 10"),
        ("add", "line ten"),
    ]
    assert len(lines) == 9


def test_diff_of_a_flag_shows_yes_and_no():
    changes = template_history.diff(AgentTemplate, {"is_active": True}, {"is_active": False})

    assert [(c.name, _kinds_and_texts(c.lines)) for c in changes] == [
        ("is_active", [("del", "yes"), ("add", "no")])
    ]


def test_versions_page_of_a_template_without_history_says_so(admin_client):
    template = f.AgentTemplateFactory()

    response = admin_client.get(_versions_url(template))

    assert "No versions yet: history begins with the next save" in response.content.decode()


# The versions page: session, user, permissions (2), the template, its
# versions with their authors (one join). The content type comes from
# ContentType's cache, filled when the versions were written.
VERSIONS_QUERIES = 6


def test_versions_page_query_count_does_not_grow_with_versions(
    admin_client, edited, django_assert_num_queries
):
    with django_assert_num_queries(VERSIONS_QUERIES):
        admin_client.get(_versions_url(edited))
    for n in range(5):
        template_history.record_version(
            AgentTemplate(pk=edited.pk, **{**template_history.snapshot(edited), "category": n}),
            Action.CHANGED,
        )

    with django_assert_num_queries(VERSIONS_QUERIES):
        response = admin_client.get(_versions_url(edited))

    assert len(response.context["versions"]) == 9


def test_revert_asks_first_showing_what_will_change(admin_client, edited):
    url = reverse("admin:core_agenttemplate_revert", args=[edited.pk, 1])

    response = admin_client.get(url)

    assert response.status_code == 200
    assert [c.name for c in response.context["changes"]] == ["description", "prompt_template"]
    assert template_history.versions_of(edited).count() == 4


def test_revert_restores_the_version_as_a_new_version_with_audit_entry(
    admin_client, admin_user, edited
):
    url = reverse("admin:core_agenttemplate_revert", args=[edited.pk, 1])

    response = admin_client.post(url)

    assert response.status_code == 302
    assert response["Location"] == _change_url(edited)
    edited.refresh_from_db()
    assert edited.prompt_template == "Plan the steps.\nUse {dataset}."
    newest = template_history.versions_of(edited).first()
    assert (newest.number, newest.action, newest.created_by) == (5, Action.REVERTED, admin_user)
    assert newest.comment == "Reverted to version 1"
    assert newest.data == template_history.versions_of(edited).get(number=1).data
    entry = AuditLog.objects.get(action="template_revert")
    assert (entry.actor, entry.resource_type, entry.resource_id) == (
        admin_user,
        "core.agenttemplate",
        str(edited.pk),
    )
    assert entry.old_values == {"version": 4}
    assert entry.new_values == {
        "version": 5,
        "reverted_to": 1,
        "fields": ["Description", "Prompt template"],
    }
    assert LogEntry.objects.filter(object_id=str(edited.pk)).count() == 4


def test_revert_to_the_current_content_changes_nothing(admin_client, edited):
    url = reverse("admin:core_agenttemplate_revert", args=[edited.pk, 4])

    response = admin_client.post(url, follow=True)

    assert "Nothing to revert" in response.content.decode()
    assert template_history.versions_of(edited).count() == 4
    assert not AuditLog.objects.filter(action="template_revert").exists()


def test_revert_refused_by_todays_rules_changes_nothing(admin_client, edited):
    """Version 1's name has been taken by another template since."""
    admin_client.post(_change_url(edited), _form_data(edited, template_name="planner_v2"))
    f.AgentTemplateFactory(template_name="Planner")
    url = reverse("admin:core_agenttemplate_revert", args=[edited.pk, 1])

    response = admin_client.post(url, follow=True)

    assert "Cannot revert to version 1: template_name: An agent template named “Planner”" in (
        response.content.decode()
    )
    edited.refresh_from_db()
    assert edited.template_name == "planner_v2"
    assert template_history.versions_of(edited).count() == 5


def test_revert_of_an_unknown_version_is_404(admin_client, edited):
    url = reverse("admin:core_agenttemplate_revert", args=[edited.pk, 99])

    assert admin_client.post(url).status_code == 404


def test_versions_survive_the_template(admin_client, edited):
    pk = edited.pk
    edited.delete()

    assert TemplateVersion.objects.filter(object_id=pk).count() == 4
