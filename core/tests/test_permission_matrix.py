"""The permission matrix: who may open every URL the site serves, and what
each role may view, add, change and delete in every admin model.

The URLs come from walking the URL resolver (the admin's included), so a
page added tomorrow fails ``test_every_url_the_site_serves_has_an_expectation``
until a line below says who may open it. The expectations are written out
by hand from core/roles.py and the views' decorators (usage.views.dashboard:
``usage.view_dashboards``; core.pages.views.admin_page: the permission it names;
the admin's own checks), and ``test_model_rights_agree_with_core_roles``
derives the same table from core/roles.py, so the two cannot drift apart.

Roles: an anonymous visitor, and a staff account in each group (Staff,
Managers, Admins; not superusers: the groups alone must grant the rights).
"""

import re
from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve, reverse

from core import roles

from . import factories as f

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "Staff", "Managers", "Admins")
GROUPS = ROLES[1:]
LOGIN = "login"  # a 302 to the admin's login page

# What each group may do in each admin model: v(iew), a(dd), c(hange), d(elete).
# Anonymous visitors may do nothing (every admin page sends them to log in).
MODEL_RIGHTS = {
    # label: (Staff, Managers, Admins)
    "auth.group": ("", "", "vacd"),
    "core.user": ("", "", "vacd"),
    "core.source": ("", "", "vacd"),
    "core.organization": ("", "v", "vacd"),
    "core.appuser": ("", "", "vacd"),
    "core.apikey": ("", "", "vacd"),
    # issued by the applications: never added here
    "core.refreshtoken": ("", "", "vcd"),
    "core.usersession": ("", "", "vacd"),
    # the one audit trail: read-only for everyone
    "core.auditlog": ("", "", "v"),
    "core.event": ("", "", "vacd"),
    "core.systemconfig": ("", "", "vacd"),
    "core.databaseconnection": ("", "", "vacd"),
    "core.databaseschema": ("", "", "vacd"),
    "core.agenttemplate": ("", "", "vacd"),
    "core.usertemplatepreference": ("", "", "vacd"),
    "core.querytemplate": ("", "", "vacd"),
    "chats.chat": ("v", "v", "vacd"),
    # Staff and Managers change a message's mistake flag and note, nothing else
    "chats.message": ("vc", "vc", "vacd"),
    "chats.messagefeedback": ("v", "v", "vacd"),
    "chats.codeexecution": ("v", "v", "vacd"),
    "chats.uploadedfile": ("v", "v", "vacd"),
    # review queues (#19): Admins edit queues and the taxonomy; items and
    # reviews change only through the review pages (audited)
    "chats.mistakecategory": ("v", "v", "vacd"),
    "chats.reviewqueue": ("v", "v", "vacd"),
    "chats.reviewitem": ("", "v", "v"),
    "chats.review": ("", "v", "v"),
    "reports.deepanalysisreport": ("v", "v", "vacd"),
    "reports.analysisresult": ("v", "v", "vacd"),
    "usage.modelusage": ("", "v", "vacd"),
    "usage.queryanalytics": ("", "v", "vacd"),
    "usage.performancemetric": ("", "v", "vacd"),
    "usage.modelprice": ("", "v", "vacd"),
    "usage.budget": ("", "vacd", "vacd"),
    # the spend watch's channels (their secrets): Admins
    "usage.notificationchannel": ("", "", "vacd"),
    # roll-ups: rebuilt from the ledger, never edited
    "usage.dailyusage": ("", "v", "v"),
    "usage.dailylatency": ("", "v", "v"),
}

# Exceptions to "the permissions in core.roles decide", each made by the
# model's admin (has_*_permission); see test_model_rights_agree_with_core_roles.
READ_ONLY = {
    "core.auditlog",
    "usage.dailyusage",
    "usage.dailylatency",
    "chats.reviewitem",
    "chats.review",
}
NEVER_ADDED = {"core.refreshtoken"}
CHANGED_WITH = {"chats.message": "chats.flag_mistake"}

