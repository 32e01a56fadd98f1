"""Daily roll-ups of the code executions, for the quality pages (#15).

``ExecutionRollup`` holds, per local day (settings.TIME_ZONE) and source,
the counts the code execution page sums, in five kinds of rows (``Kind``),
each keyed by the day, the source, the chat's organisation and app user, the
model and provider, and by what the kind adds:

- ``day``: runs, successes, runs whose code changed (``CHANGED_CODE``);
- ``chat``: the same per chat (distinct chats, executions per chat, busiest
  chats);
- ``error``: failed executions per error type, and the smallest last line
  of the type (the example shown);
- ``error_agent``: failed executions per error type and agent (the number
  of distinct agents of a type);
- ``agent``: failed executions per failing agent and chat;
- ``slow``: the ``SLOWEST`` executions of each group by time to their last
  update (updated_at − created_at), longest first: the page's ten slowest in
  any scope are among them, since a scope takes whole groups.

So a page reads rows that grow with days × models × organisations × users
(× chats, error types, agents), never every code run of the period.

How they stay exact: a roll-up key is (day, source). Every write of a code
execution or of a chat's app user or organisation (the ``CodeExecution`` and
``Chat`` querysets and instances, the deletes Django's collector makes,
organisations deleted) recomputes the keys it touched from the raw rows,
inside the writing transaction, after the write (``refresh``). On PostgreSQL
a transaction-scoped advisory lock per key (taken in key order) serialises
the recomputations of one key; the last one to take the lock reads, in READ
COMMITTED, every change committed before it plus its own, and holds the lock
until it commits, so the last writer of a key always leaves it exact. SQLite
has one writer at a time. There are no deltas to get wrong and no merge step:
one row per key and group, complete when the writing transaction commits.

``rebuild`` (``manage.py rebuild_quality_rollups``) recomputes every key
from the raw rows, for repairs.
"""

from collections import defaultdict
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, time, timedelta

from django.core.exceptions import EmptyResultSet
from django.db import connections, models, router, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from core.pages.period import Fields, scoped

# -- error messages of failed code executions, parsed in SQL --------------------

NO_AGENT = "(no agent recorded)"
NO_ERROR = "(no error message)"

# One row per (failed execution, stored error message): the execution, the
# agent (the JSON map's key; None for a list or a bare string), the
# message's last non-blank line and its error type (analytics.metrics). A
# failed execution without any message gives one row typed NO_ERROR.
_ENTRIES_OUTER = """
SELECT execution_id, agent, last_line,
  CASE WHEN message IS NULL THEN '(no error message)'
       WHEN last_line = '' THEN '(empty message)'
       WHEN head <> '' AND {one_word} THEN substr(head, 1, 100)
       ELSE substr(last_line, 1, 100) END AS error_type
FROM (
  SELECT execution_id, agent, message, last_line, {head} AS head
  FROM (
    SELECT execution_id, agent, message, {last_line} AS last_line
    FROM ({raw}) AS raw
  ) AS lines
) AS heads
"""

ERROR_ENTRIES = {
    "sqlite": _ENTRIES_OUTER.format(
        one_word="instr(head, ' ') = 0",
        head="trim(CASE WHEN instr(last_line, ':') > 0 "
        "THEN substr(last_line, 1, instr(last_line, ':') - 1) ELSE last_line END, ' ' || char(9))",
        # After the last newline: rtrim by every character but the newline
        # leaves the text up to it.
        last_line="trim(substr(t, length(rtrim(t, replace(t, char(10), ''))) + 1), "
        "' ' || char(9, 13))",
        raw="""
      SELECT e.id AS execution_id,
        CASE WHEN json_type(e.error_messages) = 'object' THEN j.key END AS agent,
        j.value AS message,
        rtrim(CAST(j.value AS TEXT), ' ' || char(9, 10, 13)) AS t
      FROM (__IDS__) AS f
      JOIN chats_codeexecution e ON e.id = f.id
      LEFT JOIN json_each(e.error_messages) AS j""",
    ),
    "postgresql": _ENTRIES_OUTER.format(
        one_word="strpos(head, ' ') = 0",
        head="btrim(split_part(last_line, ':', 1), E' \\t')",
        last_line="btrim(reverse(split_part(reverse(t), E'\\n', 1)), E' \\t\\r')",
        raw="""
      SELECT e.id AS execution_id, j.agent, j.message, rtrim(j.message, E' \\t\\n\\r') AS t
      FROM (__IDS__) AS f
      JOIN chats_codeexecution e ON e.id = f.id
      LEFT JOIN LATERAL (
        SELECT key AS agent, value AS message FROM jsonb_each_text(
          CASE WHEN jsonb_typeof(e.error_messages) = 'object'
               THEN e.error_messages ELSE '{}'::jsonb END)
        UNION ALL
        SELECT NULL, value FROM jsonb_array_elements_text(
          CASE WHEN jsonb_typeof(e.error_messages) = 'array'
               THEN e.error_messages ELSE '[]'::jsonb END)
        UNION ALL
        SELECT NULL, e.error_messages #>> '{}'
        WHERE jsonb_typeof(e.error_messages) NOT IN ('object', 'array', 'null')
      ) AS j ON TRUE""",
    ),
}

