"""Update the price book from a price map file (LiteLLM's format)."""

import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from usage import pricebook


class Command(BaseCommand):
    help = (
        "Read a model price map in LiteLLM's model_prices_and_context_window.json format "
        "and write ModelPrice rows in force from --effective (default today), after "
        "printing the diff of the prices and of the money that moves per model and day "
        "when the ledger rows priced from the book are re-priced (reported costs never "
        "move). --dry-run prints the diffs and writes nothing. Input, output, cached-input "
        "and reasoning prices are applied; cache-write and audio prices are not."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the price map (JSON).")
        parser.add_argument(
            "--effective",
            type=dt.date.fromisoformat,
            help="The date the prices are in force from (YYYY-MM-DD); default today.",
        )
        parser.add_argument(
            "--all",
            action="store_true",
            dest="every",
            help="Import every model of the map, not only those the book or ledger knows.",
        )
        parser.add_argument(
            "--model", action="append", default=[], help="Only this model name (repeatable)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Show the diffs, write nothing.")

    def handle(self, *args, file, effective=None, every=False, model=(), dry_run=False, **options):
        effective = effective or timezone.localdate()
        try:
            price_map = pricebook.load_price_map(file)
        except (OSError, ValueError, json.JSONDecodeError) as error:
            raise CommandError(f"Cannot read {file}: {error}") from error
        for name, reason in price_map.refused:
            self.stdout.write(self.style.WARNING(f"refused {name}: {reason}"))
        changes = pricebook.plan_import(price_map, effective, every=every, models=model)
        self.stdout.write(
            f"{len(price_map.prices)} priced models in the map; "
            f"{len(changes)} new or changed from {effective}:"
        )
        for change in changes:
            p = change.price
            new = pricebook.describe(p)
            if change.old is None:
                line = f"  + {p.provider}/{p.model_name}: {new} per million tokens"
            else:
                old = pricebook.describe(change.old)
                line = f"  ~ {p.provider}/{p.model_name}: {old} → {new} per million tokens"
            if p.ignored:
                line += f" (not applied: {', '.join(p.ignored)})"
            self.stdout.write(line)
        moved = pricebook.repricing_diff(changes, effective)
        if moved:
            self.stdout.write("Money that moves (ledger rows priced from the book):")
            self.stdout.write(
                f"  {'day':<10} {'model':<40} {'rows':>7} {'before':>14} {'after':>14} "
                f"{'moved':>14}"
            )
            for row in moved:
                name = f"{row['provider']}/{row['model_name']}"[:40]
                self.stdout.write(
                    f"  {row['day']!s:<10} {name:<40} {row['rows']:>7} {row['before']:>14.8f} "
                    f"{row['after']:>14.8f} {row['moved']:>+14.8f}"
                )
            total = sum(row["moved"] for row in moved)
            self.stdout.write(f"  total moved: {total:+.8f} USD")
        else:
            self.stdout.write("No ledger row's cost moves.")
        if dry_run:
            self.stdout.write(self.style.WARNING("Dry run: nothing written."))
            return
        if not changes:
            self.stdout.write(self.style.SUCCESS("The price book is up to date."))
            return
        output = pricebook.apply_import(changes, effective)
        self.stdout.write(output.rstrip())
        self.stdout.write(self.style.SUCCESS(f"Wrote {len(changes)} price(s)."))
