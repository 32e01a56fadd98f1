"""Secrets: database passwords encrypted at rest (with key rotation) and,
with every other secret (API keys and their hashes, refresh-token hashes,
app users' password hashes, sensitive settings), never in a page, an
export, a log line or an API response.

The walk covers every registered admin model (changelist, and the change,
history and delete pages of its rows), the custom pages and every CSV
export of the dashboards, after the secrets were typed in through the admin
itself, so its history and the audit trail are searched too.
"""

import logging
import re

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.contrib import admin
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from core import crypto
from core.apikeys import hash_api_key
from core.management.commands import rotate_encryption_key as rotate_command
from core.models import ApiKey, AuditLog, DatabaseConnection, SystemConfig
from ingest.tests.test_api_auth import post
from usage.models import NotificationChannel

from . import factories as f

pytestmark = pytest.mark.django_db

DB_PASSWORD = "pg-Pl41nT3xt-db-password-4711"
WEBHOOK_SECRET = "whsec-planted-secret-5150"
APP_PASSWORD_HASH = "pbkdf2_sha256$720000$Pl41nSalt$apphash-secret-4711"
REFRESH_TOKEN_HASH = "41d8Pl41nT0kenHash98ecf8427e0b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b"
CONFIG_SECRET = "sk-live-Pl41nC0nfig-4711"
CONFIG_SECRET_NEW = "sk-live-Pl41nR0tated-4712"
KEY_1, KEY_2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
# How many rows of each model the walk opens (change, history, delete pages).
ROWS_PER_MODEL = 8


# Encryption -----------------------------------------------------------------


def test_password_is_stored_as_a_fernet_token_and_read_back(settings):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_1]
    connection = f.DatabaseConnectionFactory(encrypted_db_password="")

    connection.set_password(DB_PASSWORD)
    connection.save()
    connection.refresh_from_db()

    assert DB_PASSWORD not in connection.encrypted_db_password
    assert connection.encrypted_db_password.startswith("gAAAAA")
    assert Fernet(KEY_1).decrypt(connection.encrypted_db_password.encode()).decode() == DB_PASSWORD
    assert connection.get_password() == DB_PASSWORD


def test_a_stranger_key_cannot_read_the_password(settings):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_1]
    connection = f.DatabaseConnectionFactory()
    connection.set_password(DB_PASSWORD)

    settings.FIELD_ENCRYPTION_KEYS = [KEY_2]

    with pytest.raises(crypto.DecryptionError):
        connection.get_password()


def test_empty_password_stores_nothing():
    connection = f.DatabaseConnectionFactory()

    connection.set_password("")

    assert connection.encrypted_db_password == ""
    assert connection.get_password() == ""


