"""Daily roll-ups of the ratings and of the assistant answers, for the
feedback page and the models page (#15).

A sibling of ``chats.rollups.ExecutionRollup`` kept by the same mechanism,
in its own table: its rows have other measures (ratings, answers, mistakes)
and other group columns (rating, bands, agent), and two anchors — a rating
belongs to the day it was given, an answer to the day it was written — so
sharing the execution table would leave most columns of every row empty and
make each figure filter out the other table's kinds. ``FeedbackRollup``
holds, per local day (settings.TIME_ZONE) and source, three kinds of rows
(``Kind``), each keyed by the day, the source, the chat's organisation and
app user and the model:

- ``rating``: ratings given (feedback without a rating left out) per
  feedback model and provider, rating, band of temperature and of max
  tokens (indexes into ``TEMPERATURE_BANDS``/``MAX_TOKENS_BANDS``) and the
  rated message's own ``agent_type``;
- ``agent``: ratings per agent named as failed by a code execution of the
  rated message (``failed_agents`` / ``error_messages``), a rating counted
  once per agent;
- ``answer``: assistant messages written per message model: answers,
  those flagged as mistakes and those with a rating.

So a page reads rows that grow with days × models × organisations × users
(× ratings, bands, agents), never every rating or message of the period.

How they stay exact, as the execution roll-up (chats.rollups): a key is
(day, source), of a rating or of an answer; a write recomputes the keys it
touched from the raw rows inside its transaction, after the write, under
the per-key advisory locks (in key order) and the shared chat lock. One
row's figures read other rows (a rating reads its message's chat and
agent, and the failed executions of its message; an answer reads its
rating): every writer of a message, a rating or a code execution also takes
a transaction-scoped advisory lock per message it wrote (or its rating's or
execution's message), in id order, before it finds the keys to recompute.
So two writers around the same message take turns and the second finds
(and recomputes) the keys the first one's rows moved to. Lock order, for
every writer: [the chat lock, exclusive: chat writers] → rows →
message locks → the chat lock, shared → execution keys → feedback keys.

``rebuild`` (``manage.py rebuild_quality_rollups``) recomputes every key.
"""

from collections import defaultdict

from django.db import connections, models, router, transaction
from django.db.models import Case, Count, F, Q, Value, When

from core.pages.period import Fields, scoped

from . import rollups

NOT_RECORDED = "not recorded"

# A band holds its upper bound: 0.3 is in "0 – 0.3", 2,000 in "1,000 – 2,000".
TEMPERATURE_BANDS = [
    ("0", Q(temperature=0)),
    ("0 – 0.3", Q(temperature__gt=0, temperature__lte=0.3)),
    ("0.3 – 0.7", Q(temperature__gt=0.3, temperature__lte=0.7)),
    ("above 0.7", Q(temperature__gt=0.7)),
    (NOT_RECORDED, Q(temperature__isnull=True)),
]
MAX_TOKENS_BANDS = [
    ("up to 1,000", Q(max_tokens__lte=1000)),
    ("1,000 – 2,000", Q(max_tokens__gt=1000, max_tokens__lte=2000)),
    ("2,000 – 4,000", Q(max_tokens__gt=2000, max_tokens__lte=4000)),
    ("4,000 – 8,000", Q(max_tokens__gt=4000, max_tokens__lte=8000)),
    ("above 8,000", Q(max_tokens__gt=8000)),
    (NOT_RECORDED, Q(max_tokens__isnull=True)),
]


def band_of(bands):
    """The index of the band a row is in (a SQL CASE)."""
    return Case(
        *(When(condition, then=Value(n)) for n, (_, condition) in enumerate(bands)),
        output_field=models.SmallIntegerField(),
    )


