"""The Staff, Managers and Admins groups made by the data migration."""

import pytest
from django.contrib.auth.models import Group, Permission

from core import roles

from .factories import UserFactory

pytestmark = pytest.mark.django_db


def _held(group_name):
    perms = Group.objects.get(name=group_name).permissions.all()
    return {
        f"{p.content_type.app_label}.{p.codename}" for p in perms.select_related("content_type")
    }


def test_migration_creates_exactly_the_three_groups():
    assert sorted(Group.objects.values_list("name", flat=True)) == ["Admins", "Managers", "Staff"]


def test_staff_group_holds_exactly_the_staff_permissions():
    assert _held("Staff") == set(roles.STAFF)
    assert len(_held("Staff")) == 11


def test_managers_group_holds_exactly_the_manager_permissions():
    assert _held("Managers") == set(roles.MANAGERS)
    assert _held("Staff") < _held("Managers")


def test_admins_group_holds_every_permission_of_the_admin_apps():
    every = Permission.objects.filter(content_type__app_label__in=roles.ADMIN_APPS)
    expected = {f"{p.content_type.app_label}.{p.codename}" for p in every}

    assert _held("Admins") == expected
    assert {"core.change_agenttemplate", "core.add_apikey", "auth.change_group"} <= expected
    # Sessions and content types are Django's plumbing, not an admin's business.
    assert not any(p.startswith(("sessions.", "contenttypes.")) for p in _held("Admins"))


def test_staff_can_change_nothing_but_the_mistake_flag_and_reviews():
    not_view = {p for p in _held("Staff") if not p.split(".")[1].startswith("view_")}

    assert not_view == {"chats.flag_mistake", "chats.review_items"}


def test_managers_have_dashboards_and_budget_rights():
    manager = UserFactory(groups=["Managers"])

    for perm in (
        "usage.view_dashboards",
        "usage.export_usage",
        "usage.view_budget",
        "usage.add_budget",
        "usage.change_budget",
        "usage.delete_budget",
    ):
        assert manager.has_perm(perm), perm
    assert not manager.has_perm("usage.change_modelprice")
    assert not manager.has_perm("usage.change_modelusage")


def test_staff_lack_dashboards_and_budgets():
    staff = UserFactory(groups=["Staff"])

    assert staff.has_perm("chats.flag_mistake")
    assert staff.has_perm("chats.view_message")
    assert not staff.has_perm("chats.change_message")
    assert not staff.has_perm("usage.view_dashboards")
    assert not staff.has_perm("usage.view_budget")


def test_only_admins_may_change_agent_templates():
    holders = Group.objects.filter(
        permissions__content_type__app_label="core",
        permissions__codename="change_agenttemplate",
    )
    assert list(holders.values_list("name", flat=True)) == ["Admins"]

    by_group = {name: UserFactory(groups=[name]) for name in ("Staff", "Managers", "Admins")}
    allowed = {
        name for name, user in by_group.items() if user.has_perm("core.change_agenttemplate")
    }
    assert allowed == {"Admins"}
