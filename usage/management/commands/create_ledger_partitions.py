from django.core.management.base import BaseCommand, CommandError

from usage import partitions


class Command(BaseCommand):
    help = (
        "Create the monthly partitions of the partitioned ledger ahead of time (for cron; "
        "idempotent). Rows of a new month already in the DEFAULT partition move into it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--months-ahead", type=int, default=3)
        parser.add_argument(
            "--since",
            metavar="YYYY-MM",
            help="also create the months from this one (moving their rows out of DEFAULT)",
        )

    def handle(self, *args, months_ahead, since, **options):
        if months_ahead < 0:
            raise CommandError("--months-ahead must not be negative")
        log = self.stdout.write if options["verbosity"] >= 1 else (lambda message: None)
        try:
            first = partitions.parse_month(since) if since else None
            created = partitions.create_partitions(months_ahead, since=first, log=log)
        except partitions.PartitionError as error:
            raise CommandError(str(error)) from error
        if not created:
            self.stdout.write("Every partition exists: nothing created.")