# One row per (failed execution, agent): the agents named in failed_agents
# and the keys of error_messages; NO_AGENT when neither names one.
AGENT_ROWS = {
    "sqlite": """
SELECT f.id AS execution_id, COALESCE(a.agent, '(no agent recorded)') AS agent
FROM (__IDS__) AS f LEFT JOIN (
  SELECT e.id, CAST(j.value AS TEXT) AS agent
  FROM chats_codeexecution e, json_each(e.failed_agents) AS j
  WHERE e.id IN (__IDS__) AND json_type(e.failed_agents) = 'array' AND j.value IS NOT NULL
  UNION
  SELECT e.id, j.key FROM chats_codeexecution e, json_each(e.error_messages) AS j
  WHERE e.id IN (__IDS__) AND json_type(e.error_messages) = 'object'
) AS a ON a.id = f.id
""",
    "postgresql": """
SELECT f.id AS execution_id, COALESCE(a.agent, '(no agent recorded)') AS agent
FROM (__IDS__) AS f LEFT JOIN (
  SELECT e.id, j.agent FROM chats_codeexecution e
  CROSS JOIN LATERAL jsonb_array_elements_text(
    CASE WHEN jsonb_typeof(e.failed_agents) = 'array'
         THEN e.failed_agents ELSE '[]'::jsonb END) AS j(agent)
  WHERE e.id IN (__IDS__) AND j.agent IS NOT NULL
  UNION
  SELECT e.id, j.agent FROM chats_codeexecution e
  CROSS JOIN LATERAL jsonb_object_keys(
    CASE WHEN jsonb_typeof(e.error_messages) = 'object'
         THEN e.error_messages ELSE '{}'::jsonb END) AS j(agent)
  WHERE e.id IN (__IDS__)
) AS a ON a.id = f.id
""",
}

CHANGED_CODE = Q(initial_code__isnull=False, latest_code__isnull=False) & ~Q(
    initial_code=F("latest_code")
)


def compiled(queryset):
    """(sql, params) of a queryset on its own database."""
    return queryset.query.get_compiler(using=queryset.db).as_sql()


def vendor(queryset):
    return connections[queryset.db].vendor


def fetch(queryset, sql, params):
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def around(template, queryset, *extra):
    """``template`` with each ``__IDS__`` replaced by the SQL of
    ``queryset.values("id")``, and the parameters in order.

    The SQL is built from our own constants and Django's compiled SQL only;
    every value travels as a parameter."""
    try:
        sql, params = compiled(queryset.order_by().values("id"))
    except EmptyResultSet:  # e.g. id__in=[]: no rows
        sql, params = "SELECT NULL AS id WHERE 1 = 0", []
    count = template.count("__IDS__")
    return template.replace("__IDS__", sql), [*params] * count + list(extra)


# -- the roll-up --------------------------------------------------------------------


def _key_column(model):
    return models.ForeignKey(
        model,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )


