"""The report list's filter bar: the page kit's period presets and scope
(kept in the URL, as on the cost pages), and the report's status."""

import django_filters

from usage.filters import UsageFilter

from .models import DeepAnalysisReport


class ReportFilter(UsageFilter):
    # A report has an app user (and through it an organisation) and a
    # status; no model or provider.
    omit = ("model", "provider", "source")

    status = django_filters.ChoiceFilter(
        choices=DeepAnalysisReport.Status.choices, method="keep", label="Status"
    )

    def status_value(self):
        """The chosen status, or None (any; also when the form is invalid)."""
        return (self.form.cleaned_data.get("status") or None) if self.form.is_valid() else None
