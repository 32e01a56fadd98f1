from django.core.management.base import BaseCommand, CommandError

from chats import feedback_rollups, rollups

# The quality pages' roll-ups: (name, module with rebuild() and differences()).
ROLLUPS = [("code execution", rollups), ("feedback", feedback_rollups)]


class Command(BaseCommand):
    help = (
        "Recompute the quality pages' roll-ups (code executions, ratings and answers) "
        "from the raw rows (each in one transaction), for repairs and after a change of "
        "TIME_ZONE. Writers keep them exact, so no schedule needs it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="store_true",
            help="Only compare them with the raw rows; exit 1 when they differ.",
        )

    def handle(self, *args, check=False, **options):
        if check:
            wrong = {name: len(module.differences()) for name, module in ROLLUPS}
            if any(wrong.values()):
                raise CommandError(
                    "; ".join(
                        f"{n} {name} roll-up rows differ from the raw rows"
                        for name, n in wrong.items()
                        if n
                    )
                    + "."
                )
            self.stdout.write(self.style.SUCCESS("The roll-ups equal the raw rows."))
            return
        for name, module in ROLLUPS:
            written = module.rebuild()
            self.stdout.write(self.style.SUCCESS(f"Rebuilt the {name} roll-ups ({written} rows)."))
