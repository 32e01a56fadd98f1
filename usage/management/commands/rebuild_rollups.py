from django.core.management.base import BaseCommand

from usage import ledger


class Command(BaseCommand):
    help = (
        "Rebuild the usage roll-ups from the raw ledger (in one transaction), for repairs. "
        "Writers keep them exact and at one row per key, so no schedule needs it."
    )

    def handle(self, *args, **options):
        written = ledger.rebuild()
        counts = ", ".join(f"{name}: {rows}" for name, rows in written.items())
        self.stdout.write(self.style.SUCCESS(f"Rebuilt the roll-ups ({counts})."))
