"""Database-level rules of usage models: budgets have exactly one target."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from core.tests.factories import AppUserFactory, BudgetFactory, OrganizationFactory
from usage.models import Budget

pytestmark = pytest.mark.django_db


def test_budget_with_both_organisation_and_user_refused():
    org, user = OrganizationFactory(), AppUserFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        Budget.objects.create(organization=org, user=user, monthly_limit=Decimal("10"))

    assert Budget.objects.count() == 0


def test_budget_with_neither_organisation_nor_user_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        Budget.objects.create(organization=None, user=None, monthly_limit=Decimal("10"))

    assert Budget.objects.count() == 0


def test_budget_for_organisation_or_for_user_accepted():
    org_budget = BudgetFactory()
    user_budget = BudgetFactory(organization=None, user=AppUserFactory())

    assert (org_budget.organization_id is not None, org_budget.user_id) == (True, None)
    assert (user_budget.organization_id, user_budget.user_id is not None) == (None, True)
    assert Budget.objects.count() == 2


def test_budget_alert_threshold_above_1_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        BudgetFactory(alert_threshold=Decimal("1.5"))

    assert Budget.objects.count() == 0
