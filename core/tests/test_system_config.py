"""System settings: JSON validated with a clear error, sensitive values masked
and write-only, every change audited with old and new values, masked where
sensitive."""

import json

import pytest
from django.urls import reverse

from core.admin import MASK
from core.models import AuditLog, SystemConfig

from . import factories as f

pytestmark = pytest.mark.django_db

SECRET = "sk-live-T0P-S3CRET-4711"


@pytest.fixture
def admin_user():
    return f.UserFactory(groups=["Admins"])


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _add_url():
    return reverse("admin:core_systemconfig_add")


def _change_url(setting):
    return reverse("admin:core_systemconfig_change", args=[setting.pk])


def _entries():
    """The audit entries about settings (a login writes one of its own)."""
    return AuditLog.objects.filter(resource_type="core.systemconfig")


def _audit_text():
    """Every audit row's values, as one text to search for secrets."""
    rows = AuditLog.objects.values_list("old_values", "new_values")
    return json.dumps(list(rows), ensure_ascii=False)


# JSON ------------------------------------------------------------------------


def test_invalid_json_is_refused_saying_where_and_how(admin_client):
    response = admin_client.post(
        _add_url(), {"config_key": "limits", "config_value": "{'rows': 10}", "description": ""}
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["config_value"] == [
        "This is not valid JSON (Expecting property name enclosed in double quotes at line 1, "
        'column 2). Write text in double quotes ("text"), and numbers, true, false, null, '
        '[lists] and {"objects": 1} as in JSON.'
    ]
    assert not SystemConfig.objects.exists()
    assert not _entries().exists()


def test_bare_text_is_refused_as_json_on_change(admin_client):
    setting = f.SystemConfigFactory(config_key="greeting", config_value="hello")

    response = admin_client.post(
        _change_url(setting), {"config_key": "greeting", "config_value": "hello world"}
    )

    assert "This is not valid JSON (Expecting value at line 1, column 1)" in (
        response.content.decode()
    )
    setting.refresh_from_db()
    assert setting.config_value == "hello"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("42", 42), ("true", True), ('"text"', "text"), ('{"rows": [1, 2]}', {"rows": [1, 2]})],
)
def test_valid_json_is_stored_as_its_value(admin_client, typed, stored):
    response = admin_client.post(_add_url(), {"config_key": "k", "config_value": typed})

    assert response.status_code == 302
    assert SystemConfig.objects.get(config_key="k").config_value == stored


# Audit of plain settings -----------------------------------------------------


def test_change_is_audited_with_old_and_new_values_of_changed_fields(admin_client, admin_user):
    setting = f.SystemConfigFactory(
        config_key="max_rows", config_value={"rows": 100}, description="Row cap"
    )

    response = admin_client.post(
        _change_url(setting),
        {"config_key": "max_rows", "config_value": '{"rows": 500}', "description": "Row cap"},
    )

    assert response.status_code == 302
    entry = _entries().get()
    assert (entry.action, entry.actor, entry.resource_id) == (
        "admin_change",
        admin_user,
        str(setting.pk),
    )
    assert entry.old_values == {"config_value": {"rows": 100}}
    assert entry.new_values == {"config_value": {"rows": 500}}
    setting.refresh_from_db()
    assert setting.updated_by == admin_user.username


def test_addition_is_audited_with_its_values(admin_client):
    admin_client.post(
        _add_url(), {"config_key": "theme", "config_value": '"dark"', "description": "UI"}
    )

    entry = _entries().get()
    assert entry.action == "admin_add"
    assert entry.new_values == {
        "config_key": "theme",
        "config_value": "dark",
        "description": "UI",
        "is_sensitive": False,
    }


# Sensitive settings ------------------------------------------------------------


@pytest.fixture
def api_key_setting():
    return f.SystemConfigFactory(
        config_key="openai_api_key", config_value=SECRET, is_sensitive=True, description="Key"
    )


def test_sensitive_value_is_masked_on_list_and_change_page(admin_client, api_key_setting):
    for url in (reverse("admin:core_systemconfig_changelist"), _change_url(api_key_setting)):
        html = admin_client.get(url).content.decode()
        assert SECRET not in html and "S3CRET" not in html, url
        assert MASK in html, url


