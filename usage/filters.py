"""The filter bar of the usage pages: the page kit's (period presets, a
bounded custom range, the scope), with the models and providers the
roll-ups know."""

from core.pages.filters import PageFilter

from .metrics import rollup_distinct


def _distinct(field):
    # From the smallest roll-up (days × models), not the ledger; the page's
    # palette reads the same list (memoized per request).
    return [(value, value) for value in rollup_distinct(field)]


class UsageFilter(PageFilter):
    """Period and scope of a usage (or analytics, or report) page."""

    COLUMNS = {"model": "model_name", "provider": "provider"}

    def choices(self, name):
        return _distinct(self.COLUMNS[name])