def test_without_configured_keys_the_key_is_derived_from_secret_key(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    connection = f.DatabaseConnectionFactory()
    connection.set_password(DB_PASSWORD)

    assert connection.get_password() == DB_PASSWORD
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    with pytest.raises(crypto.DecryptionError):
        connection.get_password()


def _rotate(*args):
    """rotate_encryption_key's output lines and its CommandError (or None)."""
    out = _Output()
    try:
        call_command("rotate_encryption_key", *args, stdout=out)
    except CommandError as error:
        return out.text.splitlines(), error
    return out.text.splitlines(), None


@pytest.fixture
def encrypted_world(settings):
    """Under KEY_1: a database password and a webhook secret (and one more
    of each); a local password and a secret under a stranger's key, and an
    imported password in its application's own ciphertext; empty values;
    then KEY_2 put first, KEY_1 kept."""
    settings.FIELD_ENCRYPTION_KEYS = [KEY_1]
    stranger = Fernet(Fernet.generate_key())
    connections = []
    for password in (DB_PASSWORD, "second-db-password"):
        connection = f.DatabaseConnectionFactory()
        connection.set_password(password)
        connection.save()
        connections.append(connection)
    channels = []
    for secret in (WEBHOOK_SECRET, "second-webhook-secret"):
        channel = f.NotificationChannelFactory(kind="webhook", target="https://hooks.example/x")
        channel.set_secret(secret)
        channel.save()
        channels.append(channel)
    foreign = f.DatabaseConnectionFactory(
        encrypted_db_password=stranger.encrypt(b"theirs").decode()
    )
    lost = f.NotificationChannelFactory(encrypted_secret=stranger.encrypt(b"lost").decode())
    f.DatabaseConnectionFactory(imported=True, encrypted_db_password="gAAAAAtheirs")
    f.DatabaseConnectionFactory(encrypted_db_password="")
    f.NotificationChannelFactory(encrypted_secret="")
    settings.FIELD_ENCRYPTION_KEYS = [KEY_2, KEY_1]
    return connections, channels, foreign, lost


def _stored(*rows):
    return [type(row).objects.values_list(*row.encrypted_fields).get(pk=row.pk)[0] for row in rows]


def test_the_encrypted_fields_are_every_models():
    assert {(model._meta.label, name) for model, name in crypto.encrypted_fields()} == {
        ("core.DatabaseConnection", "encrypted_db_password"),
        ("usage.NotificationChannel", "encrypted_secret"),
    }


def test_dry_run_counts_and_changes_nothing(encrypted_world):
    connections, channels, foreign, lost = encrypted_world
    before = _stored(*connections, *channels, foreign, lost)

    lines, error = _rotate("--dry-run")

    assert lines == [
        "core.DatabaseConnection.encrypted_db_password: would re-encrypt 2, "
        "already under the first key 0, unreadable 1, the source application's own 1",
        "usage.NotificationChannel.encrypted_secret: would re-encrypt 2, "
        "already under the first key 0, unreadable 1",
        "Would re-encrypt 4 value(s) with the first key; 0 already under it.",
    ]
    assert "Left 2 value(s) no configured key decrypts" in str(error)
    assert _stored(*connections, *channels, foreign, lost) == before
    assert not AuditLog.objects.filter(action="rotate_encryption_key").exists()


def test_rotation_re_encrypts_under_the_new_key_and_leaves_the_unreadable(
    settings, encrypted_world
):
    connections, channels, foreign, lost = encrypted_world
    before = _stored(*connections, *channels, foreign, lost)

    lines, error = _rotate()

    # The unreadable values are reported: exit status 1, with their count.
    assert error is not None and error.returncode == 1
    assert "Left 2 value(s) no configured key decrypts" in str(error)
    assert lines[-1] == "Re-encrypted 4 value(s) with the first key; 0 already under it."
    after = _stored(*connections, *channels, foreign, lost)
    assert all(new != old for new, old in zip(after[:4], before[:4], strict=True))
    assert after[4:] == before[4:]  # the stranger's ciphertexts, untouched
    # The old key can go: everything rotated opens under the new key alone.
    settings.FIELD_ENCRYPTION_KEYS = [KEY_2]
    for connection, password in zip(connections, (DB_PASSWORD, "second-db-password"), strict=True):
        connection.refresh_from_db()
        assert connection.get_password() == password
        assert Fernet(KEY_2).decrypt(connection.encrypted_db_password.encode()) == password.encode()
    for channel, secret in zip(channels, (WEBHOOK_SECRET, "second-webhook-secret"), strict=True):
        channel.refresh_from_db()
        assert channel.get_secret() == secret
        with pytest.raises(InvalidToken):
            Fernet(KEY_1).decrypt(channel.encrypted_secret.encode())
    entry = AuditLog.objects.get(action="rotate_encryption_key")
    assert entry.resource_type == "encryption_keys"
    assert entry.new_values == {
        "keys_configured": 2,
        "fields": {
            "core.DatabaseConnection.encrypted_db_password": {
                "rotated": 2,
                "current": 0,
                "unreadable": 1,
                "foreign": 1,
            },
            "usage.NotificationChannel.encrypted_secret": {
                "rotated": 2,
                "current": 0,
                "unreadable": 1,
                "foreign": 0,
            },
        },
    }
    for secret in (DB_PASSWORD, WEBHOOK_SECRET, *after):
        assert secret not in str(entry.new_values)


def test_a_rerun_changes_nothing(encrypted_world):
    connections, channels, foreign, lost = encrypted_world
    _rotate()
    rotated = _stored(*connections, *channels)

    lines, error = _rotate()

    assert lines[-1] == "Re-encrypted 0 value(s) with the first key; 4 already under it."
    assert _stored(*connections, *channels) == rotated
    assert "Left 2 value(s)" in str(error)
    # Without the unreadable values the command succeeds: an imported
    # application's own ciphertext is counted, not an error.
    foreign.delete()
    lost.delete()
    lines, error = _rotate()
    assert error is None
    assert lines[-1] == "Re-encrypted 0 value(s) with the first key; 4 already under it."


def test_a_failure_midway_rolls_every_change_back(encrypted_world, monkeypatch):
    connections, channels, _foreign, _lost = encrypted_world
    before = _stored(*connections, *channels)

    rotate_field = rotate_command.Command._rotate
    rotated = []

    def fail_on_the_channels(self, model, name, dry_run):
        if model is NotificationChannel:
            raise RuntimeError("disk full")
        rotated.append(rotate_field(self, model, name, dry_run))
        return rotated[-1]

    monkeypatch.setattr(rotate_command.Command, "_rotate", fail_on_the_channels)
    with pytest.raises(RuntimeError, match="disk full"):
        call_command("rotate_encryption_key", stdout=_Output())

    # The database passwords were rotated first, then rolled back with the rest.
    assert rotated[0]["rotated"] == 2
    assert _stored(*connections, *channels) == before
    assert not AuditLog.objects.filter(action="rotate_encryption_key").exists()


class _Output:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


# The admin form -------------------------------------------------------------


@pytest.fixture
def superuser(client):
    user = f.UserFactory(is_superuser=True)
    client.force_login(user)
    return user


def _connection_form(app_user, **fields):
    return {
        "connection_name": "warehouse",
        "user": app_user.pk,
        "db_type": "postgresql",
        "db_host": "db.example.com",
        "db_port": "5432",
        "db_name": "sales",
        "db_user": "analyst",
        "new_password": "",
        **fields,
    }


def test_admin_encrypts_a_typed_password_and_never_shows_it(client, superuser):
    app_user = f.AppUserFactory()

    response = client.post(
        reverse("admin:core_databaseconnection_add"),
        _connection_form(app_user, new_password=DB_PASSWORD),
    )

    assert response.status_code == 302
    connection = DatabaseConnection.objects.get(connection_name="warehouse")
    assert connection.get_password() == DB_PASSWORD
    assert DB_PASSWORD not in connection.encrypted_db_password
    page = client.get(reverse("admin:core_databaseconnection_change", args=[connection.pk]))
    html = page.content.decode()
    assert DB_PASSWORD not in html
    assert connection.encrypted_db_password not in html
    assert 'name="new_password"' in html
    assert page.context["adminform"].form.fields["new_password"].widget.render_value is False


def test_admin_keeps_the_password_when_the_field_is_left_empty(client, superuser):
    connection = f.DatabaseConnectionFactory()
    connection.set_password(DB_PASSWORD)
    connection.save()
    url = reverse("admin:core_databaseconnection_change", args=[connection.pk])

    response = client.post(url, _connection_form(connection.user, db_host="db2.example.com"))

    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.db_host == "db2.example.com"
    assert connection.get_password() == DB_PASSWORD
    assert connection.updated_at is not None


def test_admin_removes_the_password_on_request(client, superuser):
    connection = f.DatabaseConnectionFactory()
    url = reverse("admin:core_databaseconnection_change", args=[connection.pk])

    client.post(url, _connection_form(connection.user, clear_password="on"))

    connection.refresh_from_db()
    assert connection.encrypted_db_password == ""


def test_a_form_with_errors_does_not_echo_the_typed_password(client, superuser):
    app_user = f.AppUserFactory()

    response = client.post(
        reverse("admin:core_databaseconnection_add"),
        _connection_form(app_user, new_password=DB_PASSWORD, db_port="not-a-port"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert DB_PASSWORD not in response.content.decode()
    assert not DatabaseConnection.objects.exists()


def test_admin_change_of_the_password_is_audited_without_the_value(client, superuser):
    connection = f.DatabaseConnectionFactory()
    url = reverse("admin:core_databaseconnection_change", args=[connection.pk])

    client.post(url, _connection_form(connection.user, new_password=DB_PASSWORD))

    entry = AuditLog.objects.get(action="admin_change", resource_id=str(connection.pk))
    assert entry.actor == superuser
    assert "New password" in str(entry.new_values)
    assert DB_PASSWORD not in str(entry.new_values)
    assert connection.encrypted_db_password not in str(entry.new_values)


@pytest.mark.parametrize(
    ("model", "lookup"),
    [
        ("appuser", "password_hash__startswith"),
        ("apikey", "key_hash__startswith"),
        ("refreshtoken", "token_hash__startswith"),
        ("databaseconnection", "encrypted_db_password__startswith"),
    ],
)
def test_secret_fields_cannot_be_probed_through_url_lookups(client, superuser, model, lookup):
    response = client.get(reverse(f"admin:core_{model}_changelist"), {lookup: "p"})

    assert response.status_code == 400


# Every page and export ------------------------------------------------------


@pytest.fixture
def secrets_world(client, superuser):
    """Secrets of every kind, typed in through the admin where the admin is
    how they arrive, and data of every model around them."""
    org = f.OrganizationFactory()
    app_user = f.AppUserFactory(organization=org, password_hash=APP_PASSWORD_HASH)
    f.RefreshTokenFactory(user=app_user, token_hash=REFRESH_TOKEN_HASH)
    setting = f.SystemConfigFactory(
        config_key="openai_api_key", config_value={"api_key": CONFIG_SECRET}, is_sensitive=True
    )
    # An admin replaces the sensitive value: its history and audit entries
    # must not show the old value or the new one.
    client.post(
        reverse("admin:core_systemconfig_change", args=[setting.pk]),
        {
            "config_key": "openai_api_key",
            "new_value": f'{{"api_key": "{CONFIG_SECRET_NEW}"}}',
            "is_sensitive": "on",
            "description": "A setting",
        },
    )
    setting.refresh_from_db()
    assert setting.config_value == {"api_key": CONFIG_SECRET_NEW}
    client.post(
        reverse("admin:core_databaseconnection_add"),
        _connection_form(app_user, new_password=DB_PASSWORD),
    )
    ciphertext = DatabaseConnection.objects.get().encrypted_db_password
    source = f.SourceFactory(kind="api")
    shown_once = client.post(
        reverse("admin:core_apikey_add"),
        {
            "key_name": "ci pipeline",
            "ingest_source": source.pk,
            "permissions": "null",
            "is_active": "on",
            "expires_at_0": "",
            "expires_at_1": "",
        },
        follow=True,
    )
    raw_key = re.search(r"<code>(aa_[\w-]+)</code>", shown_once.content.decode()).group(1)
    key = ApiKey.objects.get(key_name="ci pipeline")
    assert key.key_hash == hash_api_key(raw_key)  # stored hashed, never raw
    assert raw_key not in {key.key_hash, key.key_prefix}

    # A webhook's signing secret, typed in once (issue #20's spend alerts).
    client.post(
        reverse("admin:usage_notificationchannel_add"),
        {
            "name": "ops webhook",
            "kind": "webhook",
            "target": "https://hooks.example.com/analyst-admin",
            "new_secret": WEBHOOK_SECRET,
            "budget_alerts": "on",
            "anomaly_alerts": "on",
            "is_active": "on",
        },
    )
    channel = NotificationChannel.objects.get(name="ops webhook")
    assert channel.get_secret() == WEBHOOK_SECRET
    assert WEBHOOK_SECRET not in channel.encrypted_secret

    chat = f.ChatFactory(user=app_user, organization=org)
    answer = f.MessageFactory(chat=chat, role="assistant")
    f.MessageFeedbackFactory(message=answer, rating=2)
    f.CodeExecutionFactory(message=answer)
    f.ModelUsageFactory(user=app_user, chat=chat)
    f.BudgetFactory(organization=org)
    for model, factory in f.factories_by_model().items():
        if not model._default_manager.exists():
            factory()
    return {
        "secrets": {
            "database password": DB_PASSWORD,
            "database password ciphertext": ciphertext,
            "raw API key": raw_key,
            "API key hash": key.key_hash,
            "app user password hash": APP_PASSWORD_HASH,
            "refresh token hash": REFRESH_TOKEN_HASH,
            "sensitive setting": CONFIG_SECRET,
            "sensitive setting, replaced": CONFIG_SECRET_NEW,
            "webhook signing secret": WEBHOOK_SECRET,
            "webhook signing secret ciphertext": channel.encrypted_secret,
        },
        "app_user": app_user,
        "org": org,
        "chat": chat,
        "raw_key": raw_key,
    }


def _leaks(secrets, text):
    return [name for name, value in secrets.items() if value in text]


def _admin_urls(model):
    opts = model._meta
    prefix = f"admin:{opts.app_label}_{opts.model_name}"
    yield reverse(f"{prefix}_changelist")
    for pk in model._default_manager.order_by("pk").values_list("pk", flat=True)[:ROWS_PER_MODEL]:
        for page in ("change", "history", "delete"):
            yield reverse(f"{prefix}_{page}", args=[pk])


def test_no_admin_page_shows_a_secret(client, secrets_world):
    secrets = secrets_world["secrets"]
    opened = leaked = 0
    found = []
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label):
        for url in _admin_urls(model):
            response = client.get(url)
            # Read-only models refuse the delete page; everything else opens.
            assert response.status_code in (200, 403), url
            if response.status_code == 200:
                opened += 1
                leaks = _leaks(secrets, response.content.decode())
                leaked += bool(leaks)
                found += [(url, leak) for leak in leaks]

    assert found == []
    # Every model's changelist and at least one row's three pages.
    assert opened >= 3 * len(admin.site._registry)
    # The admin's history and the audit trail were among them.
    assert AuditLog.objects.filter(action="admin_add").count() >= 2


def test_no_custom_page_shows_a_secret(client, secrets_world):
    secrets = secrets_world["secrets"]
    urls = [
        reverse("admin:index"),
        reverse("dashboards:overview") + "?period=90d",
        reverse("dashboards:models") + "?period=90d",
        reverse("dashboards:user", args=[secrets_world["app_user"].pk]),
        reverse("dashboards:organization", args=[secrets_world["org"].pk]),
        reverse("review:transcript", args=[secrets_world["chat"].pk]),
        reverse("review:feedback_queue"),
        reverse("review:search") + "?q=sales",
        # the pages the open issues of this round added
        reverse("watch:alerts"),
        reverse("queues:list"),
        reverse("quality:reviews"),
        reverse("quality:code") + "?period=90d",
        reverse("reports:list"),
        reverse("api-docs"),
        "/api/v1/openapi.json",
        reverse("admin:autocomplete")
        + "?app_label=core&model_name=databaseconnection&field_name=user&term=",
    ]
    found = []
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        found += [(url, leak) for leak in _leaks(secrets, response.content.decode())]

    assert found == []


def test_no_csv_export_shows_a_secret(client, secrets_world):
    secrets = secrets_world["secrets"]
    pages = [
        reverse("dashboards:overview"),
        reverse("dashboards:models"),
        reverse("dashboards:model", args=["openai", "gpt-4o-mini"]),
        reverse("dashboards:user", args=[secrets_world["app_user"].pk]),
        reverse("dashboards:organization", args=[secrets_world["org"].pk]),
    ]
    exports = found = 0
    leaks = []
    for page in pages:
        names = [table.name for table in client.get(page, {"period": "90d"}).context["tables"]]
        for name in names:
            response = client.get(page, {"period": "90d", "export": name})
            assert response.status_code == 200
            assert response["Content-Type"].startswith("text/csv")
            text = b"".join(response.streaming_content).decode()
            exports += 1
            found += text.count("\n")
            leaks += [(page, name, leak) for leak in _leaks(secrets, text)]

    assert leaks == []
    # overview: 5 tables (top users and organisations, providers, unpriced,
    # budgets), models: 1, one model: 4, an app user: 3, an organisation: 4
    assert exports == 17
    assert found > exports  # the exports hold rows, not only headers


def test_api_responses_never_echo_the_key(client, secrets_world):
    raw_key = secrets_world["raw_key"]
    batch = {
        "items": [
            {
                "id": "u-1",
                "model_name": "gpt-4o-mini",
                "provider": "openai",
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "timestamp": "2024-05-01T10:00:00Z",
            }
        ]
    }

    accepted = post(client, "usage", batch, raw_key)
    refused = post(client, "usage", batch, raw_key[:-2] + "xx")

    assert accepted.status_code == 200
    assert refused.status_code == 401
    for response in (accepted, refused):
        assert _leaks(secrets_world["secrets"], response.content.decode()) == []
        assert raw_key[:-2] not in response.content.decode()


def test_no_log_line_carries_a_secret(client, settings, caplog):
    """Typing the password, logging in and failing to: with DEBUG on, so
    every SQL statement is logged too, the plaintext reaches no log."""
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")
    user = f.UserFactory(username="ops")
    user.set_password("L0gin-Pl41n-4711")
    user.save()
    app_user = f.AppUserFactory()

    client.post(reverse("admin:login"), {"username": "ops", "password": "Wr0ng-Pl41n-4711"})
    client.post(reverse("admin:login"), {"username": "ops", "password": "L0gin-Pl41n-4711"})
    user.is_superuser = True
    user.save()
    client.post(
        reverse("admin:core_databaseconnection_add"),
        _connection_form(app_user, new_password=DB_PASSWORD),
    )

    assert DatabaseConnection.objects.get().get_password() == DB_PASSWORD
    assert "INSERT INTO" in caplog.text  # the SQL log is on
    for plaintext in (DB_PASSWORD, "L0gin-Pl41n-4711", "Wr0ng-Pl41n-4711"):
        assert plaintext not in caplog.text
        assert not AuditLog.objects.filter(new_values__icontains=plaintext).exists()


def test_sensitive_setting_value_is_masked_on_its_pages(client, superuser):
    setting = f.SystemConfigFactory(
        config_key="smtp_password", config_value=CONFIG_SECRET, is_sensitive=True
    )

    pages = [
        reverse("admin:core_systemconfig_changelist"),
        reverse("admin:core_systemconfig_change", args=[setting.pk]),
        reverse("admin:core_systemconfig_history", args=[setting.pk]),
    ]

    for url in pages:
        response = client.get(url)
        assert response.status_code == 200
        assert CONFIG_SECRET not in response.content.decode(), url
    assert SystemConfig.objects.get(pk=setting.pk).config_value == CONFIG_SECRET
