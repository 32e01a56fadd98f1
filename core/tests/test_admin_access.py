"""Who sees which admin page, what every page costs, and that no secret shows.

The superuser walk goes over ``admin.site._registry``, so a model registered
tomorrow is covered without touching this file (it needs a factory, which
``test_factories`` already demands for the project's models).
"""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse

from . import factories as f

pytestmark = pytest.mark.django_db

# Every secret carries the marker, so a page that shows even part of one fails.
MARKER = "S3CR3T"
SECRETS = {
    "app_user_password_hash": f"pbkdf2_sha256$720000${MARKER}salt$apphash4711",
    "api_key_hash": f"9f2c{MARKER}keyhash0b7e4f5a6c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d",
    "refresh_token_hash": f"41d8{MARKER}tokenhash98ecf8427e0b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9",
    "db_password": f"gAAAAAB{MARKER}encrypted-db-password-4711",
    "config_value": f"sk-live-{MARKER}-config-4711",
}

# Rows per list-heavy model: enough that an N+1 on a changelist or an inline
# adds more queries than the bounds below leave room for.
ROWS = 4


@pytest.fixture
def world():
    """Data of every model, with secrets in the places they live."""
    org = f.OrganizationFactory()
    users = f.AppUserFactory.create_batch(ROWS, organization=org)
    users[0].password_hash = SECRETS["app_user_password_hash"]
    users[0].save(update_fields=["password_hash"])
    source = f.SourceFactory(kind="text_to_sql")
    f.ApiKeyFactory(user=users[0], key_hash=SECRETS["api_key_hash"])
    f.RefreshTokenFactory(user=users[0], token_hash=SECRETS["refresh_token_hash"])
    f.DatabaseConnectionFactory(user=users[0], encrypted_db_password=SECRETS["db_password"])
    f.SystemConfigFactory(
        config_key="openai_api_key",
        config_value={"api_key": SECRETS["config_value"]},
        is_sensitive=True,
    )
    templates = f.AgentTemplateFactory.create_batch(2)
    for user in users:
        chat = f.ChatFactory(user=user, organization=org, imported=True, source=source)
        question = f.MessageFactory(chat=chat, role="user")
        answer = f.MessageFactory(chat=chat, role="assistant", confidence=0.8, is_mistake=True)
        f.MessageFeedbackFactory(message=answer, rating=2)
        f.CodeExecutionFactory(message=answer)
        f.AnalysisResultFactory(chat=chat)
        f.DeepAnalysisReportFactory(user=user)
        f.UserTemplatePreferenceFactory(user=user, template=templates[0])
        usage = f.ModelUsageFactory(user=user, chat=chat)
        f.QueryAnalyticsFactory(usage=usage, user=user, question=question.content)
        f.UserSessionFactory(user=user)
        f.EventFactory(user=user)
        f.AuditLogFactory(user=user)
    f.BudgetFactory(organization=org)
    f.BudgetFactory(organization=None, user=users[1])
    # One row of every other model that has a factory.
    for model, factory in f.factories_by_model().items():
        if not model._default_manager.exists():
            factory()
    return {"users": users}


@pytest.fixture
def superuser():
    return f.UserFactory(is_superuser=True)


@pytest.fixture
def staff_member():
    return f.UserFactory(groups=["Staff"])


def _url(model, page, *args):
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{page}", args=args)


def _assert_no_secret(response, url):
    html = response.content.decode()
    leaked = [name for name, value in SECRETS.items() if value in html]
    assert leaked == [], f"{url} shows {leaked}"
    assert MARKER not in html, f"{url} shows part of a secret"


def _registered():
    return [
        pytest.param(model, model_admin, id=model._meta.label)
        for model, model_admin in sorted(
            admin.site._registry.items(), key=lambda item: item[0]._meta.label
        )
    ]


# Upper bounds for a superuser's pages (a superuser needs no permission
# queries), each the heaviest page measured plus one spare. With ROWS rows per
# list, an N+1 adds at least ROWS queries and breaks the bound.
# Changelist: session + user, up to 4 filter-choice lists (model names and
# providers from the price table, organisations, sources), the capped COUNT
# (show_full_result_count = False), the page of rows with list_select_related.
CHANGELIST_MAX_QUERIES = 9
# Change page: session + user, the object, the content type for the history
# link, one label per raw-id foreign key (Chat: app user, organisation,
# source), the rows of each inline (Chat: messages, files).
CHANGE_MAX_QUERIES = 10
# Add page: session + user, and at most one choice list (Group: permissions);
# foreign keys are raw-id or autocomplete widgets that load nothing.
ADD_MAX_QUERIES = 3


