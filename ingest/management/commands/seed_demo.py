"""manage.py seed_demo: fill an empty database with demo data (ingest.demo)."""

import time

from django.core.management.base import BaseCommand, CommandError

from ingest.demo.builder import DatabaseNotEmpty, build_demo, existing_data, tqdm_progress


class Command(BaseCommand):
    help = (
        "Fill an EMPTY database with a realistic, deterministic demo data set of the four "
        "source applications (everything but staff accounts). Same seed, scale and day: "
        "same data."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        parser.add_argument(
            "--scale", type=float, default=1.0, help="multiplies the row counts (default 1)"
        )
        parser.add_argument(
            "--days", type=int, default=90, help="days of history before today (default 90)"
        )
        parser.add_argument(
            "--skip-if-not-empty",
            action="store_true",
            help="do nothing (and succeed) when the database already holds data",
        )

    def handle(self, *args, seed, scale, days, skip_if_not_empty, verbosity, **options):
        if not 0 < scale <= 100:
            raise CommandError("--scale must be above 0 and at most 100.")
        if not 7 <= days <= 3650:
            raise CommandError("--days must be between 7 and 3650.")
        if skip_if_not_empty and existing_data():
            self.stdout.write("The database already holds data: demo data not loaded.")
            return
        started = time.monotonic()
        # the bars go to the command's stderr stream (a StringIO under call_command)
        progress = tqdm_progress(verbosity > 0, getattr(self.stderr, "_out", None))
        try:
            counts = build_demo(seed=seed, scale=scale, days=days, progress=progress)
        except DatabaseNotEmpty as error:
            raise CommandError(str(error)) from error
        elapsed = time.monotonic() - started
        if verbosity == 0:
            return
        self.print_summary(counts)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data created in {elapsed:.1f}s (seed {seed}, scale {scale:g}, {days} days)."
            )
        )

    def print_summary(self, counts):
        width = max(len(label) for label, _ in counts)
        self.stdout.write(f"\n{'model':<{width}}  {'rows':>9}")
        self.stdout.write(f"{'-' * width}  {'-' * 9}")
        for label, rows in counts:
            self.stdout.write(f"{label:<{width}}  {rows:>9,}")
        self.stdout.write(f"{'-' * width}  {'-' * 9}")
        self.stdout.write(f"{'total':<{width}}  {sum(rows for _, rows in counts):>9,}\n")
