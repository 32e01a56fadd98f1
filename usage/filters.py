"""The filter bar of the usage pages: the page kit's (period presets, a
bounded custom range, the scope), with the models and providers the
roll-ups know."""

from core.pages.filters import PageFilter

from .models import DailyTotal


def _distinct(field):
    # From the smallest roll-up (days × models), not the ledger.
    return [
        (value, value)
        for value in DailyTotal.objects.order_by(field).values_list(field, flat=True).distinct()
    ]


class UsageFilter(PageFilter):
    """Period and scope of a usage (or analytics, or report) page."""

    COLUMNS = {"model": "model_name", "provider": "provider"}

    def choices(self, name):
        return _distinct(self.COLUMNS[name])
