"""Query templates in the admin: same placeholders in question and SQL, SQL
highlighted by Pygments, verified and public flags, versions."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from core import template_history
from core.forms import QueryTemplateForm
from core.models import AuditLog, QueryTemplate, TemplateVersion
from core.template_text import highlight_sql, placeholders

from . import factories as f

pytestmark = pytest.mark.django_db

Action = TemplateVersion.Action
QUESTION = "Top {n} products by revenue in {year}"
SQL = "SELECT name FROM products WHERE year = {year} ORDER BY revenue DESC LIMIT {n}"


@pytest.fixture
def admin_user():
    return f.UserFactory(groups=["Admins"])


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _data(**changes):
    data = {
        "name": "Top products",
        "description": "",
        "category": "sales",
        "question_template": QUESTION,
        "sql_template": SQL,
    }
    data.update(changes)
    return data


def _change_url(template):
    return reverse("admin:core_querytemplate_change", args=[template.pk])


# Placeholders ------------------------------------------------------------------


def test_placeholders_are_listed_once_in_order_of_use():
    assert placeholders("a {x} b {y_2} c {x} {9no} {{z}}") == ["x", "y_2", "z"]


def test_same_placeholders_in_another_order_pass():
    form = QueryTemplateForm(data=_data(sql_template="LIMIT {n} -- {year}"))

    assert form.is_valid(), form.errors


def test_placeholder_missing_from_the_sql_is_named_on_the_sql():
    form = QueryTemplateForm(data=_data(sql_template="SELECT name FROM products LIMIT {n}"))

    assert not form.is_valid()
    assert form.errors == {
        "sql_template": [
            "The SQL does not use {year}, which the question has. The question and the SQL "
            "must use the same placeholders."
        ]
    }


def test_placeholders_missing_on_both_sides_are_named_on_each():
    form = QueryTemplateForm(
        data=_data(question_template="Top {n} in {region}", sql_template="LIMIT {n} {year} {day}")
    )

    assert form.errors == {
        "sql_template": [
            "The SQL does not use {region}, which the question has. The question and the SQL "
            "must use the same placeholders."
        ],
        "question_template": [
            "The question does not use {year}, {day}, which the SQL has. The question and the "
            "SQL must use the same placeholders."
        ],
    }


def test_admin_form_shows_the_placeholder_error_and_saves_nothing(admin_client):
    template = f.QueryTemplateFactory(question_template=QUESTION, sql_template=SQL)

    response = admin_client.post(
        _change_url(template),
        {**_data(sql_template="SELECT 1 LIMIT {n}"), "is_public": "on"},
    )

    assert response.status_code == 200
    assert "The SQL does not use {year}, which the question has." in response.content.decode()
    template.refresh_from_db()
    assert template.sql_template == SQL
    assert not template.is_public


# SQL highlighted ----------------------------------------------------------------


def test_sql_is_highlighted_by_pygments_with_escaped_text_and_placeholder_spans():
    html = highlight_sql("SELECT a FROM t WHERE s = '<b>' LIMIT {n};")

    assert html.startswith('<div class="sql-highlight"><pre>')
    assert '<span class="k">SELECT</span>' in html
    assert "<span class=\"s1\">'&lt;b&gt;'</span>" in html
    assert '<span class="nv">{n}</span>' in html
    assert "<b>" not in html


def test_change_page_shows_the_sql_highlighted_with_its_stylesheet(admin_client):
    template = f.QueryTemplateFactory(
        question_template="Orders in {year}",
        sql_template="SELECT COUNT(*) FROM orders WHERE note = '</pre><script>x</script>' "
        "AND year = {year}",
    )

    html = admin_client.get(_change_url(template)).content.decode()

    assert '<div class="readonly"><div class="sql-highlight"><pre>' in html
    assert '<span class="k">SELECT</span>' in html
    assert "&lt;/pre&gt;&lt;script&gt;x&lt;/script&gt;" in html
    assert "<script>x</script>" not in html
    assert 'href="/static/css/sql-highlight.css"' in html
    assert 'Orders in <mark class="placeholder">{year}</mark>' in html


def test_sql_stylesheet_styles_pygments_classes_under_our_class():
    css = (Path(settings.BASE_DIR) / "static" / "css" / "sql-highlight.css").read_text()
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)

    assert ".sql-highlight .k {" in css
    assert ".sql-highlight .nv {" in css
    # Scoped: no rule of the stylesheet reaches outside the highlighted block.
    rules = [line for line in css.splitlines() if "{" in line]
    assert all(line.startswith(".sql-highlight") for line in rules)


# Flags ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "field", "start", "audit_action"),
    [
        ("mark_verified", "is_verified", False, "verify_query_template"),
        ("mark_unverified", "is_verified", True, "unverify_query_template"),
        ("make_public", "is_public", False, "publish_query_template"),
        ("make_private", "is_public", True, "unpublish_query_template"),
    ],
)
def test_bulk_action_sets_the_flag_audited_and_versioned(
    admin_client, admin_user, action, field, start, audit_action
):
    chosen = f.QueryTemplateFactory.create_batch(2, **{field: start})
    other = f.QueryTemplateFactory(**{field: start})

    response = admin_client.post(
        reverse("admin:core_querytemplate_changelist"),
        {"action": action, "_selected_action": [t.pk for t in chosen]},
    )

    assert response.status_code == 302
    for template in chosen:
        template.refresh_from_db()
        assert getattr(template, field) is (not start)
        assert template.updated_at is not None
        versions = list(template_history.versions_of(template))
        assert [v.action for v in versions] == [Action.BULK, Action.BASELINE]
    other.refresh_from_db()
    assert getattr(other, field) is start
    audits = AuditLog.objects.filter(action=audit_action)
    assert sorted(int(a.resource_id) for a in audits) == sorted(t.pk for t in chosen)
    assert {a.actor for a in audits} == {admin_user}


@pytest.mark.parametrize(
    ("parameter", "expected"),
    [("is_verified__exact=1", {"verified"}), ("is_public__exact=1", {"public"})],
)
def test_changelist_filters_by_flag(admin_client, parameter, expected):
    f.QueryTemplateFactory(name="verified", is_verified=True)
    f.QueryTemplateFactory(name="public", is_public=True)
    f.QueryTemplateFactory(name="neither")

    response = admin_client.get(f"{reverse('admin:core_querytemplate_changelist')}?{parameter}")

    assert {t.name for t in response.context["cl"].result_list} == expected


# The changelist: session, user, permissions (2), the source and category
# choices, the filtered and the total count, the page of templates with their
# app users (list_select_related).
CHANGELIST_QUERIES = 9


@pytest.mark.parametrize("templates", [2, 12])
def test_changelist_query_count_does_not_grow_with_templates(
    admin_client, templates, django_assert_num_queries
):
    f.QueryTemplateFactory.create_batch(templates, user=f.AppUserFactory())

    with django_assert_num_queries(CHANGELIST_QUERIES):
        response = admin_client.get(reverse("admin:core_querytemplate_changelist"))

    assert len(response.context["cl"].result_list) == templates


# History -------------------------------------------------------------------------


def test_query_template_edits_are_versioned_diffed_and_reverted(admin_client, admin_user):
    template = f.QueryTemplateFactory(question_template=QUESTION, sql_template=SQL)
    new_sql = SQL.replace("DESC", "ASC")
    admin_client.post(_change_url(template), {**_data(sql_template=new_sql), "is_verified": "on"})

    versions_url = reverse("admin:core_querytemplate_versions", args=[template.pk])
    response = admin_client.get(versions_url)

    assert [c.name for c in response.context["changes"]] == ["name", "sql_template", "is_verified"]
    sql_change = response.context["changes"][1]
    assert [(line.kind, line.text) for line in sql_change.lines] == [
        ("del", SQL),
        ("add", new_sql),
    ]
    assert [part for part in sql_change.lines[1].parts if part[0]] == [(True, "ASC")]

    revert_url = reverse("admin:core_querytemplate_revert", args=[template.pk, 1])
    assert admin_client.post(revert_url).status_code == 302
    template.refresh_from_db()
    assert (template.sql_template, template.is_verified) == (SQL, False)
    assert template_history.versions_of(template).first().action == Action.REVERTED
    assert AuditLog.objects.filter(action="template_revert", actor=admin_user).count() == 1


def test_saving_a_query_template_sets_updated_at(admin_client):
    template = f.QueryTemplateFactory(question_template=QUESTION, sql_template=SQL)
    assert template.updated_at is None

    admin_client.post(_change_url(template), _data(description="Now described."))

    template.refresh_from_db()
    assert template.description == "Now described."
    assert template.updated_at is not None
    assert QueryTemplate.objects.count() == 1