class ExecutionRollup(models.Model):
    """Code executions per local day, source, the chat's organisation and app
    user, model and provider, in five kinds (module docstring). Written only
    by ``refresh`` and ``rebuild``."""

    class Kind(models.TextChoices):
        DAY = "day", "per day"
        CHAT = "chat", "per chat"
        ERROR = "error", "per error type"
        ERROR_AGENT = "error_agent", "per error type and agent"
        AGENT = "agent", "per failing agent and chat"
        SLOW = "slow", "the slowest executions"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    day = models.DateField()
    source = _key_column("core.Source")
    organization = _key_column("core.Organization")
    user = _key_column("core.AppUser")
    model_name = models.CharField(max_length=100, null=True, blank=True)
    model_provider = models.CharField(max_length=50, null=True, blank=True)
    chat = _key_column("chats.Chat")
    error_type = models.TextField(null=True, blank=True)
    agent = models.TextField(null=True, blank=True)
    executions = models.IntegerField(default=0)
    successes = models.IntegerField(default=0)
    retried = models.IntegerField(default=0)
    example = models.TextField(null=True, blank=True)
    # kind "slow": one of the SLOWEST executions of its group (updated_at −
    # created_at, ``run_time``), by id.
    execution_id = models.BigIntegerField(null=True, blank=True)
    run_time = models.DurationField(null=True, blank=True)

    class Meta:
        verbose_name = "code execution roll-up row"
        ordering = ["-day"]
        indexes = [
            # every figure: one kind over a period of days
            models.Index(fields=["kind", "day"], name="chats_execroll_kind_day_idx"),
            # refresh: the rows of one (day, source) key
            models.Index(fields=["day", "source"], name="chats_execroll_key_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["day", "chat", "error", "error_agent", "agent", "slow"]),
                name="chats_execroll_kind_valid",
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.day} {self.model_name}: {self.executions}"


# Where a Scope's fields are found on the roll-up (core.pages.period.Fields).
DIMENSIONS = ("source_id", "organization_id", "user_id", "model_name", "model_provider")


def zone():
    """The zone roll-up days are cut in: settings.TIME_ZONE, whatever zone a
    request activated."""
    return timezone.get_default_timezone()


def local_day(moment):
    return timezone.localtime(moment, zone()).date()


def day_bounds(day):
    start = timezone.make_aware(datetime.combine(day, time.min), zone())
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), zone())
    return start, end


def key_of(source_id, created_at):
    return (local_day(created_at), source_id)


# -- recomputing keys ---------------------------------------------------------------


def _executions():
    from .models import CodeExecution  # noqa: PLC0415 (chats.models imports this module)

    return CodeExecution._base_manager.order_by()


def _in_key(queryset, key):
    day, source_id = key
    start, end = day_bounds(day)
    if source_id is None:
        queryset = queryset.filter(source__isnull=True)
    else:
        queryset = queryset.filter(source_id=source_id)
    return queryset.filter(created_at__gte=start, created_at__lt=end)


_GROUP = """
SELECT {select}, e.source_id, c.organization_id, c.user_id, e.model_name, e.model_provider,
  {measures}
FROM ({rows}) AS x JOIN chats_codeexecution e ON e.id = x.execution_id
LEFT JOIN chats_chat c ON c.id = e.chat_id
GROUP BY {select}, e.source_id, c.organization_id, c.user_id, e.model_name, e.model_provider
"""


def _key_rows(key, using):
    """The roll-up rows (unsaved) of one (day, source) key, from the raw rows."""
    day = key[0]
    runs = _in_key(_executions().using(using), key)
    rows, per_day = [], defaultdict(lambda: [0, 0, 0])
    grouped = runs.values(
        "source_id",
        "model_name",
        "model_provider",
        "chat_id",
        org=F("chat__organization_id"),
        usr=F("chat__user_id"),
    ).annotate(
        n=Count("id"),
        ok=Count("id", filter=Q(is_successful=True)),
        changed=Count("id", filter=CHANGED_CODE),
    )
    for row in grouped:
        dims = {
            "source_id": row["source_id"],
            "organization_id": row["org"],
            "user_id": row["usr"],
            "model_name": row["model_name"],
            "model_provider": row["model_provider"],
        }
        rows.append(
            ExecutionRollup(
                kind="chat",
                day=day,
                chat_id=row["chat_id"],
                executions=row["n"],
                successes=row["ok"],
                retried=row["changed"],
                **dims,
            )
        )
        totals = per_day[tuple(dims.items())]
        totals[0] += row["n"]
        totals[1] += row["ok"]
        totals[2] += row["changed"]
    for dims, (n, ok, changed) in per_day.items():
        rows.append(
            ExecutionRollup(
                kind="day", day=day, executions=n, successes=ok, retried=changed, **dict(dims)
            )
        )
    rows += _slow_rows(day, runs)
    if any(r.executions > r.successes for r in rows if r.kind == "day"):
        failing = runs.filter(is_successful=False)
        rows += _failure_rows(day, failing)
    return rows


