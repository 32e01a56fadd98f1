"""Every model has a factory here, and each factory makes a valid row."""

import pytest
from django.apps import apps

from . import factories

PROJECT_APPS = ("core", "chats", "usage", "reports")


def _project_models():
    return [m for label in PROJECT_APPS for m in apps.get_app_config(label).get_models()]


def test_every_model_of_the_four_apps_has_a_factory():
    missing = [m._meta.label for m in _project_models() if m not in factories.factories_by_model()]

    assert missing == []


def _params():
    # A planted roll-up row has no raw rows behind it: the roll-up guard
    # (conftest.py) is off for it.
    return [
        pytest.param(m, marks=pytest.mark.rollups_unchecked)
        if m._meta.label in ("chats.ExecutionRollup", "chats.FeedbackRollup")
        else m
        for m in _project_models()
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("model", _params(), ids=lambda m: m._meta.label)
def test_factory_saves_a_valid_row(model):
    factory = factories.factories_by_model()[model]

    obj = factory()
    obj.full_clean()

    assert model.objects.filter(pk=obj.pk).count() == 1


@pytest.mark.django_db
def test_imported_trait_sets_source_and_distinct_source_pks():
    first, second = factories.ChatFactory(imported=True), factories.ChatFactory(imported=True)

    assert first.source_id is not None and second.source_id is not None
    assert first.source_pk != second.source_pk
    assert factories.ChatFactory().source_id is None


@pytest.mark.django_db
def test_user_factory_puts_staff_account_in_groups():
    user = factories.UserFactory(groups=["Staff", "Managers"])

    assert user.is_staff and not user.is_superuser
    assert sorted(user.groups.values_list("name", flat=True)) == ["Managers", "Staff"]
    assert not user.has_usable_password()