class FeedbackRollup(models.Model):
    """Ratings and assistant answers per local day, source, the chat's
    organisation and app user and model, in three kinds (module
    docstring). Written only by ``refresh`` and ``rebuild``."""

    class Kind(models.TextChoices):
        RATING = "rating", "ratings given"
        AGENT = "agent", "ratings per failed agent"
        ANSWER = "answer", "assistant answers written"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    day = models.DateField()
    source = rollups._key_column("core.Source")
    organization = rollups._key_column("core.Organization")
    user = rollups._key_column("core.AppUser")
    model_name = models.CharField(max_length=100, null=True, blank=True)
    model_provider = models.CharField(max_length=50, null=True, blank=True)
    rating = models.SmallIntegerField(null=True, blank=True)
    temperature_band = models.SmallIntegerField(null=True, blank=True)
    max_tokens_band = models.SmallIntegerField(null=True, blank=True)
    agent = models.TextField(null=True, blank=True)
    ratings = models.IntegerField(default=0)
    answers = models.IntegerField(default=0)
    mistakes = models.IntegerField(default=0)
    rated = models.IntegerField(default=0)

    class Meta:
        verbose_name = "feedback roll-up row"
        ordering = ["-day"]
        indexes = [
            # every figure of the feedback and models pages: one kind over days
            models.Index(fields=["kind", "day"], name="chats_fbroll_kind_day_idx"),
            # refresh: the rows of one (day, source) key
            models.Index(fields=["day", "source"], name="chats_fbroll_key_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["rating", "agent", "answer"]),
                name="chats_fbroll_kind_valid",
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.day} {self.model_name}: {self.ratings or self.answers}"


# -- recomputing keys ---------------------------------------------------------------


def _feedback(using):
    from .models import MessageFeedback  # noqa: PLC0415 (chats.models imports this module)

    return MessageFeedback._base_manager.using(using).order_by()


def _messages(using):
    from .models import Message  # noqa: PLC0415

    return Message._base_manager.using(using).order_by()


# Ratings by the failed agents of the rated message's code executions: one
# row per (rating, agent), grouped. The agents' rows are a MATERIALIZED
# common table (joined as a derived table, SQLite walks them again per
# rating).
_FAILED_AGENT_RATINGS = """
WITH a AS MATERIALIZED (__AGENTS__)
SELECT c.organization_id, c.user_id, r.model_name, r.model_provider, r.rating, r.agent, COUNT(*)
FROM (
  SELECT DISTINCT fb.id, fb.message_id, fb.rating, fb.model_name, fb.model_provider, a.agent
  FROM chats_messagefeedback fb
  JOIN chats_codeexecution e ON e.message_id = fb.message_id
  JOIN a ON a.execution_id = e.id
  WHERE fb.id IN (__FEEDBACK__) AND a.agent <> '(no agent recorded)'
) AS r
JOIN chats_message m ON m.id = r.message_id
JOIN chats_chat c ON c.id = m.chat_id
GROUP BY c.organization_id, c.user_id, r.model_name, r.model_provider, r.rating, r.agent
"""


def _key_rows(key, using):
    """The roll-up rows (unsaved) of one (day, source) key, from the raw rows."""
    from .models import CodeExecution  # noqa: PLC0415

    day, source_id = key
    given = rollups._in_key(_feedback(using).filter(rating__isnull=False), key)
    rows = [
        FeedbackRollup(
            kind="rating",
            day=day,
            source_id=source_id,
            organization_id=row["org"],
            user_id=row["usr"],
            model_name=row["model_name"],
            model_provider=row["model_provider"],
            rating=row["rating"],
            temperature_band=row["tb"],
            max_tokens_band=row["mb"],
            agent=row["agent"],
            ratings=row["n"],
        )
        for row in given.annotate(
            tb=band_of(TEMPERATURE_BANDS),
            mb=band_of(MAX_TOKENS_BANDS),
            org=F("message__chat__organization_id"),
            usr=F("message__chat__user_id"),
            agent=F("message__agent_type"),
        )
        .values("model_name", "model_provider", "rating", "tb", "mb", "org", "usr", "agent")
        .annotate(n=Count("id"))
    ]
    if rows:
        failing = CodeExecution._base_manager.using(using).filter(
            is_successful=False, message__feedback__in=given.values("id")
        )
        agents_sql, agent_params = rollups.around(
            rollups.AGENT_ROWS[rollups.vendor(failing)], failing
        )
        feedback_sql, feedback_params = rollups.compiled(given.values("id"))
        sql = _FAILED_AGENT_RATINGS.replace("__AGENTS__", agents_sql).replace(
            "__FEEDBACK__", feedback_sql
        )
        rows += [
            FeedbackRollup(
                kind="agent",
                day=day,
                source_id=source_id,
                organization_id=org,
                user_id=usr,
                model_name=model,
                model_provider=provider,
                rating=rating,
                agent=agent,
                ratings=n,
            )
            for org, usr, model, provider, rating, agent, n in rollups.fetch(
                given, sql, [*agent_params, *feedback_params]
            )
        ]
    answers = rollups._in_key(_messages(using).filter(role="assistant"), key)
    rows += [
        FeedbackRollup(
            kind="answer",
            day=day,
            source_id=source_id,
            organization_id=row["org"],
            user_id=row["usr"],
            model_name=row["model_name"],
            answers=row["n"],
            mistakes=row["bad"],
            rated=row["ok"],
        )
        for row in answers.values(
            "model_name", org=F("chat__organization_id"), usr=F("chat__user_id")
        ).annotate(
            n=Count("id"),
            bad=Count("id", filter=Q(is_mistake=True)),
            ok=Count("id", filter=Q(feedback__rating__isnull=False)),
        )
    ]
    return rows


LOCK_CLASS = rollups.LOCK_CLASS + 2  # the keys of these roll-ups
MESSAGE_LOCK = rollups.LOCK_CLASS + 3  # one per message written


def lock_messages(message_ids, using):
    """PostgreSQL: a transaction-scoped advisory lock per message, in id
    order, in one statement (module docstring)."""
    ids = sorted({pk for pk in message_ids if pk is not None})
    connection = connections[using]
    if not ids or connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, (m.id %% 2147483647)::int) "
            "FROM unnest(%s::bigint[]) AS m(id) ORDER BY m.id",
            [MESSAGE_LOCK, ids],
        )


