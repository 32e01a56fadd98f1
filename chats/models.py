"""Conversations and everything attached to a message."""

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from core.models import AppUser, Imported, Organization
from core.pages.period import Fields, PeriodQuerySet

# -- the query vocabulary of chats' tables ----------------------------------------
#
# ``in_period(period)`` (rows created in a page's period) and ``scoped(scope)``
# (the scope's fields where this table has them, ``scope_fields``) come from
# core.pages.period.PeriodQuerySet: ``Message.objects.assistant().in_period(p).scoped(s)``.


# A chat's app user and organisation are keys of the code execution roll-ups
# (chats.rollups): a write that may change them recomputes its chats' keys.
CHAT_ROLLUP_FIELDS = {"user", "user_id", "organization", "organization_id"}


class ChatQuerySet(PeriodQuerySet):
    scope_fields = Fields("user_id", "organization_id")

    def update(self, **kwargs):
        if not CHAT_ROLLUP_FIELDS & set(kwargs):
            return super().update(**kwargs)
        with transaction.atomic(using=self.db):
            rollups.change_chats(self.db)
            pks = list(self.values_list("pk", flat=True))
            done = super().update(**kwargs)
            # After the lock: the executions of writers under way are visible.
            rollups.chats_written(pks, self.db)
        return done

    update.alters_data = True

    def bulk_update(self, objs, fields, *args, **kwargs):
        if not CHAT_ROLLUP_FIELDS & set(fields):
            return super().bulk_update(objs, fields, *args, **kwargs)
        objs = list(objs)
        with transaction.atomic(using=self.db):
            rollups.change_chats(self.db)
            done = super().bulk_update(objs, fields, *args, **kwargs)
            rollups.chats_written([obj.pk for obj in objs], self.db)
        return done

    bulk_update.alters_data = True


class RollupQuerySet(PeriodQuerySet):
    """Messages and ratings: every write that may move a row in the feedback
    roll-ups (chats.feedback_rollups) recomputes the keys it touched, in the
    writing transaction; deletes do through the collector's signals
    (chats.signals)."""

    # The fields whose change may move a row in the roll-ups.
    rollup_fields = frozenset()

    def _touched(self, rows):
        """(feedback roll-up keys, message ids) of these stored rows."""
        raise NotImplementedError

    def _touched_new(self, objs):
        """(keys, message ids) of rows just created."""
        raise NotImplementedError

    def _all(self):
        """Every row of the table, unfiltered, with this vocabulary."""
        return type(self)(self.model, using=self.db)

    def _lock_in_order(self):
        """The pks of these rows, locked in pk order (so two writers of the
        same rows cannot each hold one the other waits for)."""
        return list(
            self.order_by("pk").select_for_update(of=("self",)).values_list("pk", flat=True)
        )

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        with transaction.atomic(using=self.db, savepoint=False):
            created = super().bulk_create(objs, *args, **kwargs)
            keys, messages = self._touched_new(objs)
            rollups.written(self.db, feedback=keys, messages=messages)
        return created

    bulk_create.alters_data = True

    def _rewrite(self, pks, write):
        rows = self._all().filter(pk__in=pks)
        keys, messages = self._touched(rows)
        done = write()
        after, also = self._touched(rows)
        rollups.written(self.db, feedback=keys | after, messages=messages | also)
        return done

    def bulk_update(self, objs, fields, *args, **kwargs):
        if not self.rollup_fields & set(fields):
            return super().bulk_update(objs, fields, *args, **kwargs)
        objs = list(objs)
        with transaction.atomic(using=self.db, savepoint=False):
            pks = self._all().filter(pk__in=[o.pk for o in objs])._lock_in_order()
            return self._rewrite(
                pks, lambda: super(RollupQuerySet, self).bulk_update(objs, fields, *args, **kwargs)
            )

    bulk_update.alters_data = True

    def update(self, **kwargs):
        if not self.rollup_fields & set(kwargs):
            return super().update(**kwargs)
        with transaction.atomic(using=self.db, savepoint=False):
            pks = self._lock_in_order()
            # Exactly the rows locked (not rows committed since).
            return self._rewrite(
                pks,
                lambda: models.QuerySet.update(self._all().filter(pk__in=pks), **kwargs),
            )

    update.alters_data = True

    def delete(self):
        """Deleted through the collector (whose signals recompute the keys,
        chats.signals), the rows locked in pk order first."""
        with transaction.atomic(using=self.db, savepoint=False):
            pks = self._lock_in_order()
            return models.QuerySet.delete(self._all().filter(pk__in=pks))

    delete.alters_data = True
    delete.queryset_only = True