def test_sensitive_change_is_audited_masked_never_with_the_secret(admin_client, api_key_setting):
    new_secret = "sk-live-N3W-S3CRET-0815"

    response = admin_client.post(
        _change_url(api_key_setting),
        {
            "config_key": "openai_api_key",
            "new_value": new_secret,
            "is_sensitive": "on",
            "description": "Key",
        },
    )

    assert response.status_code == 302
    api_key_setting.refresh_from_db()
    assert api_key_setting.config_value == new_secret
    entry = _entries().get()
    assert entry.old_values == {"config_value": "••••••"}
    assert entry.new_values == {"config_value": "••••••"}
    assert SECRET not in _audit_text() and new_secret not in _audit_text()
    # The audit log's own page shows the mask too.
    html = admin_client.get(reverse("admin:core_auditlog_change", args=[entry.pk])).content
    assert "••••••" in html.decode() and new_secret.encode() not in html


def test_empty_new_value_keeps_the_secret_and_audits_only_what_changed(
    admin_client, api_key_setting
):
    admin_client.post(
        _change_url(api_key_setting),
        {"config_key": "openai_api_key", "new_value": "", "is_sensitive": "on", "description": "B"},
    )

    api_key_setting.refresh_from_db()
    assert api_key_setting.config_value == SECRET
    entry = _entries().get()
    assert (entry.old_values, entry.new_values) == ({"description": "Key"}, {"description": "B"})


def test_making_a_plain_setting_sensitive_masks_its_old_value_too(admin_client):
    setting = f.SystemConfigFactory(config_key="token", config_value="abc-PLAIN-123")

    admin_client.post(
        _change_url(setting),
        {
            "config_key": "token",
            "config_value": '"xyz-NEW-789"',
            "is_sensitive": "on",
            "description": "A setting",
        },
    )

    entry = _entries().get()
    assert entry.old_values == {"config_value": MASK, "is_sensitive": False}
    assert entry.new_values == {"config_value": MASK, "is_sensitive": True}
    assert "abc-PLAIN-123" not in _audit_text() and "xyz-NEW-789" not in _audit_text()


def test_sensitive_addition_and_deletion_are_audited_masked(admin_client):
    admin_client.post(
        _add_url(),
        {"config_key": "sentry_dsn", "config_value": f'"{SECRET}"', "is_sensitive": "on"},
    )
    setting = SystemConfig.objects.get(config_key="sentry_dsn")
    assert setting.config_value == SECRET

    admin_client.post(reverse("admin:core_systemconfig_delete", args=[setting.pk]), {"post": "yes"})

    assert not SystemConfig.objects.exists()
    added, deleted = _entries().order_by("pk")
    assert (added.action, added.new_values["config_value"]) == ("admin_add", MASK)
    assert (deleted.action, deleted.old_values["config_value"]) == ("admin_delete", MASK)
    assert deleted.old_values["config_key"] == "sentry_dsn"
    assert SECRET not in _audit_text()


def test_form_sent_back_with_errors_does_not_echo_a_sensitive_value(admin_client):
    response = admin_client.post(
        _add_url(), {"config_key": "", "config_value": f'"{SECRET}"', "is_sensitive": "on"}
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["config_key"]
    assert SECRET not in response.content.decode()


def test_typed_values_are_kept_out_of_error_reports(admin_client, api_key_setting):
    response = admin_client.post(_change_url(api_key_setting), {"config_key": ""})

    assert response.wsgi_request.sensitive_post_parameters == ("new_value", "config_value")


def test_bulk_delete_of_settings_is_audited_masked(admin_client, api_key_setting):
    plain = f.SystemConfigFactory(config_key="plain", config_value=3)

    admin_client.post(
        reverse("admin:core_systemconfig_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [api_key_setting.pk, plain.pk],
            "post": "yes",
        },
    )

    old = {e.resource_id: e.old_values for e in _entries().filter(action="admin_delete")}
    assert old[str(api_key_setting.pk)]["config_value"] == MASK
    assert old[str(plain.pk)]["config_value"] == 3
    assert SECRET not in _audit_text()
