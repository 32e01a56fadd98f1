"""Filter bars of the quality pages: the usage pages' bar (the page kit's
period presets and scope, with the roll-ups' models and providers), less
the fields a page cannot apply (``omit``)."""

import django_filters

from usage.filters import UsageFilter


class QualityFilter(UsageFilter):
    """UsageFilter; ``omit`` names the fields a page leaves out."""


class ActivityFilter(QualityFilter):
    # Activity is counted from chats, messages, app users and sessions,
    # which carry no model or provider.
    omit = ("model", "provider")


class ExecutionFilter(QualityFilter):
    """The drill-down list: one group of the code page's executions."""

    outcome = django_filters.ChoiceFilter(
        choices=[("failed", "Failed"), ("succeeded", "Succeeded"), ("all", "All")],
        method="keep",
        empty_label=None,
        label="Outcome",
    )
    error_type = django_filters.CharFilter(method="keep", label="Error type")
    agent = django_filters.CharFilter(method="keep", label="Agent")

    def __init__(self, data=None, *args, **kwargs):
        data = data.copy() if data is not None else {}
        data.setdefault("outcome", "failed")
        super().__init__(data, *args, **kwargs)

    def group(self):
        """(outcome, error type, agent); the defaults when the form is invalid."""
        data = self.form.cleaned_data if self.form.is_valid() else {}
        return data.get("outcome") or "failed", data.get("error_type"), data.get("agent")