class MessageQuerySet(RollupQuerySet):
    # No provider is stored on a message.
    scope_fields = Fields("chat__user_id", "chat__organization_id", model="model_name")
    # The chat's app user and organisation only (activity: a message's model
    # says nothing about who was active).
    chat_fields = Fields("chat__user_id", "chat__organization_id")
    rollup_fields = frozenset(
        {
            "chat",
            "chat_id",
            "role",
            "created_at",
            "source",
            "source_id",
            "model_name",
            "agent_type",
            "is_mistake",
        }
    )

    def _touched(self, rows):
        return rollups.keys_of(rows), set(rows.values_list("pk", flat=True))

    def _touched_new(self, objs):
        # Nothing refers to a message before it is committed: no locks.
        return {rollups.key_of(o.source_id, o.created_at) for o in objs}, set()

    def assistant(self):
        return self.filter(role=Message.Role.ASSISTANT)

    def from_users(self):
        """Messages app users wrote (role "user")."""
        return self.filter(role=Message.Role.USER)


class MessageFeedbackQuerySet(RollupQuerySet):
    # Anchored on when the feedback was given.
    scope_fields = Fields(
        "message__chat__user_id",
        "message__chat__organization_id",
        model="model_name",
        provider="model_provider",
    )
    rollup_fields = frozenset(
        {
            "message",
            "message_id",
            "rating",
            "model_name",
            "model_provider",
            "temperature",
            "max_tokens",
            "created_at",
            "source",
            "source_id",
        }
    )

    def _touched(self, rows):
        return rollups.keys_of(rows), rollups.message_ids(rows)

    def _touched_new(self, objs):
        return (
            {rollups.key_of(o.source_id, o.created_at) for o in objs},
            {o.message_id for o in objs},
        )

    def rated(self):
        """Feedback with a rating (feedback without one says nothing)."""
        return self.filter(rating__isnull=False)


class CodeExecutionQuerySet(PeriodQuerySet):
    """Every write recomputes the roll-up keys it touched (chats.rollups),
    in the writing transaction; deletes do through the collector's signals
    (chats.signals)."""

    scope_fields = Fields(
        "chat__user_id", "chat__organization_id", model="model_name", provider="model_provider"
    )

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        with transaction.atomic(using=self.db):
            created = super().bulk_create(objs, *args, **kwargs)
            rollups.written(
                self.db,
                {rollups.key_of(o.source_id, o.created_at) for o in objs},
                messages=[o.message_id for o in objs],
            )
        return created

    bulk_create.alters_data = True

    def _lock_in_order(self):
        """The pks of these rows, locked in pk order (so two writers of the
        same rows cannot each hold one the other waits for)."""
        return list(
            self.order_by("pk").select_for_update(of=("self",)).values_list("pk", flat=True)
        )

    def bulk_update(self, objs, fields, *args, **kwargs):
        objs = list(objs)
        with transaction.atomic(using=self.db):
            self.model._base_manager.using(self.db).filter(
                pk__in=[o.pk for o in objs]
            )._lock_in_order()
            rows = self.filter(pk__in=[o.pk for o in objs])
            before, messages = rollups.keys_of(rows), rollups.message_ids(rows)
            done = super().bulk_update(objs, fields, *args, **kwargs)
            after = rollups.keys_of(rows)
            rollups.written(self.db, before | after, messages=messages | rollups.message_ids(rows))
        return done

    bulk_update.alters_data = True

    def update(self, **kwargs):
        with transaction.atomic(using=self.db):
            pks = self._lock_in_order()
            rows = self.model._base_manager.using(self.db).filter(pk__in=pks)
            before, messages = rollups.keys_of(rows), rollups.message_ids(rows)
            # Exactly the rows locked (not rows committed since): their keys.
            done = models.QuerySet.update(rows, **kwargs)
            after = rollups.keys_of(rows)
            rollups.written(self.db, before | after, messages=messages | rollups.message_ids(rows))
        return done

    update.alters_data = True

    def delete(self):
        """Deleted through the collector (whose signals recompute the keys,
        chats.signals), the rows locked in pk order first."""
        with transaction.atomic(using=self.db):
            pks = self._lock_in_order()
            return models.QuerySet.delete(
                self.model._base_manager.using(self.db).filter(pk__in=pks)
            )

    delete.alters_data = True
    delete.queryset_only = True


