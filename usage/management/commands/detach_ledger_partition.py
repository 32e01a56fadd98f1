from django.core.management.base import BaseCommand, CommandError

from usage import partitions


class Command(BaseCommand):
    help = (
        "Detach one past month (YYYY-MM, UTC) from the partitioned ledger for archive, taking "
        "its rows out of the usage roll-ups (the dashboards no longer count it) in the same "
        "transaction; audited. --drop drops it instead of keeping the table."
    )

    def add_arguments(self, parser):
        parser.add_argument("month", metavar="YYYY-MM")
        parser.add_argument("--drop", action="store_true", help="drop the month's table too")
        parser.add_argument("--dry-run", action="store_true", help="count, change nothing")

    def handle(self, *args, month, drop, dry_run, **options):
        log = self.stdout.write if options["verbosity"] >= 1 else (lambda message: None)
        try:
            year, number = partitions.parse_month(month)
            if dry_run:
                name = partitions.partition_name(year, number)
                attached = {partition for partition, _ in partitions.partitions()}
                verb = "Would detach" if name in attached else "Cannot detach"
                self.stdout.write(f"{verb} {name} (--dry-run: nothing changed).")
                return
            partitions.detach(year, number, drop=drop, log=log)
        except partitions.PartitionError as error:
            raise CommandError(str(error)) from error