@pytest.mark.parametrize(("model", "model_admin"), _registered())
def test_superuser_opens_every_admin_page_within_query_bounds(
    client, world, superuser, model, model_admin, django_assert_max_num_queries
):
    client.force_login(superuser)
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None, f"no {model._meta.label} row: give it a factory"

    url = _url(model, "changelist")
    with django_assert_max_num_queries(CHANGELIST_MAX_QUERIES):
        response = client.get(url)
    assert response.status_code == 200, url
    _assert_no_secret(response, url)

    url = _url(model, "change", obj.pk)
    with django_assert_max_num_queries(CHANGE_MAX_QUERIES):
        response = client.get(url)
    assert response.status_code == 200, url
    _assert_no_secret(response, url)

    request = RequestFactory().get("/admin/")
    request.user = superuser
    url = _url(model, "add")
    with django_assert_max_num_queries(ADD_MAX_QUERIES):
        response = client.get(url)
    assert response.status_code == (200 if model_admin.has_add_permission(request) else 403), url
    _assert_no_secret(response, url)


def test_superuser_sees_secret_rows_without_their_secrets(client, world, superuser):
    """The rows that hold secrets, each on its own change page and list."""
    from core.models import ApiKey, AppUser, DatabaseConnection, RefreshToken, SystemConfig

    client.force_login(superuser)
    holders = [
        AppUser.objects.get(password_hash=SECRETS["app_user_password_hash"]),
        ApiKey.objects.get(key_hash=SECRETS["api_key_hash"]),
        RefreshToken.objects.get(token_hash=SECRETS["refresh_token_hash"]),
        DatabaseConnection.objects.get(encrypted_db_password=SECRETS["db_password"]),
        SystemConfig.objects.get(config_key="openai_api_key"),
    ]
    pages = 0
    for obj in holders:
        if type(obj) not in admin.site._registry:
            continue
        for url in (_url(type(obj), "changelist"), _url(type(obj), "change", obj.pk)):
            response = client.get(url)
            assert response.status_code == 200, url
            _assert_no_secret(response, url)
            pages += 1
    # AppUser, ApiKey, SystemConfig and DatabaseConnection are admin pages
    # (DESIGN: admins edit app users, API keys and system config).
    assert pages >= 6


@pytest.mark.parametrize("model_name", ["chat", "message"])
def test_staff_group_member_opens_chat_and_message_changelists(
    client, world, staff_member, model_name
):
    client.force_login(staff_member)
    url = reverse(f"admin:chats_{model_name}_changelist")

    response = client.get(url)

    assert response.status_code == 200
    # All ROWS chats (or 2 * ROWS messages) are listed.
    expected = ROWS if model_name == "chat" else 2 * ROWS
    assert response.context["cl"].result_count == expected
    _assert_no_secret(response, url)


FORBIDDEN_TO_STAFF = [
    ("core", "agenttemplate"),
    ("core", "systemconfig"),
    ("core", "apikey"),
    ("core", "appuser"),
    ("usage", "modelprice"),
]


@pytest.mark.parametrize(("app_label", "model_name"), FORBIDDEN_TO_STAFF)
def test_staff_group_member_is_refused_admin_only_pages(
    client, world, staff_member, app_label, model_name
):
    from django.apps import apps

    model = apps.get_model(app_label, model_name)
    obj = model._default_manager.order_by("pk").first()
    client.force_login(staff_member)

    changelist = client.get(_url(model, "changelist"))
    change = client.get(_url(model, "change", obj.pk))

    assert (changelist.status_code, change.status_code) == (403, 403)


def test_staff_group_member_cannot_post_a_system_config_change(client, world, staff_member):
    from core.models import SystemConfig

    setting = SystemConfig.objects.get(config_key="openai_api_key")
    client.force_login(staff_member)

    response = client.post(
        _url(SystemConfig, "change", setting.pk),
        {"config_key": "openai_api_key", "config_value": '{"api_key": "stolen"}'},
    )

    assert response.status_code == 403
    setting.refresh_from_db()
    assert setting.config_value == {"api_key": SECRETS["config_value"]}


@pytest.mark.parametrize(
    "url_name",
    ["admin:index", "admin:chats_chat_changelist", "admin:core_appuser_changelist"],
)
def test_anonymous_is_redirected_to_login(client, url_name):
    url = reverse(url_name)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"


def test_staff_account_outside_groups_sees_no_model(client, world):
    lonely = f.UserFactory()
    client.force_login(lonely)

    response = client.get(reverse("admin:chats_chat_changelist"))

    assert response.status_code == 403
    assert not Group.objects.filter(user=lonely).exists()


def test_app_user_with_admin_role_gains_nothing_here(client, world):
    """An app user is not an account: an 'admin' in their app cannot log in."""
    f.AppUserFactory(username="root", role="admin", email="root@example.com")

    response = client.post(
        reverse("admin:login"), {"username": "root", "password": "anything"}, follow=False
    )

    assert response.status_code == 200  # the form again, with an error
    assert "_auth_user_id" not in client.session