class FeedbackRolledUp(models.Model):
    """A model whose rows the feedback roll-ups count (its manager's queryset
    a ``RollupQuerySet``): ``save`` recomputes the keys a change touched."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        """Saved; a change that may move it in the feedback roll-ups
        (chats.feedback_rollups) recomputes the keys it touched."""
        fields = kwargs.get("update_fields")
        manager = type(self).objects
        if fields is not None and not manager._queryset_class.rollup_fields & set(fields):
            return super().save(*args, **kwargs)
        using = kwargs.get("using") or self._state.db or "default"
        queryset = manager.using(using)
        with transaction.atomic(using=using, savepoint=False):
            keys, messages = set(), set()
            if not self._state.adding and self.pk is not None:
                keys, messages = queryset._touched(queryset.filter(pk=self.pk))
            super().save(*args, **kwargs)
            after, also = queryset._touched(queryset.filter(pk=self.pk))
            rollups.written(using, feedback=keys | after, messages=messages | also)

    save.alters_data = True


class Chat(Imported):
    """A conversation: auto-analyst ``chats``, ds-ml-agent ``chatbot_sessions``,
    text-to-sql ``chat_sessions``, ai-chat-v2 ``sessions``.

    ``user`` is null for an anonymous chat.
    """

    user = models.ForeignKey(
        AppUser, on_delete=models.CASCADE, null=True, blank=True, related_name="chats"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.SET_NULL, null=True, blank=True, related_name="chats"
    )
    title = models.CharField(max_length=255, default="New Chat")
    starred = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    message_count = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(null=True, blank=True)

    objects = ChatQuerySet.as_manager()

    class Meta(Imported.Meta):
        base_manager_name = "objects"
        ordering = ["-created_at"]
        indexes = [
            # chat changelist (newest first) and the anonymous-chat purge
            models.Index(fields=["-created_at"], name="chats_chat_created_idx"),
            # an app user's chats, newest first (user page)
            models.Index(fields=["user", "-created_at"], name="chats_chat_user_created_idx"),
            # an organisation's chats (ds-ml-agent org_id index)
            models.Index(fields=["organization", "-created_at"], name="chats_chat_org_created_idx"),
        ]

    def __str__(self):
        return self.title

    def save(self, *args, **kwargs):
        """Saved; a change of app user or organisation recomputes the
        code execution roll-ups of the chat (chats.rollups)."""
        fields = kwargs.get("update_fields")
        if self._state.adding or (fields is not None and not CHAT_ROLLUP_FIELDS & set(fields)):
            return super().save(*args, **kwargs)
        using = kwargs.get("using") or self._state.db or "default"
        with transaction.atomic(using=using):
            rollups.change_chats(using)
            old = (
                type(self)
                ._base_manager.using(using)
                .filter(pk=self.pk)
                .values_list("user_id", "organization_id")
                .first()
            )
            super().save(*args, **kwargs)
            if old is not None and old != (self.user_id, self.organization_id):
                rollups.chats_written([self.pk], using)

    save.alters_data = True


class Message(FeedbackRolledUp, Imported):
    """One message of a chat, whichever application wrote it.

    auto-analyst ``messages`` (sender 'ai' → assistant), text-to-sql
    ``chat_messages`` (message_type), ai-chat-v2 ``messages`` (AI metadata and
    the mistake flag), ds-ml-agent ``chatbot_conversation_states`` (one turn →
    a user message and, when answered, an assistant message).
    """

    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"
        SYSTEM = "system", "System"

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=20, choices=Role.choices)
    content = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    sequence_number = models.IntegerField(null=True, blank=True)
    # ds-ml-agent
    turn_number = models.IntegerField(null=True, blank=True)
    agent_type = models.CharField(max_length=100, null=True, blank=True)
    context_data = models.JSONField(null=True, blank=True)
    # text-to-sql
    query_id = models.CharField(max_length=100, null=True, blank=True)
    sql_query = models.TextField(null=True, blank=True)
    query_result = models.JSONField(null=True, blank=True)
    execution_time = models.FloatField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    # ai-chat-v2
    model_name = models.CharField(max_length=100, null=True, blank=True)
    prompt_tokens = models.IntegerField(null=True, blank=True)
    completion_tokens = models.IntegerField(null=True, blank=True)
    persona = models.CharField(max_length=100, null=True, blank=True)
    tone = models.CharField(max_length=100, null=True, blank=True)
    behavior = models.CharField(max_length=100, null=True, blank=True)
    context_type = models.CharField(max_length=100, null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    signal_strength = models.FloatField(null=True, blank=True)
    context_clarity = models.BooleanField(null=True, blank=True)
    needs_knowledge = models.BooleanField(default=False)
    # The staff mistake flag (ai-chat-v2's, set by reviewers here for any app).
    is_mistake = models.BooleanField(default=False)
    mistake_note = models.TextField(null=True, blank=True)
    mistake_flagged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    mistake_flagged_at = models.DateTimeField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta(Imported.Meta):
        ordering = ["created_at", "id"]
        permissions = [("flag_mistake", "Can flag assistant messages as mistakes")]
        constraints = [
            *Imported.Meta.constraints,
            models.CheckConstraint(
                condition=models.Q(role__in=["user", "assistant", "system"]),
                name="chats_message_role_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(confidence__isnull=True)
                | models.Q(confidence__gte=0, confidence__lte=1),
                name="chats_message_confidence_0_1",
            ),
            models.CheckConstraint(
                condition=models.Q(signal_strength__isnull=True)
                | models.Q(signal_strength__gte=0, signal_strength__lte=1),
                name="chats_message_signal_strength_0_1",
            ),
        ]
        indexes = [
            # a chat's transcript in order (seed: messages(chat_id, timestamp DESC))
            models.Index(fields=["chat", "-created_at"], name="chats_msg_chat_created_idx"),
            # message changelist newest first, and messages per day
            models.Index(fields=["-created_at"], name="chats_msg_created_idx"),
            # text-to-sql: query_analytics ↔ chat_messages by query_id
            models.Index(fields=["query_id"], name="chats_msg_query_id_idx"),
            # the mistake queue and "has mistakes" filter
            models.Index(
                fields=["chat"],
                condition=models.Q(is_mistake=True),
                name="chats_msg_mistake_idx",
            ),
        ]

    def __str__(self):
        text = self.content if len(self.content) <= 60 else self.content[:57] + "…"
        return f"{self.get_role_display()}: {text}"


class MessageFeedback(FeedbackRolledUp, Imported):
    """auto-analyst ``message_feedback``: one rating per message."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    rating = models.SmallIntegerField(null=True, blank=True)
    model_name = models.CharField(max_length=100, null=True, blank=True)
    model_provider = models.CharField(max_length=50, null=True, blank=True)
    temperature = models.FloatField(null=True, blank=True)
    max_tokens = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(null=True, blank=True)

    objects = MessageFeedbackQuerySet.as_manager()

    class Meta(Imported.Meta):
        verbose_name = "message feedback"
        verbose_name_plural = "message feedback"
        ordering = ["-created_at"]
        constraints = [
            *Imported.Meta.constraints,
            models.CheckConstraint(
                condition=models.Q(rating__isnull=True) | models.Q(rating__gte=1, rating__lte=5),
                name="chats_feedback_rating_1_5",
                violation_error_message="Rating must be between 1 and 5.",
            ),
        ]
        indexes = [
            # feedback queue: lowest rating first, newest first
            models.Index(fields=["rating", "-created_at"], name="chats_feedback_rating_idx"),
            models.Index(fields=["-created_at"], name="chats_feedback_created_idx"),
        ]

    def __str__(self):
        return f"{self.rating or '–'}★ on message {self.message_id}"


