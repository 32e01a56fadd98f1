"""Database-level rules of reports models."""

import pytest
from django.db import IntegrityError, transaction

from core.tests.factories import DeepAnalysisReportFactory
from reports.models import DeepAnalysisReport

pytestmark = pytest.mark.django_db


def test_report_progress_101_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        DeepAnalysisReportFactory(progress_percentage=101)

    DeepAnalysisReportFactory(progress_percentage=100)
    assert list(DeepAnalysisReport.objects.values_list("progress_percentage", flat=True)) == [100]


def test_report_status_outside_choices_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        DeepAnalysisReportFactory(status="done")

    assert DeepAnalysisReport.objects.count() == 0