# Every other URL: method and the answer for (anonymous, Staff, Managers, Admins).
URLS = {
    "": ("GET", 302, 302, 302, 302),  # → the admin index
    "health": ("GET", 200, 200, 200, 200),
    # usage.views.dashboard: usage.view_dashboards (Managers, Admins)
    "dashboards:overview": ("GET", LOGIN, 403, 200, 200),
    "dashboards:models": ("GET", LOGIN, 403, 200, 200),
    "dashboards:model": ("GET", LOGIN, 403, 200, 200),
    "dashboards:user": ("GET", LOGIN, 403, 200, 200),
    "dashboards:organization": ("GET", LOGIN, 403, 200, 200),
    "watch:alerts": ("GET", LOGIN, 403, 200, 200),
    # chats.views (admin_page): view_chat, flag_mistake, view_messagefeedback, view_message
    "review:transcript": ("GET", LOGIN, 200, 200, 200),
    "review:flag_mistake": ("POST", LOGIN, 302, 302, 302),
    "review:feedback_queue": ("GET", LOGIN, 200, 200, 200),
    "review:search": ("GET", LOGIN, 200, 200, 200),
    # chats.review_views (admin_page): review_items; view_review_results;
    # settle_disagreement (Admins)
    "queues:list": ("GET", LOGIN, 200, 200, 200),
    "queues:queue": ("GET", LOGIN, 200, 200, 200),
    "queues:start": ("POST", LOGIN, 302, 302, 302),
    "queues:item": ("GET", LOGIN, 200, 200, 200),
    "queues:settle": ("POST", LOGIN, 403, 403, 302),
    "queues:disagreements": ("GET", LOGIN, 403, 200, 200),
    "queues:results": ("GET", LOGIN, 403, 200, 200),
    "queues:export_csv": ("GET", LOGIN, 403, 200, 200),
    "queues:export_jsonl": ("GET", LOGIN, 403, 200, 200),
    # analytics.views (admin_page): view_message, or view_codeexecution
    # a redirect to quality:code, which then checks the permission
    "quality:index": ("GET", 302, 302, 302, 302),
    "quality:code": ("GET", LOGIN, 200, 200, 200),
    "quality:executions": ("GET", LOGIN, 200, 200, 200),
    "quality:feedback": ("GET", LOGIN, 200, 200, 200),
    "quality:activity": ("GET", LOGIN, 200, 200, 200),
    "quality:text_to_sql": ("GET", LOGIN, 200, 200, 200),
    # usage.review_metrics (admin_page): chats.view_review_results
    "quality:reviews": ("GET", LOGIN, 403, 200, 200),
    # reports.views (admin_page): view_deepanalysisreport
    "reports:list": ("GET", LOGIN, 200, 200, 200),
    "reports:detail": ("GET", LOGIN, 200, 200, 200),
    # the admin site's own pages: any staff account
    "admin:index": ("GET", LOGIN, 200, 200, 200),
    "admin:login": ("GET", 200, 302, 302, 302),  # logged in: on to the index
    "admin:logout": ("POST", 302, 200, 200, 200),  # anonymous: on to the index
    "admin:password_change": ("GET", LOGIN, 200, 200, 200),
    "admin:password_change_done": ("GET", LOGIN, 200, 200, 200),
    "admin:jsi18n": ("GET", LOGIN, 200, 200, 200),
    # search of app users for a chat's user field: view permission on app users
    "admin:autocomplete": ("GET", LOGIN, 403, 403, 200),
    # no model has a public page ("view on site"): not found, for everyone
    "admin:view_on_site": ("GET", LOGIN, 404, 404, 404),
    "admin:auth_user_password_change": ("GET", LOGIN, 403, 403, 200),
    "admin/(?P<url>.*)$": ("GET", LOGIN, 404, 404, 404),  # unknown admin pages
    # template history and import/export (core.template_admin): Admins
    "admin:core_agenttemplate_import": ("GET", LOGIN, 403, 403, 200),
    "admin:core_agenttemplate_export": ("GET", LOGIN, 403, 403, 200),
    "admin:core_agenttemplate_versions": ("GET", LOGIN, 403, 403, 200),
    "admin:core_agenttemplate_revert": ("GET", LOGIN, 403, 403, 200),
    "admin:core_querytemplate_import": ("GET", LOGIN, 403, 403, 200),
    "admin:core_querytemplate_export": ("GET", LOGIN, 403, 403, 200),
    "admin:core_querytemplate_versions": ("GET", LOGIN, 403, 403, 200),
    "admin:core_querytemplate_revert": ("GET", LOGIN, 403, 403, 200),
    # the ingest API: an API key, never a staff session
    "api-docs": ("GET", LOGIN, 200, 200, 200),
    "api-v1:openapi-json": ("GET", 200, 200, 200, 200),
    "api-v1:post_usage": ("POST", 401, 401, 401, 401),
    "api-v1:post_chats": ("POST", 401, 401, 401, 401),
    "api-v1:post_feedback": ("POST", 401, 401, 401, 401),
    "api-v1:api-root": ("GET", 404, 404, 404, 404),
    # OpenTelemetry traces (ingest/api/otel.py): an API key too
    "otel-traces": ("POST", 401, 401, 401, 401),
}

