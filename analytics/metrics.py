"""Quality, activity and text-to-SQL figures: "does it work?" and "is anyone
using it?", beside the cost figures of ``usage.metrics``.

The same family as usage.metrics: every figure is computed for a Period of
local days (settings.TIME_ZONE, the zone days are cut in) and a Scope, and
views only call these functions. Figures are aggregated in the database.

These figures read chats' and core's tables (code executions, feedback,
messages, chats, app users, sessions) and usage.QueryAnalytics; the "usage by
source and organisation" tables read the ledger's roll-ups through
``usage.metrics.current_reader()``. A Scope field that a table cannot answer is not
applied (``Fields`` below, and chats' QuerySets, say which apply where):

- code executions: the chat's app user and organisation, the execution's
  source, model and provider;
- feedback: the rated message's chat's app user and organisation, the
  feedback's source, model and provider; anchored on when it was given;
- messages (mistakes, activity): the chat's app user and organisation, the
  message's source; mistakes also by the message's model (no provider is
  stored on a message);
- app users, sessions, cohorts: the app user, their organisation and source;
- text-to-SQL queries: the app user, their organisation, the source, and the
  model and provider of the linked ledger row.

Error types of failed code executions are parsed in SQL from the stored
``error_messages`` (a JSON map agent → message, or a list or a string):
the last non-blank line of a message is its summary; the text before its
first ":" is the error type when it is one word (an exception class name
such as ``KeyError`` or ``pandas.errors.ParserError``), otherwise the whole
line (first 100 characters) is. SQLite and PostgreSQL spell the same rule
with their own string and JSON functions (``_ERROR_ENTRIES``).
"""

from datetime import timedelta