class CodeExecution(Imported):
    """auto-analyst ``code_executions``: generated code and how its run went."""

    message = models.ForeignKey(
        Message,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="code_executions",
    )
    chat = models.ForeignKey(
        Chat, on_delete=models.CASCADE, null=True, blank=True, related_name="code_executions"
    )
    user = models.ForeignKey(
        AppUser,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="code_executions",
    )
    initial_code = models.TextField(null=True, blank=True)
    latest_code = models.TextField(null=True, blank=True)
    is_successful = models.BooleanField(default=False)
    output = models.TextField(null=True, blank=True)
    model_provider = models.CharField(max_length=50, null=True, blank=True)
    model_name = models.CharField(max_length=100, null=True, blank=True)
    failed_agents = models.JSONField(null=True, blank=True)
    error_messages = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(null=True, blank=True)

    objects = CodeExecutionQuerySet.as_manager()

    class Meta(Imported.Meta):
        # Django's own writes (save's UPDATE, related managers) through the
        # manager that keeps the roll-ups.
        base_manager_name = "objects"
        ordering = ["-created_at"]
        indexes = [
            # code-execution changelist and success rate per day
            models.Index(fields=["-created_at"], name="chats_codeexec_created_idx"),
        ]

    def __str__(self):
        return f"execution {self.pk} ({'ok' if self.is_successful else 'failed'})"

    def save(self, *args, **kwargs):
        """Saved, and the roll-up keys of its old and new day recomputed."""
        using = kwargs.get("using") or self._state.db or "default"
        with transaction.atomic(using=using):
            keys, messages = set(), {self.message_id}
            if not self._state.adding and self.pk is not None:
                old = type(self)._base_manager.using(using).filter(pk=self.pk)
                keys, messages = rollups.keys_of(old), messages | rollups.message_ids(old)
            super().save(*args, **kwargs)
            keys.add(rollups.key_of(self.source_id, self.created_at))
            rollups.written(using, keys, messages=messages)

    save.alters_data = True