# The admin's app pages, one per app: a group sees an app holding a model it may view.
APP_PAGES = {
    # app_label: (anonymous, Staff, Managers, Admins)
    "auth": (LOGIN, 404, 404, 200),
    "core": (LOGIN, 404, 200, 200),
    "chats": (LOGIN, 200, 200, 200),
    "usage": (LOGIN, 404, 200, 200),
    "reports": (LOGIN, 200, 200, 200),
}

ADMIN_MODEL_PAGES = ("changelist", "add", "history", "delete", "change")


# Walking the resolver -------------------------------------------------------


def walk(patterns, prefix="", namespace=None):
    """(route, name) of every URL pattern, through every include."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace
            if pattern.namespace:
                inner = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        else:
            name = pattern.name and (f"{namespace}:{pattern.name}" if namespace else pattern.name)
            yield prefix + str(pattern.pattern), name


def served():
    """{key: route}: a pattern's key is its name, or its route if unnamed."""
    return {name or route: route for route, name in walk(get_resolver().url_patterns)}


def model_pattern_keys(label):
    """Keys of the standard admin URLs of a model: named pages and the
    unnamed "<object_id>/" redirect to the change page."""
    app_label, model_name = label.split(".")
    keys = {f"admin:{app_label}_{model_name}_{page}" for page in ADMIN_MODEL_PAGES}
    return keys | {f"admin/{app_label}/{model_name}/<path:object_id>/"}