from django.core.exceptions import EmptyResultSet
from django.db.models import (
    Aggregate,
    Avg,
    Case,
    Count,
    DateField,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, TruncDate, TruncMonth, TruncWeek
from django.utils import timezone

from chats import feedback_rollups
from chats import rollups as chat_rollups
from chats.models import (
    Chat,
    ChatQuerySet,
    CodeExecution,
    CodeExecutionQuerySet,
    ExecutionRollup,
    Message,
    MessageFeedback,
    MessageFeedbackQuerySet,
    MessageQuerySet,
)
from core.models import AppUser, Organization, Source, UserSession
from core.pages.figures import headline, ratio
from core.pages.memo import memoized
from core.pages.period import Fields, Period, Scope, in_period, scoped
from usage import metrics as usage_metrics
from usage.models import QueryAnalytics

NO_AGENT = chat_rollups.NO_AGENT
NO_ERROR = chat_rollups.NO_ERROR
NOT_RECORDED = "not recorded"
P95 = 0.95


# -- which Scope fields apply to which table ----------------------------------


# Chats' tables say it on their QuerySets (chats.models: ``scope_fields``);
# the others here.
EXECUTION = CodeExecutionQuerySet.scope_fields
FEEDBACK = MessageFeedbackQuerySet.scope_fields
MESSAGE = MessageQuerySet.scope_fields
CHAT_MESSAGE = MessageQuerySet.chat_fields
CHAT = ChatQuerySet.scope_fields
APP_USER = Fields("id", "organization_id")
SESSION = Fields("user_id", "user__organization_id")
QUERY = Fields(
    "user_id", "user__organization_id", model="usage__model_name", provider="usage__provider"
)


def local_day(field):
    return TruncDate(field, tzinfo=timezone.get_current_timezone())


def _by_day(queryset, field, period, **aggregates):
    """{day: {aggregate: value}} for every day of the period (None on empty days)."""
    found = {
        row.pop("day"): row
        for row in queryset.annotate(day=local_day(field))
        .values("day")
        .annotate(**aggregates)
        .order_by("day")
    }
    empty = dict.fromkeys(aggregates)
    return {day: found.get(day, empty) for day in period.each_day()}


# -- raw SQL around ORM querysets (chats.rollups keeps the helpers) ------------

_compiled = chat_rollups.compiled
_vendor = chat_rollups.vendor
_fetch = chat_rollups.fetch
_around = chat_rollups.around


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(fraction) WITHIN GROUP (ORDER BY x)``."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


# SQLite has no percentile_cont: fetch the two values around the position
# fraction × (n − 1) of the ordered values with one OFFSET query (the count
# computed inside it) and interpolate between them, as percentile_cont does.
_SQLITE_PERCENTILE = """
SELECT q.v, (SELECT COUNT(*) FROM (__VALUES__) AS c)
FROM (__VALUES__) AS q ORDER BY q.v
LIMIT 2 OFFSET (SELECT CAST(%s * (COUNT(*) - 1) AS INTEGER) FROM (__VALUES__) AS o)
"""


def percentile_cont(queryset, field, fraction=P95):
    """The continuous percentile (linear interpolation, as PostgreSQL's
    percentile_cont) of a numeric field over a queryset; None without values.

    PostgreSQL computes it with percentile_cont; SQLite with one ordered
    OFFSET query (``_SQLITE_PERCENTILE``). One query either way.
    """
    values = queryset.filter(**{f"{field}__isnull": False}).order_by()
    if _vendor(values) == "postgresql":
        return values.aggregate(p=PercentileCont(field, fraction))["p"]
    try:
        sql, params = _compiled(values.annotate(v=F(field)).values("v"))
    except EmptyResultSet:  # e.g. pk__in=[]: no values
        return None
    query = _SQLITE_PERCENTILE.replace("__VALUES__", sql)
    rows = _fetch(values, query, [*params, *params, fraction, *params])
    if not rows:
        return None
    n = rows[0][1]
    position = fraction * (n - 1)
    low = int(position)
    first = float(rows[0][0])
    if len(rows) == 1:
        return first
    return first + (float(rows[1][0]) - first) * (position - low)


# -- code executions -------------------------------------------------------------

CHANGED_CODE = chat_rollups.CHANGED_CODE
RUN_TIME = ExpressionWrapper(F("updated_at") - F("created_at"), output_field=DurationField())


def executions(period, scope):
    """Code executions created in the period, in scope."""
    return CodeExecution.objects.in_period(period).scoped(scope).order_by()


# The figures over every execution of a period read the daily roll-up
# (chats.rollups.ExecutionRollup), never the executions themselves.
def _total(name, **extra):
    return Coalesce(Sum(name, **extra), 0)


# Aggregates of the roll-up's counts, by names that are not its columns'
# (``_counted`` gives them back their names).
_COUNTS = {"n_executions": "executions", "n_successes": "successes", "n_retried": "retried"}


def _execution_counts():
    return {alias: _total(column) for alias, column in _COUNTS.items()}


def _counted(row):
    for alias, name in _COUNTS.items():
        if alias in row:
            row[name] = row.pop(alias)
    return row


def execution_totals(period, scope):
    """Executions, successes, failures, success rate, share with changed code,
    chats with code and executions per such chat."""
    in_chat = Q(chat__isnull=False)
    row = _counted(
        chat_rollups.rows_in(period, scope, "chat").aggregate(
            **_execution_counts(),
            chats=Count("chat_id", distinct=True),
            in_chats=_total("executions", filter=in_chat),
        )
    )
    row["failures"] = row["executions"] - row["successes"]
    row["success_rate"] = ratio(row["successes"], row["executions"])
    row["retried_share"] = ratio(row["retried"], row["executions"])
    row["per_chat"] = ratio(row.pop("in_chats"), row["chats"])
    return row


EXECUTION_HEADLINE = [
    ("executions", "Code executions", "number"),
    ("success_rate", "Success rate", "share"),
    ("failures", "Failed executions", "number"),
    ("retried_share", "Code changed before the last run", "share"),
    ("chats", "Chats with code", "number"),
    ("per_chat", "Executions per chat", "decimal"),
]


def execution_headline(period, scope):
    return headline(execution_totals, period, scope, EXECUTION_HEADLINE)


def success_per_day(period, scope):
    """[(day, executions, successes, success rate)] for every day (rate None
    on a day without executions)."""
    found = {
        row["day"]: _counted(row)
        for row in chat_rollups.rows_in(period, scope, "day")
        .values("day")
        .annotate(**_execution_counts())
    }
    rows = []
    for day in period.each_day():
        row = found.get(day, {"executions": 0, "successes": 0})
        rows.append(
            (day, row["executions"], row["successes"], ratio(row["successes"], row["executions"]))
        )
    return rows


@memoized
def success_by_model(period, scope):
    """One row per model and provider, most executions first."""
    rows = [
        _counted(row)
        for row in chat_rollups.rows_in(period, scope, "day")
        .values("model_name", "model_provider")
        .annotate(**_execution_counts())
        .order_by("-n_executions", F("model_name").asc(nulls_last=True), "model_provider")
    ]
    for row in rows:
        row["failures"] = row["executions"] - row["successes"]
        row["success_rate"] = ratio(row["successes"], row["executions"])
        row["retried_share"] = ratio(row["retried"], row["executions"])
    return rows


def failing_executions(period, scope):
    return executions(period, scope).filter(is_successful=False)


# The error entries and failing agents of failed executions, in SQL: chats.rollups
# (the roll-ups are computed with the same statements).
_ERROR_ENTRIES = chat_rollups.ERROR_ENTRIES
_AGENT_ROWS = chat_rollups.AGENT_ROWS


def _entries(queryset):
    return _ERROR_ENTRIES[_vendor(queryset)]


def _agent_rows(queryset):
    return _AGENT_ROWS[_vendor(queryset)]


@memoized
def failures_by_error_type(period, scope):
    """[{error_type, executions, agents, example}] most frequent first; an
    execution with messages of two types counts in both groups."""
    rows = (
        scoped(
            ExecutionRollup.objects.filter(
                kind__in=("error", "error_agent"), day__gte=period.start, day__lte=period.end
            ),
            scope,
            chat_rollups.SCOPE_FIELDS,
        )
        .values("error_type")
        .annotate(
            executions=_total("executions", filter=Q(kind="error")),
            agents=Count("agent", distinct=True),
            example=Min("example", filter=Q(kind="error")),
        )
        .order_by("-executions", "error_type")
    )
    return [{k: row[k] for k in ("error_type", "executions", "agents", "example")} for row in rows]


@memoized
def failures_by_agent(period, scope):
    """[{agent, executions, share, chats}] most failures first: an agent
    fails in an execution when failed_agents or error_messages names it."""
    rows = list(
        chat_rollups.rows_in(period, scope, "agent")
        .values("agent")
        .annotate(n_executions=Sum("executions"), chats=Count("chat_id", distinct=True))
        .order_by("-n_executions", "agent")
    )
    total = chat_rollups.rows_in(period, scope, "day").aggregate(
        n=Coalesce(Sum(F("executions") - F("successes")), 0)
    )["n"]
    return [
        {
            "agent": row["agent"],
            "executions": row["n_executions"],
            "share": ratio(row["n_executions"], total),
            "chats": row["chats"],
        }
        for row in rows
    ]


def execution_list(period, scope, outcome="failed", error_type=None, agent=None):
    """The executions of a group, newest first (the drill-down list).

    ``outcome``: "failed", "succeeded" or anything else for both. A group is
    one error type or one agent of ``failures_by_error_type`` /
    ``failures_by_agent``; either implies failed executions.
    """
    queryset = executions(period, scope)
    if outcome == "failed" or error_type or agent:
        queryset = queryset.filter(is_successful=False)
    elif outcome == "succeeded":
        queryset = queryset.filter(is_successful=True)
    if error_type:
        sql, params = _around(
            f"SELECT execution_id FROM ({_entries(queryset)}) AS x WHERE error_type = %s",  # noqa: S608
            queryset,
            error_type,
        )
        queryset = queryset.filter(id__in=RawSQL(sql, params))  # noqa: S611 (_around)
    if agent:
        sql, params = _around(
            f"SELECT execution_id FROM ({_agent_rows(queryset)}) AS x WHERE agent = %s",  # noqa: S608
            queryset,
            agent,
        )
        queryset = queryset.filter(id__in=RawSQL(sql, params))  # noqa: S611 (_around)
    return (
        queryset.select_related("chat__user")
        .annotate(run_time=RUN_TIME)
        .order_by("-created_at", "-id")
    )


def execution_errors(ids):
    """{execution id: [(agent, error type, last line)]} for a page of
    executions (the list page's error column)."""
    ids = list(ids)
    if not ids:
        return {}
    queryset = CodeExecution.objects.filter(id__in=ids, is_successful=False)
    sql, params = _around(
        f"SELECT execution_id, agent, error_type, last_line FROM ({_entries(queryset)}) AS x "  # noqa: S608
        "WHERE error_type <> '(no error message)' "
        "ORDER BY execution_id, agent, error_type, last_line",
        queryset,
    )
    found = {}
    for execution_id, agent, kind, line in _fetch(queryset, sql, params):
        found.setdefault(execution_id, []).append((agent, kind, line))
    return found


EXECUTION_COUNT_BUCKETS = 5  # 1, 2, 3, 4, and "5 or more" executions in a chat


@memoized
def executions_per_chat(period, scope):
    """[(executions in a chat (the last is "or more"), chats)] for chats with
    code in the period, every bucket listed."""
    per_chat = (
        chat_rollups.rows_in(period, scope, "chat")
        .filter(chat__isnull=False)
        .values("chat_id")
        .annotate(n=Sum("executions"))
        .values("n")
    )
    sql, params = _compiled(per_chat)
    top = EXECUTION_COUNT_BUCKETS
    found = dict(
        _fetch(
            per_chat,
            f"SELECT CASE WHEN n >= {top} THEN {top} ELSE n END AS bucket, COUNT(*) "  # noqa: S608
            f"FROM ({sql}) AS per_chat GROUP BY 1",
            params,
        )
    )
    return [(n, found.get(n, 0)) for n in range(1, top + 1)]


def busiest_chats(period, scope, limit=10):
    """The chats with the most executions: [{chat_id, title, executions, failures}]."""
    rows = (
        chat_rollups.rows_in(period, scope, "chat")
        .filter(chat__isnull=False)
        .values("chat_id", "chat__title")
        .annotate(n_executions=Sum("executions"), failures=Sum(F("executions") - F("successes")))
        .order_by("-n_executions", "-failures", "chat_id")[:limit]
    )
    return [_counted(row) for row in rows]


def slowest_executions(period, scope, limit=10):
    """The executions with the longest updated_at − created_at (no run time
    is stored: this is the time from the first run to the last update, so
    it includes retries). Rows without both times are left out.

    Ranked on the roll-up's slowest executions of each group (at least the
    ten slowest of any scope, chats.rollups), then read by id."""
    ranked = (
        chat_rollups.rows_in(period, scope, "slow")
        .order_by("-run_time", "-execution_id")
        .values("execution_id")[:limit]
    )
    found = (
        CodeExecution.objects.filter(pk__in=ranked)
        .select_related("chat")
        .annotate(run_time=RUN_TIME)
    )
    return sorted(found, key=lambda e: (-e.run_time, -e.pk))


def most_retried(period, scope, limit=10):
    """Answers whose code was run more than once or changed before its last
    run: [{message_id, chat_id, title, runs, changed, failures, first, last}],
    most runs first."""
    return list(
        executions(period, scope)
        .filter(message__isnull=False)
        .values("message_id", "message__chat_id", "message__chat__title")
        .annotate(
            runs=Count("id"),
            changed=Count("id", filter=CHANGED_CODE),
            failures=Count("id", filter=Q(is_successful=False)),
            first=Min("created_at"),
            last=Max("created_at"),
        )
        .filter(Q(runs__gt=1) | Q(changed__gt=0))
        .order_by("-runs", "-changed", "-failures", "-last", "-message_id")[:limit]
    )


# -- feedback and mistakes ----------------------------------------------------------

LOW_RATING = 2  # 1–2 ★ is a low rating

# The feedback figures read the daily roll-up of ratings and answers
# (chats.feedback_rollups), never the ratings or messages themselves.
TEMPERATURE_BANDS = feedback_rollups.TEMPERATURE_BANDS
MAX_TOKENS_BANDS = feedback_rollups.MAX_TOKENS_BANDS


def feedback(period, scope):
    """Ratings given in the period (feedback without a rating left out): the
    raw rows, for lists; the figures read the roll-up."""
    return MessageFeedback.objects.rated().in_period(period).scoped(scope).order_by()


def _rating_sums():
    return {
        "n_ratings": _total("ratings"),
        "stars": _total(F("rating") * F("ratings")),
        "n_low": _total("ratings", filter=Q(rating__lte=LOW_RATING)),
    }


def _rated(row):
    """{ratings, average, low, low_share} of a row of ``_rating_sums``."""
    n = row.pop("n_ratings")
    stars = row.pop("stars")
    low = row.pop("n_low")
    row.update(ratings=n, average=stars / n if n else None, low=low, low_share=ratio(low, n))
    return row


def _answer_sums():
    return {"n_answers": _total("answers"), "n_mistakes": _total("mistakes")}


def _answers(period, scope):
    """The answer rows of the roll-up in scope (none with a provider: no
    provider is stored on a message)."""
    rows = feedback_rollups.rows_in(period, scope, "answer")
    return rows.none() if scope.provider else rows


def feedback_totals(period, scope):
    """Ratings, their average and low share; the share of assistant messages
    rated; mistakes flagged among assistant messages."""
    row = _rated(feedback_rollups.rows_in(period, scope, "rating").aggregate(**_rating_sums()))
    # Whether an answer was rated is known per message, but not its model
    # when it was not rated: with a model or provider in scope, unknown.
    if scope.model_name or scope.provider:
        row["rated_share"] = None
    else:
        answers = feedback_rollups.rows_in(
            period, scope, "answer", feedback_rollups.CHAT_FIELDS
        ).aggregate(n=_total("answers"), rated=_total("rated"))
        row["rated_share"] = ratio(answers["rated"], answers["n"])
    mistakes = mistake_counts(period, scope)
    row["mistakes"] = mistakes["mistakes"]
    row["mistake_share"] = ratio(mistakes["mistakes"], mistakes["answers"])
    return row


def mistake_counts(period, scope):
    found = _answers(period, scope).aggregate(**_answer_sums())
    return {"answers": found["n_answers"], "mistakes": found["n_mistakes"]}


FEEDBACK_HEADLINE = [
    ("ratings", "Ratings", "number"),
    ("average", "Average rating", "rating"),
    ("low_share", "Rated 1–2 ★", "share"),
    ("rated_share", "Answers rated", "share"),
    ("mistakes", "Mistakes flagged", "number"),
    ("mistake_share", "Answers flagged as mistakes", "share"),
]


def feedback_headline(period, scope):
    return headline(feedback_totals, period, scope, FEEDBACK_HEADLINE)


@memoized
def rating_distribution(period, scope):
    """[(rating, count)] for 1 to 5 ★."""
    found = dict(
        feedback_rollups.rows_in(period, scope, "rating")
        .values("rating")
        .annotate(n=Sum("ratings"))
        .values_list("rating", "n")
    )
    return [(rating, found.get(rating, 0)) for rating in range(1, 6)]


def rating_per_day(period, scope):
    """[(day, ratings, average)] for every day (average None without ratings)."""
    found = {
        row["day"]: _rated(row)
        for row in feedback_rollups.rows_in(period, scope, "rating")
        .values("day")
        .annotate(**_rating_sums())
    }
    return [
        (day, found[day]["ratings"], found[day]["average"]) if day in found else (day, 0, None)
        for day in period.each_day()
    ]


def _rating_rows(rows, *group):
    return [_rated(row) for row in rows.values(*group).annotate(**_rating_sums())]


def rating_by_model(period, scope):
    """One row per model and provider rated, lowest average first."""
    rows = _rating_rows(
        feedback_rollups.rows_in(period, scope, "rating"), "model_name", "model_provider"
    )
    rows.sort(
        key=lambda r: (
            r["average"],
            -r["ratings"],
            r["model_name"] or "",
            r["model_provider"] or "",
        )
    )
    return rows


def rating_by_agent(period, scope):
    """Ratings per agent, lowest average first: [{agent, known_from,
    ratings, average, low, low_share}].

    An answer's agent is known in two ways, shown apart: the message's own
    ``agent_type`` (the DS-ML agent stores it), and for Auto-Analyst, which
    stores no agent per message, the agents named as failed in the answer's
    code executions (``failed_agents`` / ``error_messages``) — the rating of
    an answer whose code by that agent failed.
    """
    rows = []
    for kind, known_from in (("rating", "message agent"), ("agent", "code failed")):
        found = feedback_rollups.rows_in(period, scope, kind).filter(agent__isnull=False)
        for row in _rating_rows(found, "agent"):
            row["known_from"] = known_from
            rows.append(row)
    rows.sort(key=lambda r: (r["average"], -r["ratings"], r["agent"], r["known_from"]))
    return rows


def _rating_by_band(period, scope, bands, column):
    found = {
        row[column]: row
        for row in _rating_rows(feedback_rollups.rows_in(period, scope, "rating"), column)
    }
    empty = {"ratings": 0, "average": None, "low": 0, "low_share": None}
    return [
        {**{k: v for k, v in found.get(n, empty).items() if k != column}, "band": label}
        for n, (label, _) in enumerate(bands)
    ]


@memoized
def rating_by_temperature(period, scope):
    """Ratings per band of the rated call's temperature, every band listed."""
    return _rating_by_band(period, scope, TEMPERATURE_BANDS, "temperature_band")


def rating_by_max_tokens(period, scope):
    """Ratings per band of the rated call's max tokens, every band listed."""
    return _rating_by_band(period, scope, MAX_TOKENS_BANDS, "max_tokens_band")


def mistakes_per_day(period, scope):
    """[(day, assistant messages, flagged as mistakes)] by the message's day."""
    found = {
        row["day"]: (row["n_answers"], row["n_mistakes"])
        for row in _answers(period, scope).values("day").annotate(**_answer_sums())
    }
    return [(day, *found.get(day, (0, 0))) for day in period.each_day()]


def mistakes_by_model(period, scope):
    """[{model_name, answers, mistakes, share}] for assistant messages that
    carry a model, most mistakes first."""
    rows = [
        {
            "model_name": row["model_name"],
            "answers": row["n_answers"],
            "mistakes": row["n_mistakes"],
        }
        for row in _answers(period, scope)
        .filter(model_name__isnull=False)
        .values("model_name")
        .annotate(**_answer_sums())
        .order_by("-n_mistakes", "model_name")
    ]
    for row in rows:
        row["share"] = ratio(row["mistakes"], row["answers"])
    return rows


# -- activity --------------------------------------------------------------------

# An app user is active on a day when they wrote a message (role "user") in
# one of their chats that day; anonymous chats have no app user to count.


def user_messages(period, scope):
    return Message.objects.from_users().in_period(period).scoped(scope, CHAT_MESSAGE).order_by()


def _active_users():
    return Count("chat__user_id", distinct=True)


def chats(period, scope):
    return Chat.objects.in_period(period).scoped(scope).order_by()


def messages(period, scope):
    return Message.objects.in_period(period).scoped(scope, CHAT_MESSAGE).order_by()


def new_users(period, scope):
    return scoped(AppUser.objects.filter(in_period(period)), scope, APP_USER).order_by()


def sessions(period, scope):
    return scoped(
        UserSession.objects.filter(in_period(period, "session_start")), scope, SESSION
    ).order_by()


SESSION_LENGTH = ExpressionWrapper(
    F("session_end") - F("session_start"), output_field=DurationField()
)


def _seconds(value):
    return None if value is None else value.total_seconds()


def activity_totals(period, scope):
    """Active app users, new app users, chats, messages, sessions and their
    average length (sessions with an end only)."""
    session = sessions(period, scope).aggregate(
        sessions=Count("id"),
        length=Avg(SESSION_LENGTH, filter=Q(session_end__gte=F("session_start"))),
    )
    return {
        "active_users": user_messages(period, scope).aggregate(n=_active_users())["n"],
        "new_users": new_users(period, scope).count(),
        "chats": chats(period, scope).count(),
        "messages": messages(period, scope).count(),
        "sessions": session["sessions"],
        "session_length": _seconds(session["length"]),
    }


ACTIVITY_HEADLINE = [
    ("active_users", "Active app users", "number"),
    ("new_users", "New app users", "number"),
    ("chats", "Chats started", "number"),
    ("messages", "Messages", "number"),
    ("sessions", "Sessions", "number"),
    ("session_length", "Average session", "duration"),
]


def activity_headline(period, scope):
    return headline(activity_totals, period, scope, ACTIVITY_HEADLINE)


def active_users_per_day(period, scope):
    """[(day, active app users)] for every day."""
    days = _by_day(user_messages(period, scope), "created_at", period, n=_active_users())
    return [(day, row["n"] or 0) for day, row in days.items()]


def _week_start(day):
    return day - timedelta(days=day.weekday())


def _periods_of(period, kind):
    """The weeks (Monday) or months (1st) that meet the period, in order."""
    firsts = []
    for day in period.each_day():
        first = _week_start(day) if kind == "week" else day.replace(day=1)
        if not firsts or firsts[-1] != first:
            firsts.append(first)
    return firsts


def _active_by(period, scope, kind):
    trunc = TruncWeek if kind == "week" else TruncMonth
    found = dict(
        user_messages(period, scope)
        .annotate(
            first=trunc(
                "created_at", tzinfo=timezone.get_current_timezone(), output_field=DateField()
            )
        )
        .values("first")
        .annotate(n=_active_users())
        .values_list("first", "n")
    )
    rows = []
    for first in _periods_of(period, kind):
        last = first + timedelta(days=6) if kind == "week" else _month_end(first)
        inside = (min(last, period.end) - max(first, period.start)).days + 1
        rows.append((first, found.get(first, 0), inside, (last - first).days + 1))
    return rows


def _month_end(first):
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


@memoized
def active_users_per_week(period, scope):
    """[(Monday, active app users, days in the period)] for each week meeting
    the period; a week partly outside it counts only its days inside."""
    return [row[:3] for row in _active_by(period, scope, "week")]


def active_users_per_month(period, scope):
    """[(1st of the month, active app users, days in the period, days in the
    month)], as the weeks."""
    return _active_by(period, scope, "month")


def new_users_per_day(period, scope):
    """[(day, app users created)] for every day."""
    days = _by_day(new_users(period, scope), "created_at", period, n=Count("id"))
    return [(day, row["n"] or 0) for day, row in days.items()]


def chats_and_messages_per_day(period, scope):
    """[(day, chats started, messages)] for every day."""
    chat_days = _by_day(chats(period, scope), "created_at", period, n=Count("id"))
    message_days = _by_day(messages(period, scope), "created_at", period, n=Count("id"))
    return [
        (day, chat_days[day]["n"] or 0, message_days[day]["n"] or 0) for day in period.each_day()
    ]


def sessions_per_day(period, scope):
    """[(day, sessions started, average length in seconds of those ended)]."""
    days = _by_day(
        sessions(period, scope),
        "session_start",
        period,
        n=Count("id"),
        length=Avg(SESSION_LENGTH, filter=Q(session_end__gte=F("session_start"))),
    )
    return [(day, row["n"] or 0, _seconds(row["length"])) for day, row in days.items()]


MAX_COHORT_WEEKS = 13


@memoized
def cohorts(period, scope):
    """Returning app users, one row per weekly sign-up cohort.

    A cohort is the app users created in one week (Monday to Sunday, local)
    that starts in the period, at most the last MAX_COHORT_WEEKS such weeks;
    week k is the share of the cohort active (``user_messages``) in the
    k-th week after it, up to the period's end.
    Returns (number of week columns, [{cohort, users, w0, w1, …}]).
    """
    weeks = [week for week in _periods_of(period, "week") if week >= period.start]
    weeks = weeks[-MAX_COHORT_WEEKS:]
    if not weeks:
        return 0, []
    zone = timezone.get_current_timezone()
    span = Period(weeks[0], period.end)
    members = scoped(AppUser.objects.filter(in_period(span)), scope, APP_USER).order_by()
    sizes = dict(
        members.annotate(cohort=TruncWeek("created_at", tzinfo=zone, output_field=DateField()))
        .values("cohort")
        .annotate(n=Count("id"))
        .values_list("cohort", "n")
    )
    active = (
        Message.objects.from_users()
        .in_period(span)
        .filter(chat__user__in=members.values("id"))
        .order_by()
    )
    cells = {
        (cohort, week): n
        for cohort, week, n in active.annotate(
            cohort=TruncWeek("chat__user__created_at", tzinfo=zone, output_field=DateField()),
            week=TruncWeek("created_at", tzinfo=zone, output_field=DateField()),
        )
        .values("cohort", "week")
        .annotate(n=_active_users())
        .values_list("cohort", "week", "n")
    }
    rows = []
    for index, cohort in enumerate(weeks):
        size = sizes.get(cohort, 0)
        row = {"cohort": cohort, "users": size}
        for k in range(len(weeks) - index):
            n = cells.get((cohort, cohort + timedelta(weeks=k)), 0)
            row[f"w{k}"] = ratio(n, size)
        rows.append(row)
    return len(weeks), rows


def _usage_by(period, scope, key):
    """{key: (requests, tokens)} of the ledger roll-ups (no model or provider)."""
    usage_scope = Scope(
        organization_id=scope.organization_id, user_id=scope.user_id, source_id=scope.source_id
    )
    reader = usage_metrics.current_reader()
    return {
        value: (requests, tokens)
        for value, requests, tokens in reader.usage(period, usage_scope, key)
        .values(key)
        .annotate(r=reader.total("requests"), t=reader.total("total_tokens"))
        .values_list(key, "r", "t")
    }


def _activity_by(period, scope, chat_key, message_key):
    """{key: (chats, messages, active users)} grouped by a column of the
    chats and one of the messages."""
    chat_counts = dict(
        chats(period, scope).values(chat_key).annotate(n=Count("id")).values_list(chat_key, "n")
    )
    found = {}
    for value, n, active in (
        messages(period, scope)
        .values(message_key)
        .annotate(
            n=Count("id"),
            active=Count("chat__user_id", distinct=True, filter=Q(role=Message.Role.USER)),
        )
        .values_list(message_key, "n", "active")
    ):
        found[value] = (n, active)
    keys = set(chat_counts) | set(found)
    return {key: (chat_counts.get(key, 0), *found.get(key, (0, 0))) for key in keys}


def _usage_rows(activity, usage, labels, key_name):
    rows = []
    for key in set(activity) | set(usage):
        chats_n, messages_n, active = activity.get(key, (0, 0, 0))
        requests, tokens = usage.get(key, (0, 0))
        if not (chats_n or messages_n or requests):
            continue
        rows.append(
            {
                key_name: key,
                "label": labels.get(key),
                "chats": chats_n,
                "messages": messages_n,
                "active_users": active,
                "requests": requests or 0,
                "tokens": tokens or 0,
            }
        )
    rows.sort(key=lambda r: (-r["messages"], -r["requests"], r["label"] or "~"))
    return rows


def usage_by_source(period, scope):
    """Per source application: chats, messages, active app users (from the
    chats' tables) and LLM requests and tokens (from the ledger roll-up)."""
    activity = _activity_by(period, scope, "source_id", "source_id")
    usage = _usage_by(period, scope, "source_id")
    labels = {
        pk: f"{name} ({kind})"
        for pk, name, kind in Source.objects.values_list("pk", "name", "kind")
    }
    labels[None] = "created here (no source)"
    return _usage_rows(activity, usage, labels, "source_id")


def usage_by_organization(period, scope, limit=20):
    """The organisations with most messages, as usage_by_source; chats
    without an organisation are one row."""
    activity = _activity_by(period, scope, "organization_id", "chat__organization_id")
    usage = _usage_by(period, scope, "organization_id")
    keys = [k for k in set(activity) | set(usage) if k is not None]
    labels = dict(Organization.objects.filter(pk__in=keys).values_list("pk", "name"))
    labels[None] = "no organisation"
    return _usage_rows(activity, usage, labels, "organization_id")[:limit]


# -- text-to-SQL ------------------------------------------------------------------


def queries(period, scope):
    """usage.QueryAnalytics rows of the period, by their timestamp."""
    return scoped(
        QueryAnalytics.objects.filter(in_period(period, "timestamp")), scope, QUERY
    ).order_by()


def _query_counts():
    return {
        "queries": Count("id"),
        "succeeded": Count("id", filter=Q(success=True)),
        "failed": Count("id", filter=Q(success=False)),
        "average_time": Avg("execution_time"),
    }


def query_totals(period, scope):
    """Queries, success rate (of those with a known outcome), failures,
    execution time average and p95 (seconds), rows returned."""
    found = queries(period, scope)
    row = found.aggregate(
        **_query_counts(),
        rows=Sum("row_count"),
        average_rows=Avg("row_count"),
    )
    row["success_rate"] = ratio(row["succeeded"], row["succeeded"] + row["failed"])
    row["p95_time"] = percentile_cont(found, "execution_time")
    return row


QUERY_HEADLINE = [
    ("queries", "Questions asked", "number"),
    ("success_rate", "Success rate", "share"),
    ("failed", "Failed queries", "number"),
    ("average_time", "Average execution time", "duration"),
    ("p95_time", "p95 execution time", "duration"),
    ("average_rows", "Rows returned per query", "decimal"),
]


def query_headline(period, scope):
    return headline(query_totals, period, scope, QUERY_HEADLINE)


def queries_per_day(period, scope):
    """[(day, queries, succeeded, failed, average execution time)] for every day."""
    days = _by_day(queries(period, scope), "timestamp", period, **_query_counts())
    return [
        (day, row["queries"] or 0, row["succeeded"] or 0, row["failed"] or 0, row["average_time"])
        for day, row in days.items()
    ]


def _message_of(query):
    """The chat message of a query (chats' Message.query_id), first in time."""
    return Message.objects.filter(query_id=OuterRef(query)).order_by("created_at", "id")


def _with_transcript(queryset):
    return queryset.annotate(
        message_id=Subquery(_message_of("query_id").values("id")[:1]),
        chat_id=Subquery(_message_of("query_id").values("chat_id")[:1]),
    )


def frequent_errors(period, scope, limit=10):
    """[{error_message, queries, last, query_id, message_id, chat_id}]: failed
    queries grouped by their error text (none and "" are one group, shown
    as None, last among equals), most frequent first, with the latest such
    query and its chat message (None when it came through the API)."""
    failed = (
        queries(period, scope)
        .filter(success=False)
        .annotate(error=Coalesce("error_message", Value(""), output_field=TextField()))
    )
    latest = failed.filter(error=OuterRef("error")).order_by("-timestamp", "-id")
    rows = list(
        _with_transcript(
            failed.values("error")
            .annotate(queries=Count("id"), last=Max("timestamp"))
            .annotate(query_id=Subquery(latest.values("query_id")[:1]))
        ).order_by("-queries", Case(When(error="", then=Value(1)), default=Value(0)), "error")[
            :limit
        ]
    )
    for row in rows:
        row["error_message"] = row.pop("error") or None
    return rows


def slowest_queries(period, scope, limit=10):
    """The queries with the longest execution time, with their chat message."""
    return list(
        _with_transcript(queries(period, scope).filter(execution_time__isnull=False))
        .select_related("user")
        .order_by("-execution_time", "-id")[:limit]
    )


ROW_BANDS = [
    ("0 rows", Q(row_count=0)),
    ("1 row", Q(row_count=1)),
    ("2 to 10", Q(row_count__gte=2, row_count__lte=10)),
    ("11 to 100", Q(row_count__gte=11, row_count__lte=100)),
    ("101 to 1,000", Q(row_count__gte=101, row_count__lte=1000)),
    ("more than 1,000", Q(row_count__gt=1000)),
    (NOT_RECORDED, Q(row_count__isnull=True)),
]


@memoized
def rows_returned(period, scope):
    """[{band, queries, share}] of result sizes, every band listed."""
    found = queries(period, scope).aggregate(
        total=Count("id"),
        **{f"b{n}": Count("id", filter=condition) for n, (_, condition) in enumerate(ROW_BANDS)},
    )
    return [
        {"band": label, "queries": found[f"b{n}"], "share": ratio(found[f"b{n}"], found["total"])}
        for n, (label, _) in enumerate(ROW_BANDS)
    ]
