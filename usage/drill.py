"""Links from a page's figures to the rows behind them: the usage ledger's
and the chats' admin changelists, filtered to one local day (TIME_ZONE) and
the page's scope, in query parameters their list filters read
(usage.admin.ModelUsageAdmin, chats.admin.ChatAdmin)."""

from chats.models import Chat
from core.admin_tools import LocalDayFilter, admin_changelist_url

from . import metrics
from .models import ModelUsage

# Stands for the day in a chart's URL pattern; static/js/drill.js puts the
# clicked bar's day in its place.
DAY = "__day__"

LEDGER_DAY = LocalDayFilter.parameter_for("timestamp")
CHAT_DAY = LocalDayFilter.parameter_for("created_at")


def _day(day):
    return day if day == DAY else LocalDayFilter.value_for(day)


def ledger_url(day, scope):
    """The ledger rows of one local day (a date, or DAY) in ``scope``."""
    return admin_changelist_url(
        ModelUsage, **{LEDGER_DAY: _day(day)}, **metrics.ledger_params(scope)
    )


def chats_url(day, scope):
    """The chats started on one local day in ``scope`` (its organisation, app
    user and source: a chat has no model)."""
    return admin_changelist_url(Chat, **{CHAT_DAY: _day(day)}, **metrics.chat_params(scope))


def user_chats_url(user_id):
    """Every chat of one app user."""
    return admin_changelist_url(Chat, user__id__exact=user_id)


def chats_url_any_day(scope):
    """Every chat in ``scope`` (its organisation, app user and source)."""
    return admin_changelist_url(Chat, **metrics.chat_params(scope))
