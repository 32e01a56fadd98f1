"""Fill the review queues from every message already in the database (the
backlog; new rows fill them as they arrive). Idempotent: a message enters a
queue once, so running it again adds only what is new. For cron: prints
what each queue gained, exits non-zero on failure.
"""

from django.core.management.base import BaseCommand, CommandError

from chats import queues
from chats.models import ReviewQueue


class Command(BaseCommand):
    help = "Fill the active review queues (or those named) from every message."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="queue names (default: every active queue)")

    def handle(self, *args, names=(), **options):
        selected = ReviewQueue.objects.filter(is_active=True)
        if names:
            selected = ReviewQueue.objects.filter(name__in=names)
            missing = sorted(set(names) - set(selected.values_list("name", flat=True)))
            if missing:
                raise CommandError(f"no such queue: {', '.join(missing)}")
        added = queues.fill_all(selected)
        for name, n in added.items():
            self.stdout.write(f"{name}: {n} added")
        self.stdout.write(f"{sum(added.values())} items added to {len(added)} queue(s)")
