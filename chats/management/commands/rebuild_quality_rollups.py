from django.core.management.base import BaseCommand, CommandError

from chats import rollups


class Command(BaseCommand):
    help = (
        "Recompute the code execution roll-ups of the quality pages from the raw rows "
        "(in one transaction), for repairs and after a change of TIME_ZONE. Writers keep "
        "them exact, so no schedule needs it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="store_true",
            help="Only compare them with the raw rows; exit 1 when they differ.",
        )

    def handle(self, *args, check=False, **options):
        if check:
            wrong = rollups.differences()
            if wrong:
                raise CommandError(f"{len(wrong)} roll-up rows differ from the raw rows.")
            self.stdout.write(self.style.SUCCESS("The roll-ups equal the raw rows."))
            return
        written = rollups.rebuild()
        self.stdout.write(
            self.style.SUCCESS(f"Rebuilt the code execution roll-ups ({written} rows).")
        )
