from django.core.management.base import BaseCommand

from usage import ledger


class Command(BaseCommand):
    help = (
        "Rebuild the usage roll-ups from the raw ledger (in one transaction), for repairs. "
        "Writers keep them exact and at one row per key, so no schedule needs it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--compact",
            action="store_true",
            help="Kept for old crontabs: roll-ups hold one row per key, nothing to merge.",
        )

    def handle(self, *args, compact=False, **options):
        if compact:
            self.stdout.write("The roll-ups hold one row per key: nothing to compact.")
            return
        written = ledger.rebuild()
        counts = ", ".join(f"{name}: {rows}" for name, rows in written.items())
        self.stdout.write(self.style.SUCCESS(f"Rebuilt the roll-ups ({counts})."))
