from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from usage import partitions


class Command(BaseCommand):
    help = (
        "Convert the PostgreSQL usage ledger into a table partitioned by month, online: "
        "prepare the partitioned table and a trigger mirroring writes, copy in id batches "
        "(resumable), then swap the names in one short locked transaction. Idempotent. "
        "See docs/DEPLOY.md §12."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=50_000, help="rows per copy batch")
        parser.add_argument(
            "--months-ahead", type=int, default=3, help="empty months created ahead of this one"
        )
        parser.add_argument(
            "--pause", type=float, default=0.0, help="seconds to sleep between batches"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would be done, change nothing"
        )
        parser.add_argument(
            "--drop-old",
            action="store_true",
            help="drop usage_modelusage_unpartitioned, left by a finished conversion",
        )

    def handle(self, *args, batch_size, months_ahead, pause, dry_run, drop_old, **options):
        if connection.vendor != "postgresql":
            raise CommandError("partitioning is for PostgreSQL; SQLite keeps the plain ledger")
        if batch_size < 1 or months_ahead < 0:
            raise CommandError("--batch-size must be positive, --months-ahead not negative")
        log = self.stdout.write if options["verbosity"] >= 1 else (lambda message: None)
        state = partitions.state()
        try:
            if drop_old:
                if dry_run:
                    self.stdout.write(f"Would drop {partitions.OLD} (ledger: {state}).")
                elif not partitions.drop_old(log=log):
                    self.stdout.write(f"No {partitions.OLD}: nothing to drop.")
                return
            if dry_run:
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT COUNT(*) FROM {partitions.LEDGER}")  # noqa: S608
                    rows = cursor.fetchone()[0]
                self.stdout.write(f"Ledger: {state}, {rows} rows; nothing changed (--dry-run).")
                return
            result = partitions.convert(
                batch_size=batch_size, months_ahead=months_ahead, pause=pause, log=log
            )
        except partitions.PartitionError as error:
            raise CommandError(str(error)) from error
        if result is not None:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Partitioned the ledger: {result['copied']} rows copied, the swap held "
                    f"its locks {result['lock_seconds'] * 1000:.0f} ms."
                )
            )
