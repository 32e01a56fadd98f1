"""Retention: delete what the seeds say must not be kept.

- anonymous chats (no app user) created more than ``--days`` (90) days ago,
  the auto-analyst seed's rule, with their messages, files, feedback, code
  executions and analysis results (CASCADE); their ledger rows stay, with
  the chat emptied (SET NULL), so usage figures do not change;
- refresh tokens that have expired.

Rows go in batches of ``--batch-size``, each batch in its own transaction,
so a purge of millions of rows never holds one long lock and an interrupted
run keeps what it did; running it again carries on. A real run writes one
``core.AuditLog`` row (action "purge") with the counts; ``--dry-run``
counts what would go and changes nothing. For cron: prints a summary,
exits non-zero on failure.
"""

import datetime as dt
from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models.deletion import Collector
from django.utils import timezone
from tqdm import tqdm

from chats.models import Chat
from core.models import AuditLog, RefreshToken

DEFAULT_DAYS = 90
DEFAULT_BATCH_SIZE = 1000


def positive_int(value):
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Delete anonymous chats older than --days (default 90) and expired refresh "
        "tokens, in batches; --dry-run only counts. Records the counts in the audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=positive_int, default=DEFAULT_DAYS)
        parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE)
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")

    def handle(self, *args, days, batch_size, dry_run, verbosity, **options):
        now = timezone.now()
        cutoff = now - dt.timedelta(days=days)
        targets = [
            ("anonymous chats", Chat.objects.filter(user__isnull=True, created_at__lt=cutoff)),
            ("expired refresh tokens", RefreshToken.objects.filter(expires_at__lt=now)),
        ]
        deleted = Counter()
        for description, queryset in targets:
            count = self._purge(description, queryset, batch_size, dry_run, verbosity)
            deleted.update(count)

        verb = "Would delete" if dry_run else "Deleted"
        if not deleted:
            self.stdout.write(
                f"{verb} nothing: no anonymous chat created before {cutoff:%Y-%m-%d %H:%M} "
                "UTC and no expired refresh token."
            )
        for label, number in sorted(deleted.items()):
            self.stdout.write(f"{verb} {number} {label}")
        if not dry_run:
            AuditLog.objects.create(
                action="purge",
                resource_type="retention",
                new_values={
                    "days": days,
                    "chats_created_before": cutoff.isoformat(),
                    "tokens_expired_before": now.isoformat(),
                    "deleted": dict(sorted(deleted.items())),
                },
            )

    def _purge(self, description, queryset, batch_size, dry_run, verbosity):
        """Delete (or count) ``queryset`` in batches; {model label: rows}."""
        total = queryset.count()
        counts = Counter()
        bar = tqdm(total=total, desc=description, unit=" rows", disable=verbosity < 1 or total == 0)
        last_pk = None
        with bar:
            while True:
                batch = queryset.order_by("pk")
                if last_pk is not None:
                    # dry run: nothing is deleted, so page by primary key
                    batch = batch.filter(pk__gt=last_pk)
                pks = list(batch.values_list("pk", flat=True)[:batch_size])
                if not pks:
                    break
                rows = queryset.model._base_manager.filter(pk__in=pks)
                try:
                    if dry_run:
                        counts.update(self._would_delete(rows))
                        last_pk = pks[-1]
                    else:
                        counts.update(self._delete_batch(rows))
                except Exception as error:
                    raise CommandError(f"purge of {description} failed: {error}") from error
                bar.update(len(pks))
        return Counter({label: n for label, n in counts.items() if n})

    @staticmethod
    def _delete_batch(rows):
        """Delete one batch in its own transaction; {model label: rows}."""
        with transaction.atomic():
            return rows.delete()[1]

    @staticmethod
    def _would_delete(rows):
        """What ``rows.delete()`` would delete, cascades included."""
        collector = Collector(using=DEFAULT_DB_ALIAS, origin=rows)
        collector.collect(rows)
        counts = Counter()
        for fast in collector.fast_deletes:
            counts[fast.model._meta.label] += fast.count()
        for model, instances in collector.data.items():
            counts[model._meta.label] += len(instances)
        return counts
