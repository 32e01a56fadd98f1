"""Re-encrypt every stored database password with the first key.

Key rotation: put a new key first in FIELD_ENCRYPTION_KEYS, keep the old
ones after it, deploy, run this command, then remove the old keys. Values
no configured key opens (an imported application's own ciphertext, or a
key already removed) are left as they are and counted.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from core import crypto
from core.models import DatabaseConnection

BATCH_SIZE = 500


class Command(BaseCommand):
    help = (
        "Re-encrypt DatabaseConnection passwords with the first FIELD_ENCRYPTION_KEYS key "
        "(after adding a new key in front). --dry-run only counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args, dry_run, **options):
        rotated = unreadable = 0
        last_pk = 0
        while True:
            batch = list(
                DatabaseConnection.objects.filter(pk__gt=last_pk)
                .exclude(encrypted_db_password="")
                .order_by("pk")
                .only("pk", "encrypted_db_password")[:BATCH_SIZE]
            )
            if not batch:
                break
            last_pk = batch[-1].pk
            changed = []
            for connection in batch:
                try:
                    token = crypto.rotate(connection.encrypted_db_password)
                except crypto.DecryptionError:
                    unreadable += 1
                    continue
                connection.encrypted_db_password = token
                changed.append(connection)
            rotated += len(changed)
            if changed and not dry_run:
                with transaction.atomic():
                    DatabaseConnection.objects.bulk_update(changed, ["encrypted_db_password"])
        verb = "Would re-encrypt" if dry_run else "Re-encrypted"
        self.stdout.write(f"{verb} {rotated} database password(s) with the first key.")
        if unreadable:
            self.stdout.write(
                f"Left {unreadable} value(s) no configured key decrypts (imported from a "
                "source application, or encrypted with a key already removed)."
            )