SLOWEST = 10  # per group: the page lists ten


def _slow_rows(day, runs):
    from django.db.models import DurationField, ExpressionWrapper, Window  # noqa: PLC0415
    from django.db.models.functions import RowNumber  # noqa: PLC0415

    run_time = ExpressionWrapper(F("updated_at") - F("created_at"), output_field=DurationField())
    ranked = (
        runs.filter(updated_at__isnull=False, updated_at__gt=F("created_at"))
        .annotate(
            took=run_time,
            rank=Window(
                RowNumber(),
                partition_by=[
                    F("source_id"),
                    F("chat__organization_id"),
                    F("chat__user_id"),
                    F("model_name"),
                    F("model_provider"),
                ],
                order_by=[run_time.desc(), F("id").desc()],
            ),
        )
        .filter(rank__lte=SLOWEST)
        .values_list(
            "id",
            "took",
            "source_id",
            "chat__organization_id",
            "chat__user_id",
            "model_name",
            "model_provider",
        )
    )
    return [
        ExecutionRollup(
            kind="slow",
            day=day,
            execution_id=pk,
            run_time=took,
            source_id=source_id,
            organization_id=org,
            user_id=usr,
            model_name=model,
            model_provider=provider,
        )
        for pk, took, source_id, org, usr, model, provider in ranked
    ]


def _failure_rows(day, failing):
    entries = ERROR_ENTRIES[vendor(failing)]
    agents = AGENT_ROWS[vendor(failing)]
    rows = []
    for kind, template, select, measures in (
        (
            "error",
            entries,
            "x.error_type",
            "COUNT(DISTINCT x.execution_id), MIN(x.last_line)",
        ),
        (
            "error_agent",
            f"SELECT * FROM ({entries}) AS ea WHERE ea.agent IS NOT NULL",  # noqa: S608 (constants)
            "x.error_type, x.agent",
            "COUNT(DISTINCT x.execution_id)",
        ),
        ("agent", agents, "x.agent, e.chat_id", "COUNT(DISTINCT x.execution_id)"),
    ):
        sql, params = around(
            _GROUP.format(select=select, measures=measures, rows=template), failing
        )
        for found in fetch(failing, sql, params):
            width = len(select.split(","))
            group, (source_id, org, usr, model, provider, n, *example) = (
                found[:width],
                found[width:],
            )
            row = ExecutionRollup(
                kind=kind,
                day=day,
                source_id=source_id,
                organization_id=org,
                user_id=usr,
                model_name=model,
                model_provider=provider,
                executions=n,
                example=example[0] if example else None,
            )
            if kind == "error":
                row.error_type = group[0]
            elif kind == "error_agent":
                row.error_type, row.agent = group
            else:
                row.agent, row.chat_id = group
            rows.append(row)
    return rows


