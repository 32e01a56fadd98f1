"""Re-price ledger rows whose cost came from model prices, after a price change."""

from django.core.management.base import BaseCommand

from usage import ledger
from usage.models import ModelUsage
from usage.pricing import PriceBook


class Command(BaseCommand):
    help = (
        "Recompute the cost of ledger rows that were priced from ModelPrice (or had no "
        "price), from the prices in force on their dates. Reported costs are never touched. "
        "The roll-ups move by the difference in the same transaction (usage.ledger.reprice)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", help="Only rows of this model name.")
        parser.add_argument("--since", help="Only rows on or after this date (YYYY-MM-DD).")
        parser.add_argument("--batch-size", type=int, default=2000)
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args, model=None, since=None, batch_size=2000, dry_run=False, **options):
        rows = ModelUsage.objects.exclude(cost_source=ModelUsage.CostSource.REPORTED)
        if model:
            rows = rows.filter(model_name=model)
        if since:
            rows = rows.filter(timestamp__date__gte=since)
        book = PriceBook()
        changed = seen = 0
        last_pk = 0
        while True:
            pks = list(
                rows.filter(pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[:batch_size]
            )
            if not pks:
                break
            last_pk = pks[-1]
            seen += len(pks)
            changed += len(ledger.reprice(pks, book, dry_run=dry_run))
        verb = "would change" if dry_run else "changed"
        self.stdout.write(self.style.SUCCESS(f"Checked {seen} priced rows; {verb} {changed}."))