def _lock(keys, using):
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for day, source_id in sorted(keys, key=lambda k: (k[0], k[1] or 0)):
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [LOCK_CLASS, (day.toordinal() * 7919 + (source_id or 0)) % 2_147_483_647],
            )


def refresh(keys, using=None):
    """Recompute the roll-up rows of these (day, source) keys from the raw
    rows, in the current transaction. Writers call ``rollups.written``,
    which takes the message locks first."""
    keys = {key for key in keys if key[0] is not None}
    if not keys:
        return
    using = using or router.db_for_write(FeedbackRollup)
    with transaction.atomic(using=using, savepoint=False):
        rollups._advisory(using, "pg_advisory_xact_lock_shared", rollups.CHAT_LOCK, 0)
        _lock(keys, using)
        rollups.replace_keys(FeedbackRollup, keys, _key_rows, using)


def keys_of_messages(message_ids, using):
    """The keys of these messages (as answers) and of their ratings."""
    ids = [pk for pk in message_ids if pk is not None]
    if not ids:
        return set()
    return rollups.keys_of(_messages(using).filter(pk__in=ids)) | rollups.keys_of(
        _feedback(using).filter(message_id__in=ids)
    )


def keys_of_chats(chat_pks, using=None):
    """The keys of the messages of these chats and of their ratings (the
    chats' organisation or app user changes)."""
    using = using or "default"
    chat_pks = [pk for pk in chat_pks if pk is not None]
    if not chat_pks:
        return set()
    return rollups.keys_of(_messages(using).filter(chat_id__in=chat_pks)) | rollups.keys_of(
        _feedback(using).filter(message__chat_id__in=chat_pks)
    )


def rebuild(using=None):
    """Recompute every key from the raw rows; returns the rows written."""
    using = using or router.db_for_write(FeedbackRollup)
    with transaction.atomic(using=using):
        keys = rollups.keys_of(_messages(using).filter(role="assistant")) | rollups.keys_of(
            _feedback(using).filter(rating__isnull=False)
        )
        if connections[using].vendor == "postgresql":
            with connections[using].cursor() as cursor:
                cursor.execute(
                    f"LOCK TABLE {FeedbackRollup._meta.db_table} IN SHARE ROW EXCLUSIVE MODE"  # noqa: S608
                )
        FeedbackRollup.objects.using(using).all()._raw_delete(using)
        refresh(keys, using)
        return FeedbackRollup.objects.using(using).count()


def differences(using="default"):
    """The roll-up rows that differ from a recomputation from the raw rows
    (empty when exact): [(row, stored count, recomputed count)]; changes
    nothing."""
    fields = [f.attname for f in FeedbackRollup._meta.concrete_fields if not f.primary_key]

    def snapshot():
        counted = defaultdict(int)
        for row in FeedbackRollup.objects.using(using).values_list(*fields):
            counted[row] += 1
        return counted

    stored = snapshot()
    try:
        with transaction.atomic(using=using):
            rebuild(using)
            fresh = snapshot()
            raise rollups._Undo
    except rollups._Undo:
        pass
    return sorted(
        (
            (row, stored.get(row, 0), fresh.get(row, 0))
            for row in set(stored) | set(fresh)
            if stored.get(row, 0) != fresh.get(row, 0)
        ),
        key=repr,
    )


# -- reading ------------------------------------------------------------------

# A rating's scope: the rated message's chat, the feedback's model and
# provider and source; an answer's: the chat, the message's model and
# source (no provider is stored on a message).
RATING_FIELDS = rollups.SCOPE_FIELDS
ANSWER_FIELDS = Fields("user_id", "organization_id", model="model_name")
# Whether an answer was rated, by the chat only (analytics.metrics.feedback_totals).
CHAT_FIELDS = Fields("user_id", "organization_id")


def rows_in(period, scope, kind, fields=None):
    """Roll-up rows of one ``kind`` for the period's days, in ``scope``."""
    if fields is None:
        fields = ANSWER_FIELDS if kind == "answer" else RATING_FIELDS
    return scoped(
        FeedbackRollup.objects.filter(kind=kind, day__gte=period.start, day__lte=period.end),
        scope,
        fields,
    ).order_by()
