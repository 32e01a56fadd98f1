"""Database-level rules of core models: the database refuses bad rows."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from chats.models import Chat
from core.models import AgentTemplate, AppUser, UserTemplatePreference

from .factories import (
    AgentTemplateFactory,
    AppUserFactory,
    ChatFactory,
    SourceFactory,
    UserTemplatePreferenceFactory,
)

pytestmark = pytest.mark.django_db


def test_second_template_preference_for_same_user_and_template_refused():
    pref = UserTemplatePreferenceFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        UserTemplatePreference.objects.create(user=pref.user, template=pref.template)

    assert UserTemplatePreference.objects.filter(user=pref.user).count() == 1


def test_same_template_for_another_user_accepted():
    pref = UserTemplatePreferenceFactory()
    other = AppUserFactory()

    UserTemplatePreference.objects.create(user=other, template=pref.template)

    assert UserTemplatePreference.objects.filter(template=pref.template).count() == 2


def test_app_user_email_differing_only_in_case_refused_but_null_emails_repeat():
    AppUser.objects.create(username="ann", email="Ann.Lee@Example.com")

    with pytest.raises(IntegrityError), transaction.atomic():
        AppUser.objects.create(username="ann2", email="ann.lee@example.COM")

    AppUser.objects.create(username="anon1", email=None)
    AppUser.objects.create(username="anon2", email=None)
    assert AppUser.objects.filter(email__isnull=True).count() == 2
    assert AppUser.objects.filter(email__iexact="ann.lee@example.com").count() == 1


def test_app_user_email_case_clash_has_readable_validation_error():
    AppUserFactory(email="bob@example.com")
    clash = AppUser(username="bob2", email="BOB@example.com")

    with pytest.raises(ValidationError) as excinfo:
        clash.full_clean()

    assert "An app user with this e-mail (in any case) exists." in excinfo.value.messages


def test_duplicate_username_refused_while_null_usernames_repeat():
    AppUser.objects.create(username="carol", email="carol@example.com")

    with pytest.raises(IntegrityError), transaction.atomic():
        AppUser.objects.create(username="carol", email="carol2@example.com")

    AppUser.objects.create(username=None, email="n1@example.com")
    AppUser.objects.create(username=None, email="n2@example.com")
    assert AppUser.objects.filter(username="carol").count() == 1
    assert AppUser.objects.filter(username__isnull=True).count() == 2


def test_agent_template_variant_type_other_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentTemplateFactory(variant_type="other")

    for variant in ("planner", "individual", "both"):
        AgentTemplateFactory(variant_type=variant)
    assert AgentTemplate.objects.count() == 3


def test_duplicate_source_and_source_pk_refused_for_imported_row():
    source = SourceFactory()
    ChatFactory(source=source, source_pk="42")

    with pytest.raises(IntegrityError), transaction.atomic():
        ChatFactory(source=source, source_pk="42")

    # The same original pk from another application is a different row.
    ChatFactory(source=SourceFactory(), source_pk="42")
    assert Chat.objects.filter(source_pk="42").count() == 2


def test_rows_without_source_may_share_empty_source_pk():
    ChatFactory(user=None, source=None, source_pk="")
    ChatFactory(user=None, source=None, source_pk="")
    AppUserFactory(source=None, source_pk="")
    AppUserFactory(source=None, source_pk="")

    assert Chat.objects.filter(source__isnull=True, source_pk="").count() == 2
    assert AppUser.objects.filter(source__isnull=True, source_pk="").count() == 2
