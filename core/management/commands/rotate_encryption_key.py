"""Re-encrypt every encrypted value with the first FIELD_ENCRYPTION_KEYS key.

Every model's ``encrypted_fields`` (core.crypto.encrypted_fields): database
passwords (core.DatabaseConnection) and notification channels' webhook
signing secrets (usage.NotificationChannel).

Key rotation: put a new key first in FIELD_ENCRYPTION_KEYS, keep the old
ones after it, deploy, run this command, then remove the old keys. All the
changes are written in one transaction and the counts go to the audit trail
(action "rotate_encryption_key"). A value already under the first key is
left as it is, so a rerun writes nothing. A value of an imported row that no
configured key opens is the source application's own ciphertext (this site
never had it in clear): left as it is and counted apart. Any other value no
key opens was encrypted with a key already removed: left as it is and
counted, and the command then exits with status 1, after committing the
others.
"""

from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core import crypto
from core.models import AuditLog, Imported

BATCH_SIZE = 500


def field_label(model, name):
    return f"{model._meta.label}.{name}"


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted value (database passwords, webhook signing secrets) "
        "with the first FIELD_ENCRYPTION_KEYS key, after adding a new key in front. "
        "--dry-run only counts. Exits 1 when a value no configured key decrypts is left."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args, dry_run, **options):
        counts = {}
        with transaction.atomic():
            for model, name in crypto.encrypted_fields():
                counts[field_label(model, name)] = self._rotate(model, name, dry_run)
            if not dry_run:
                AuditLog.objects.create(
                    action="rotate_encryption_key",
                    resource_type="encryption_keys",
                    new_values={
                        "keys_configured": len(crypto.configured_keys()),
                        "fields": {label: dict(count) for label, count in counts.items()},
                    },
                )
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        total = Counter()
        for label, count in counts.items():
            total.update(count)
            self.stdout.write(
                f"{label}: {verb} {count['rotated']}, already under the first key "
                f"{count['current']}, unreadable {count['unreadable']}"
                + (f", the source application's own {count['foreign']}" if count["foreign"] else "")
            )
        self.stdout.write(
            f"{verb.capitalize()} {total['rotated']} value(s) with the first key; "
            f"{total['current']} already under it."
        )
        if total["unreadable"]:
            raise CommandError(
                f"Left {total['unreadable']} value(s) no configured key decrypts (encrypted "
                "with a key already removed: put it back in FIELD_ENCRYPTION_KEYS and rerun)."
            )

    def _rotate(self, model, name, dry_run):
        """Re-encrypt one field of every row, in batches by primary key."""
        count = Counter(rotated=0, current=0, unreadable=0, foreign=0)
        # An imported row's value no key opens is its source application's own.
        imported = issubclass(model, Imported)
        rows = (
            model._default_manager.exclude(**{name: ""})
            .order_by("pk")
            .only("pk", name, *(("source",) if imported else ()))
        )
        last_pk = None
        while True:
            batch = list((rows if last_pk is None else rows.filter(pk__gt=last_pk))[:BATCH_SIZE])
            if not batch:
                return count
            last_pk = batch[-1].pk
            changed = []
            for row in batch:
                token = getattr(row, name)
                if crypto.is_current(token):
                    count["current"] += 1
                    continue
                try:
                    setattr(row, name, crypto.rotate(token))
                except crypto.DecryptionError:
                    if imported and row.source_id is not None:
                        count["foreign"] += 1
                    else:
                        count["unreadable"] += 1
                    continue
                changed.append(row)
            count["rotated"] += len(changed)
            if changed and not dry_run:
                model._default_manager.bulk_update(changed, [name])