def _lock(keys, using):
    """PostgreSQL: one transaction-scoped advisory lock per key, in key order."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for day, source_id in sorted(keys, key=lambda k: (k[0], k[1] or 0)):
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [LOCK_CLASS, (day.toordinal() * 7919 + (source_id or 0)) % 2_147_483_647],
            )


LOCK_CLASS = 15_001  # the advisory lock space of these roll-ups


def _advisory(using, function, *args):
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s, %s)", list(args))  # noqa: S608 (our names)


def change_chats(using="default"):
    """Before a write that may change chats' app users or organisations:
    wait for the recomputations under way and hold them off until this
    transaction ends (one lock for all chats: such changes are rare). A
    recomputation (``refresh``) holds the same lock shared from before it
    reads the chats until it commits, so it reads a chat's app user and
    organisation either before the change, and then the change, which
    recomputes the keys of the chat's executions once it holds the lock,
    sees its executions committed; or after the change is committed."""
    _advisory(using, "pg_advisory_xact_lock", CHAT_LOCK, 0)


CHAT_LOCK = LOCK_CLASS + 1


class _Touched:
    """What writes touched: execution keys, feedback keys (chats.feedback_rollups)
    and the messages written (whose locks come first)."""

    def __init__(self, using):
        self.using = using
        self.executions = set()
        self.feedback = set()
        self.messages = set()

    def add(self, executions=(), feedback=(), messages=()):
        self.executions.update(executions)
        self.feedback.update(feedback)
        self.messages.update(pk for pk in messages if pk is not None)

    def __bool__(self):
        return bool(self.executions or self.feedback or self.messages)


# What writes inside a ``deferred`` block touched, recomputed when it ends.
_DEFERRED = ContextVar("chats_rollup_deferred", default=None)


@contextmanager
def deferred(using="default"):
    """Recompute the keys that writes inside the block touch once, when it
    ends: a writer of several statements (an upsert's inserts and updates)
    takes its key locks once, after all its row locks, so two such writers
    cannot wait for each other in turn. Costs nothing when nothing in the
    block touches a roll-up.

    Inside a transaction the recomputation is part of it; a block that
    fails there leaves it to the transaction's rollback. In autocommit the
    writes are committed one by one, and recomputed after them even if the
    block fails (a recomputation after a commit reads it)."""
    if _DEFERRED.get() is not None:
        yield
        return
    touched = _Touched(using)
    token = _DEFERRED.set(touched)
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        _DEFERRED.reset(token)
        if touched and (not failed or not connections[using].in_atomic_block):
            _recompute(touched)


def written(using, executions=(), feedback=(), messages=()):
    """After a write, in its transaction: recompute the execution keys and
    the feedback keys (chats.feedback_rollups) it touched, and those of the
    messages it wrote (their answers and ratings), the messages locked first
    (chats.feedback_rollups docstring: the lock order)."""
    using = using or router.db_for_write(ExecutionRollup)
    waiting = _DEFERRED.get()
    if waiting is not None and waiting.using == using:
        waiting.add(executions, feedback, messages)
        return
    touched = _Touched(using)
    touched.add(executions, feedback, messages)
    if touched:
        _recompute(touched)


def _recompute(touched):
    from . import feedback_rollups  # noqa: PLC0415 (it imports this module)

    using = touched.using
    with transaction.atomic(using=using, savepoint=False):
        feedback = set(touched.feedback)
        if touched.messages:
            feedback_rollups.lock_messages(touched.messages, using)
            feedback |= feedback_rollups.keys_of_messages(touched.messages, using)
        _refresh(touched.executions, using)
        feedback_rollups.refresh(feedback, using)


def refresh(keys, using=None):
    """Recompute the execution roll-up rows of these (day, source) keys
    (``written`` for writers that touch both roll-ups)."""
    written(using, executions=keys)


def _refresh(keys, using=None):
    """Recompute the roll-up rows of these (day, source) keys from the raw
    rows, in the current transaction (module docstring)."""
    keys = {key for key in keys if key[0] is not None}
    if not keys:
        return
    using = using or router.db_for_write(ExecutionRollup)
    with transaction.atomic(using=using):
        _advisory(using, "pg_advisory_xact_lock_shared", CHAT_LOCK, 0)
        _lock(keys, using)
        replace_keys(ExecutionRollup, keys, _key_rows, using)


def replace_keys(model, keys, key_rows, using):
    """Delete a roll-up's rows of these (day, source) keys and write the
    rows ``key_rows(key, using)`` computes for each, keys in order: the
    recomputation both quality roll-ups share (their locks already taken)."""
    rows = []
    for key in sorted(keys, key=lambda k: (k[0], k[1] or 0)):
        day, source_id = key
        stale = model.objects.using(using).filter(day=day)
        stale = (
            stale.filter(source__isnull=True)
            if source_id is None
            else stale.filter(source_id=source_id)
        )
        stale._raw_delete(using)
        rows += key_rows(key, using)
    model.objects.using(using).bulk_create(rows, batch_size=1000)


def keys_of(queryset):
    """The (day, source) keys of the code executions of a queryset."""
    from django.db.models.functions import TruncDate  # noqa: PLC0415

    return {
        (day, source_id)
        for source_id, day in queryset.order_by()
        .annotate(rollup_day=TruncDate("created_at", tzinfo=zone()))
        .values_list("source_id", "rollup_day")
        .distinct()
    }


def keys_of_chats(chat_pks, using=None):
    """The keys of the code executions of these chats (their organisation
    or app user changes)."""
    chat_pks = [pk for pk in chat_pks if pk is not None]
    if not chat_pks:
        return set()
    return keys_of(_executions().using(using or "default").filter(chat_id__in=chat_pks))


def chats_written(chat_pks, using):
    """After a change of these chats' app users or organisations: recompute
    the keys of their executions, messages and ratings."""
    from . import feedback_rollups  # noqa: PLC0415

    written(
        using,
        keys_of_chats(chat_pks, using),
        feedback_rollups.keys_of_chats(chat_pks, using),
    )


def message_ids(queryset):
    """The messages of these executions or ratings (their ``message_id``)."""
    return set(queryset.order_by().values_list("message_id", flat=True).distinct()) - {None}


def rebuild(using=None):
    """Recompute every key from the raw rows; returns the rows written."""
    using = using or router.db_for_write(ExecutionRollup)
    with transaction.atomic(using=using):
        keys = keys_of(_executions().using(using))
        if connections[using].vendor == "postgresql":
            with connections[using].cursor() as cursor:
                cursor.execute(
                    f"LOCK TABLE {ExecutionRollup._meta.db_table} IN SHARE ROW EXCLUSIVE MODE"  # noqa: S608
                )
        ExecutionRollup.objects.using(using).all()._raw_delete(using)
        _refresh(keys, using)
        return ExecutionRollup.objects.using(using).count()


# -- the collector's deletes ------------------------------------------------------------

# What the collector is about to delete or set NULL (code executions,
# messages, ratings, an organisation's chats): gathered in pre_delete. The
# collector deletes one model's rows after another (ratings and executions
# before their messages) and sends post_delete after each model's rows: the
# keys are recomputed at the first post_delete of each model, so the last
# recomputation of a pass sees all of it. A pre_delete after a post_delete
# starts a new pass.
_PENDING = ContextVar("chats_rollup_pending", default=None)


class _Pass:
    def __init__(self):
        self.touched = None
        self.last_deleted = None


def _current_pass():
    current = _PENDING.get()
    if current is None:
        current = _Pass()
        _PENDING.set(current)
    return current


def pend(keys=(), using="default", feedback=(), messages=()):
    current = _current_pass()
    if current.touched is None or current.last_deleted is not None:
        current.touched = _Touched(using)
        current.last_deleted = None
    current.touched.add(keys, feedback, messages)


def flush(using=None, sender=None):
    current = _PENDING.get()
    if current is None or current.touched is None or current.last_deleted is sender:
        return
    current.last_deleted = sender
    if current.touched:
        touched = current.touched
        if using is not None:
            touched.using = using
        written(touched.using, touched.executions, touched.feedback, touched.messages)


def differences(using="default"):
    """The roll-up rows that differ from a recomputation from the raw rows
    (empty when exact): [(row, stored count, recomputed count)]. For tests
    and for ``rebuild_quality_rollups --check``; changes nothing."""
    fields = [f.attname for f in ExecutionRollup._meta.concrete_fields if not f.primary_key]

    def snapshot():
        counted = defaultdict(int)
        for row in ExecutionRollup.objects.using(using).values_list(*fields):
            counted[row] += 1
        return counted

    stored = snapshot()
    try:
        with transaction.atomic(using=using):
            rebuild(using)
            fresh = snapshot()
            raise _Undo
    except _Undo:
        pass
    return sorted(
        (
            (row, stored.get(row, 0), fresh.get(row, 0))
            for row in set(stored) | set(fresh)
            if stored.get(row, 0) != fresh.get(row, 0)
        ),
        key=repr,
    )


class _Undo(Exception):  # noqa: N818 (control flow, never escapes)
    pass


# -- reading ------------------------------------------------------------------

# The roll-up's columns for a page's scope (core.pages.period.Scope).
SCOPE_FIELDS = Fields("user_id", "organization_id", model="model_name", provider="model_provider")


def rows_in(period, scope, kind):
    """Roll-up rows of one ``kind`` for the period's days, in ``scope``: what
    the quality pages and the models page sum."""
    return scoped(
        ExecutionRollup.objects.filter(kind=kind, day__gte=period.start, day__lte=period.end),
        scope,
        SCOPE_FIELDS,
    ).order_by()
