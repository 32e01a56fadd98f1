from django.core.management.base import BaseCommand

from usage.rollups import rebuild_daily_usage


class Command(BaseCommand):
    help = "Rebuild the daily usage roll-up from the raw ledger (in one transaction)."

    def handle(self, *args, **options):
        written = rebuild_daily_usage()
        self.stdout.write(self.style.SUCCESS(f"Rebuilt daily usage: {written} roll-up rows."))
