from django.core.management.base import BaseCommand

from usage import rollups


class Command(BaseCommand):
    help = "Rebuild the usage roll-ups from the raw ledger (in one transaction)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--compact",
            action="store_true",
            help="Only merge roll-up rows that share a key, instead of a full rebuild.",
        )

    def handle(self, *args, compact=False, **options):
        if compact:
            days = rollups.compact()
            self.stdout.write(self.style.SUCCESS(f"Compacted the roll-ups of {days} days."))
            return
        written = rollups.rebuild()
        counts = ", ".join(f"{name}: {rows}" for name, rows in written.items())
        self.stdout.write(self.style.SUCCESS(f"Rebuilt the roll-ups ({counts})."))