def fill(route, values):
    """A concrete path from a route, with ``values`` for its parameters."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m.group(1)]), path)
    return "/" + path.replace("^", "").replace("$", "")


# Data and accounts ----------------------------------------------------------


@pytest.fixture
def world():
    """A row of every model, and the objects the URLs name."""
    from chats.models import Message

    f.one_row_of_every_model()
    chat = f.ChatFactory()
    answer = f.MessageFactory(chat=chat, role=Message.Role.ASSISTANT)
    objects = {"chat": chat, "message": answer}
    try:
        from core import template_history
        from core.models import AgentTemplate, QueryTemplate
    except ImportError:  # before template history existed
        pass
    else:
        for model in (AgentTemplate, QueryTemplate):
            template_history.record_version(model.objects.order_by("pk").first(), "created")
    return objects


@pytest.fixture
def accounts():
    return {
        group: f.UserFactory(username=f"as-{group.lower()}", groups=[group]) for group in GROUPS
    }


def client_for(role, accounts):
    client = Client()
    if role != "anonymous":
        client.force_login(accounts[role])
    return client


@pytest.fixture
def clients(accounts):
    """A client per role, logged in once (pages that log out get their own)."""
    return {role: client_for(role, accounts) for role in ROLES}


def first_pk(model):
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None, f"no {model._meta.label} row: give it a factory"
    return obj.pk


def values_for(key, route, world):
    """Real values for the parameters of ``route``."""
    from chats.models import ReviewItem, ReviewQueue
    from core.models import AppUser, Organization, User
    from reports.models import DeepAnalysisReport

    values = {"url": "no-such-page/", "number": 1}
    match = re.match(r"admin/(\w+)/(\w+)/", route)
    if match and (match.group(1), match.group(2)) != ("r", ""):
        model = _registered_model(match.group(1), match.group(2))
        if model is not None:
            values["object_id"] = values["id"] = first_pk(model)
    if key == "admin:view_on_site":
        values["content_type_id"] = ContentType.objects.get_for_model(world["chat"]).pk
        values["object_id"] = world["chat"].pk
    if key == "admin:auth_user_password_change":
        values["id"] = first_pk(User)
    if key == "dashboards:model":
        # The model of the factories' ledger and roll-up rows.
        values["provider"], values["model_name"] = "openai", "gpt-4o-mini"
    values["pk"] = {
        "dashboards:user": lambda: first_pk(AppUser),
        "dashboards:organization": lambda: first_pk(Organization),
        "review:transcript": lambda: world["chat"].pk,
        "review:flag_mistake": lambda: world["message"].pk,
        "reports:detail": lambda: first_pk(DeepAnalysisReport),
        "queues:queue": lambda: first_pk(ReviewQueue),
        "queues:start": lambda: first_pk(ReviewQueue),
        "queues:item": lambda: first_pk(ReviewItem),
        "queues:settle": lambda: first_pk(ReviewItem),
    }.get(key, lambda: None)()
    return values


def _registered_model(app_label, model_name):
    for model in admin.site._registry:
        if (model._meta.app_label, model._meta.model_name) == (app_label, model_name):
            return model
    return None


QUERY = {
    "admin:autocomplete": {"app_label": "chats", "model_name": "chat", "field_name": "user"},
    "review:search": {"q": "sales"},
}
POST_DATA = {
    "review:flag_mistake": {"is_mistake": "on", "mistake_note": "wrong total"},
    "queues:settle": {"verdict": "partly", "note": "half right"},
}


def request(client, method, url, key=None):
    if method == "POST":
        if key and key.startswith("api-v1:"):
            return client.post(url, "{}", content_type="application/json")
        return client.post(url, POST_DATA.get(key, {}))
    query = QUERY.get(key)
    return client.get(f"{url}?{urlencode(query)}" if query else url)


def outcome(response, expected):
    """The response in the terms of the tables: a status, or LOGIN."""
    login = reverse("admin:login")
    if expected == LOGIN:
        if response.status_code == 302 and response["Location"].startswith(login):
            return LOGIN
        return response.status_code
    return response.status_code


# The tests ------------------------------------------------------------------


def test_every_url_the_site_serves_has_an_expectation():
    """A URL nobody wrote an expectation for fails here: add it to URLS (or
    register its model in MODEL_RIGHTS)."""
    keys = set(served())
    covered = set(URLS) | {"admin:app_list"}
    for label in MODEL_RIGHTS:
        covered |= model_pattern_keys(label)

    assert sorted(keys - covered) == []
    # and no expectation names a URL that is gone
    assert sorted(covered - keys) == []


def test_every_admin_model_has_expectations():
    registered = {model._meta.label_lower for model in admin.site._registry}

    assert sorted(registered ^ set(MODEL_RIGHTS)) == []


@pytest.mark.parametrize("key", sorted(URLS))
def test_who_may_open_each_url(key, world, accounts, clients):
    routes = served()
    assert key in routes, f"{key} is no longer served: remove it from URLS"
    route = routes[key]
    method, *expected = URLS[key]
    url = fill(route, values_for(key, route, world))
    if key in resolve_names():
        assert resolve(url).view_name == key, url

    actual = {}
    for role, wanted in zip(ROLES, expected, strict=True):
        client = client_for(role, accounts) if key == "admin:logout" else clients[role]
        response = request(client, method, url, key)
        actual[role] = outcome(response, wanted)

    assert actual == dict(zip(ROLES, expected, strict=True)), url


def resolve_names():
    return {name for _route, name in walk(get_resolver().url_patterns) if name}


@pytest.mark.parametrize("app_label", sorted(APP_PAGES))
def test_who_sees_each_admin_app_page(app_label, world, clients):
    url = reverse("admin:app_list", args=[app_label])

    actual = {}
    for role, wanted in zip(ROLES, APP_PAGES[app_label], strict=True):
        actual[role] = outcome(clients[role].get(url), wanted)

    assert actual == dict(zip(ROLES, APP_PAGES[app_label], strict=True))


def rights_seen(client, model, obj_pk):
    """What a logged-in client may do in a model's admin, found by trying."""
    opts = model._meta
    prefix = f"admin:{opts.app_label}_{opts.model_name}"
    rights = ""
    if client.get(reverse(f"{prefix}_changelist")).status_code == 200:
        rights += "v"
    if client.get(reverse(f"{prefix}_add")).status_code == 200:
        rights += "a"
    # An empty form: refused (403) without the right, the form's errors (200)
    # or a save (302) with it.
    if client.post(reverse(f"{prefix}_change", args=[obj_pk]), {}).status_code != 403:
        rights += "c"
    if client.get(reverse(f"{prefix}_delete", args=[obj_pk])).status_code == 200:
        rights += "d"
    return rights


