"""One audit trail (core.AuditLog): logins, logouts and failed logins join
the admin's changes and the mistake flag, each with the account, the
address and the user agent; nobody, superusers included, can add, change
or delete an entry.
"""

import pytest
from django.contrib.auth.hashers import make_password
from django.urls import reverse

from core.models import AuditLog

from . import factories as f

pytestmark = pytest.mark.django_db

PASSWORD = "audit-trail-pass-4711"
WRONG = "audit-trail-WRONG-4711"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AuditTest/1.0"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def ops():
    return f.UserFactory(username="ops", password=make_password(PASSWORD))


def _login(client, password, username="ops", **headers):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password},
        HTTP_USER_AGENT=BROWSER,
        **headers,
    )


def _no_password_anywhere(*passwords):
    for entry in AuditLog.objects.all():
        text = " ".join(
            str(value)
            for value in (entry.old_values, entry.new_values, entry.error_message, entry.user_agent)
        )
        for password in passwords:
            assert password not in text, entry.action


# Logins ---------------------------------------------------------------------


def test_login_is_recorded_with_account_address_and_user_agent(client, ops):
    response = _login(client, PASSWORD, REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 302
    entry = AuditLog.objects.get(action="login")
    assert entry.actor == ops
    assert (entry.resource_type, entry.resource_id) == ("core.user", str(ops.pk))
    assert entry.ip_address == "203.0.113.9"
    assert entry.user_agent == BROWSER
    assert entry.success is True
    _no_password_anywhere(PASSWORD)


def test_login_behind_the_proxy_records_the_forwarded_address(client, ops, settings):
    settings.TRUSTED_PROXY_COUNT = 1  # nginx in front (docs/DEPLOY.md)
    _login(client, PASSWORD, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")

    assert AuditLog.objects.get(action="login").ip_address == "198.51.100.7"


def test_logout_is_recorded(client, ops):
    _login(client, PASSWORD)

    response = client.post(reverse("admin:logout"), HTTP_USER_AGENT=BROWSER)

    assert response.status_code == 200
    entry = AuditLog.objects.get(action="logout")
    assert entry.actor == ops
    assert entry.user_agent == BROWSER


def test_failed_login_is_recorded_with_the_username_never_the_password(client, ops):
    response = _login(client, WRONG, REMOTE_ADDR="203.0.113.10")

    assert response.status_code == 200  # the form again
    entry = AuditLog.objects.get(action="login_failed")
    assert entry.actor is None
    assert entry.success is False
    assert entry.new_values == {"username": "ops"}
    assert entry.ip_address == "203.0.113.10"
    assert entry.user_agent == BROWSER
    _no_password_anywhere(WRONG, PASSWORD)


def test_failed_login_of_an_unknown_name_is_recorded_too(client):
    _login(client, WRONG, username="nobody-here")

    assert AuditLog.objects.get(action="login_failed").new_values == {"username": "nobody-here"}


def test_inactive_account_cannot_log_in_and_the_attempt_is_recorded(client, ops):
    ops.is_active = False
    ops.save()

    _login(client, PASSWORD)

    assert "_auth_user_id" not in client.session
    assert AuditLog.objects.filter(action="login_failed").count() == 1
    assert not AuditLog.objects.filter(action="login").exists()


# Other staff actions land in the same trail ---------------------------------


def test_admin_change_and_mistake_flag_share_the_trail_with_logins(client, ops):
    ops.is_superuser = True
    ops.save()
    _login(client, PASSWORD)
    price = f.ModelPriceFactory()
    answer = f.MessageFactory(role="assistant")

    client.post(
        reverse("admin:usage_modelprice_change", args=[price.pk]),
        {
            "model_name": price.model_name,
            "provider": price.provider,
            "input_per_million": "0.200000",
            "output_per_million": "0.800000",
            "effective_from": price.effective_from.isoformat(),
        },
        HTTP_USER_AGENT=BROWSER,
    )
    client.post(
        reverse("review:flag_mistake", args=[answer.pk]),
        {"is_mistake": "on", "mistake_note": "wrong total"},
        HTTP_USER_AGENT=BROWSER,
    )
    client.post(reverse("admin:logout"), HTTP_USER_AGENT=BROWSER)

    trail = list(AuditLog.objects.order_by("timestamp", "pk"))
    assert [entry.action for entry in trail] == [
        "login",
        "admin_change",
        "flag_mistake",
        "logout",
    ]
    assert {entry.actor_id for entry in trail} == {ops.pk}
    assert {entry.user_agent for entry in trail} == {BROWSER}
    assert trail[1].resource_type == "usage.modelprice"
    assert trail[2].new_values == {"is_mistake": True, "mistake_note": "wrong total"}


# Read-only for everyone -----------------------------------------------------


@pytest.fixture(params=["superuser", "Admins"])
def top_account(request, client):
    if request.param == "superuser":
        user = f.UserFactory(is_superuser=True)
    else:
        user = f.UserFactory(groups=["Admins"])
    client.force_login(user)
    return user


@pytest.fixture
def entry():
    return f.AuditLogFactory(action="update", new_values={"title": "New"})


def test_top_accounts_can_read_the_audit_log(client, top_account, entry):
    changelist = client.get(reverse("admin:core_auditlog_changelist"))
    change = client.get(reverse("admin:core_auditlog_change", args=[entry.pk]))

    assert changelist.status_code == 200
    # the entry, and the login force_login wrote
    assert changelist.context["cl"].result_count == 2
    assert change.status_code == 200
    # Shown, not editable: no save button, no delete link.
    assert change.context["has_change_permission"] is False
    html = change.content.decode()
    assert 'name="_save"' not in html
    assert "deletelink" not in html


def test_nobody_adds_changes_or_deletes_an_audit_entry(client, top_account, entry):
    add = client.get(reverse("admin:core_auditlog_add"))
    add_post = client.post(reverse("admin:core_auditlog_add"), {"action": "forged"})
    change_post = client.post(
        reverse("admin:core_auditlog_change", args=[entry.pk]), {"action": "tampered"}
    )
    delete = client.get(reverse("admin:core_auditlog_delete", args=[entry.pk]))
    delete_post = client.post(
        reverse("admin:core_auditlog_delete", args=[entry.pk]), {"post": "yes"}
    )
    bulk = client.post(
        reverse("admin:core_auditlog_changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )

    statuses = [r.status_code for r in (add, add_post, change_post, delete, delete_post)]
    assert statuses == [403, 403, 403, 403, 403]
    # The changelist offers no delete action; the forged request changes nothing.
    assert bulk.status_code in (200, 302)
    entry.refresh_from_db()
    assert entry.action == "update"
    assert AuditLog.objects.exclude(action="login").count() == 1
    assert not AuditLog.objects.filter(action="forged").exists()


def test_the_changelist_offers_no_bulk_delete(client, top_account, entry):
    response = client.get(reverse("admin:core_auditlog_changelist"))

    form = response.context["action_form"]
    choices = [] if form is None else [name for name, _ in form.fields["action"].choices]
    assert "delete_selected" not in choices
    assert 'name="_selected_action"' not in response.content.decode()