class UploadedFile(Imported):
    """ds-ml-agent ``chatbot_uploaded_files``."""

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="uploaded_files")
    filename = models.CharField(max_length=255)
    file_path = models.CharField(max_length=500)
    file_type = models.CharField(max_length=50, null=True, blank=True)
    file_size = models.BigIntegerField(null=True, blank=True)
    upload_timestamp = models.DateTimeField(default=timezone.now)
    is_processed = models.BooleanField(default=False)
    file_metadata = models.JSONField(null=True, blank=True)

    class Meta(Imported.Meta):
        ordering = ["-upload_timestamp"]
        indexes = [
            # uploaded-file changelist, newest first
            models.Index(fields=["-upload_timestamp"], name="chats_file_uploaded_idx"),
        ]

    def __str__(self):
        return self.filename


# Review queues (#19) -------------------------------------------------------


class MistakeCategory(models.Model):
    """One kind of mistake an analyst application makes (Admins edit the list)."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "name"]
        verbose_name_plural = "mistake categories"

    def __str__(self):
        return self.name


class ReviewQueue(models.Model):
    """A named rule over the chats' signals; matching assistant messages
    become its items (chats.queues fills it as rows arrive and on demand)."""

    class Rule(models.TextChoices):
        LOW_RATING = "low_rating", "Rating at most N"
        FAILED_CODE = "failed_code", "A failed code execution"
        SQL_ERROR = "sql_error", "A text-to-SQL error"
        AI_FLAG = "ai_flag", "AI metadata: flagged a mistake or low confidence"
        CHAT_COST = "chat_cost", "The chat's cost above X"
        SAMPLE = "sample", "A random sample of P % per model and source"

    class Assignment(models.TextChoices):
        CLAIM = "claim", "Reviewers claim the next item"
        ROUND_ROBIN = "round_robin", "Round robin over the queue's reviewers"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    rule = models.CharField(max_length=20, choices=Rule.choices)
    max_rating = models.SmallIntegerField(
        null=True, blank=True, help_text="Rating at most N: N (1–5)."
    )
    confidence_below = models.FloatField(
        null=True,
        blank=True,
        help_text="AI metadata: also answers whose confidence is below this (0–1).",
    )
    min_chat_cost = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Chat cost: the chat's ledger spend above this amount.",
    )
    sample_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Random sample: P % of each model's and source's answers.",
    )
    reviewers_per_item = models.PositiveSmallIntegerField(
        default=1, choices=[(1, "One reviewer"), (2, "Two reviewers")]
    )
    assignment = models.CharField(
        max_length=20, choices=Assignment.choices, default=Assignment.CLAIM
    )
    reviewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="review_queues",
        help_text="Round robin: the reviewers who take turns.",
    )
    round_robin_next = models.PositiveIntegerField(default=0, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_rating__isnull=True)
                | models.Q(max_rating__gte=1, max_rating__lte=5),
                name="chats_queue_max_rating_1_5",
            ),
            models.CheckConstraint(
                condition=models.Q(confidence_below__isnull=True)
                | models.Q(confidence_below__gte=0, confidence_below__lte=1),
                name="chats_queue_confidence_0_1",
            ),
            models.CheckConstraint(
                condition=models.Q(sample_percent__isnull=True)
                | models.Q(sample_percent__gte=0, sample_percent__lte=100),
                name="chats_queue_sample_0_100",
            ),
            models.CheckConstraint(
                condition=models.Q(reviewers_per_item__in=[1, 2]),
                name="chats_queue_reviewers_1_2",
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        needs = {
            self.Rule.LOW_RATING: "max_rating",
            self.Rule.CHAT_COST: "min_chat_cost",
            self.Rule.SAMPLE: "sample_percent",
        }
        field = needs.get(self.rule)
        if field and getattr(self, field) is None:
            raise ValidationError({field: "This rule needs a value here."})


class ReviewItem(models.Model):
    """An assistant message in a queue, with what became of it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"

    class Verdict(models.TextChoices):
        CORRECT = "correct", "Correct"
        PARTLY = "partly", "Partly correct"
        WRONG = "wrong", "Wrong"

    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="items")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="review_items")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=200, blank=True)
    # The answer's model and source when it entered the queue (quality per model).
    model_name = models.CharField(max_length=100, blank=True)
    source = models.ForeignKey(
        "core.Source", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The final verdict: the reviewers' when they agree, an Admin's when settled.
    verdict = models.CharField(max_length=10, choices=Verdict.choices, null=True, blank=True)
    settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    settled_at = models.DateTimeField(null=True, blank=True)
    settle_note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        permissions = [
            ("review_items", "Can review items of review queues"),
            ("view_review_results", "Can read review results, agreement and exports"),
            ("settle_disagreement", "Can settle reviewers' disagreements"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["queue", "message"], name="chats_item_once_per_queue"),
        ]
        indexes = [
            models.Index(fields=["queue", "status", "id"], name="chats_item_queue_status_idx"),
        ]

    def __str__(self):
        return f"{self.queue} · message {self.message_id}"


class Review(models.Model):
    """One reviewer's work on an item: assigned or claimed, then completed."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviews"
    )
    verdict = models.CharField(
        max_length=10, choices=ReviewItem.Verdict.choices, null=True, blank=True
    )
    categories = models.ManyToManyField(MistakeCategory, blank=True, related_name="reviews")
    corrected_answer = models.TextField(blank=True)
    note = models.TextField(blank=True)
    assigned_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "reviewer"], name="chats_review_once_each"),
            models.CheckConstraint(
                condition=models.Q(verdict__isnull=True, completed_at__isnull=True)
                | models.Q(verdict__isnull=False, completed_at__isnull=False),
                name="chats_review_verdict_when_complete",
            ),
        ]
        indexes = [
            models.Index(fields=["reviewer", "completed_at"], name="chats_review_done_idx"),
        ]

    def __str__(self):
        return f"{self.reviewer} on {self.item}"


# The roll-ups of these tables (imported here so Django finds their models).
from . import rollups  # noqa: E402
from .feedback_rollups import FeedbackRollup  # noqa: E402, F401
from .rollups import ExecutionRollup  # noqa: E402, F401