@pytest.mark.parametrize("label", sorted(MODEL_RIGHTS))
def test_what_each_role_may_do_in_each_admin_model(label, world, clients):
    model = next(m for m in admin.site._registry if m._meta.label_lower == label)
    obj_pk = first_pk(model)

    actual = {group: rights_seen(clients[group], model, obj_pk) for group in GROUPS}

    assert actual == dict(zip(GROUPS, MODEL_RIGHTS[label], strict=True))


@pytest.mark.parametrize("label", sorted(MODEL_RIGHTS))
def test_every_admin_url_of_each_model_answers_each_role(label, world, clients):
    """Each walked URL of the model (changelist, add, change, history,
    delete and the bare "<id>/" redirect), opened by every role."""
    routes = served()
    by_group = dict(zip(GROUPS, MODEL_RIGHTS[label], strict=True))
    wanted = {
        "changelist": lambda rights: 200 if "v" in rights else 403,
        "add": lambda rights: 200 if "a" in rights else 403,
        "change": lambda rights: 200 if {"v", "c"} & set(rights) else 403,
        "history": lambda rights: 200 if {"v", "c"} & set(rights) else 403,
        "delete": lambda rights: 200 if "d" in rights else 403,
        "redirect": lambda rights: 302,  # on to the change page, which decides
    }
    checked = 0
    for key in sorted(model_pattern_keys(label)):
        assert key in routes, f"{key} is not served"
        page = key.rsplit("_", 1)[-1] if key.startswith("admin:") else "redirect"
        url = fill(routes[key], values_for(key, routes[key], world))
        for role in ROLES:
            response = clients[role].get(url)
            if role == "anonymous":
                assert outcome(response, LOGIN) == LOGIN, (url, role)
            else:
                assert response.status_code == wanted[page](by_group[role]), (url, role)
        checked += 1

    assert checked == 6


def test_model_rights_agree_with_core_roles():
    """The hand-written MODEL_RIGHTS equal what core/roles.py grants, but
    for the exceptions the admins make (read-only, never added, the flag)."""
    from django.contrib.auth.models import Permission

    every = {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Permission.objects.filter(content_type__app_label__in=roles.ADMIN_APPS)
    }
    held = {"Staff": set(roles.STAFF), "Managers": set(roles.MANAGERS), "Admins": every}

    for label, expected in MODEL_RIGHTS.items():
        app_label, model_name = label.split(".")
        for group, wanted in zip(GROUPS, expected, strict=True):
            perms = held[group]
            rights = ""
            for letter, action in (("v", "view"), ("a", "add"), ("c", "change"), ("d", "delete")):
                if f"{app_label}.{action}_{model_name}" in perms:
                    rights += letter
            if label in CHANGED_WITH and CHANGED_WITH[label] in perms and "c" not in rights:
                rights = rights.replace("v", "vc") if "v" in rights else "c"
            if label in READ_ONLY:
                rights = "v" if "v" in rights or "c" in rights else ""
            if label in NEVER_ADDED:
                rights = rights.replace("a", "")
            assert rights == wanted, (label, group)
