"""Create (or reset) the demo staff accounts and print their logins."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from chats import queues
from chats.models import ReviewQueue

# username → (group, superuser?)
ACCOUNTS = {
    "admin": ("Admins", True),
    "manager": ("Managers", False),
    "staff": ("Staff", False),
}


class Command(BaseCommand):
    help = (
        "Create or reset the demo accounts admin, manager and staff (one per role) "
        "and print their logins. For demos and local use only."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--password",
            help="Password for all three accounts (default: a new random one).",
        )

    @transaction.atomic
    def handle(self, *args, password=None, **options):
        password = password or secrets.token_urlsafe(12)
        User = get_user_model()
        for username, (group_name, superuser) in ACCOUNTS.items():
            user, _ = User.objects.get_or_create(username=username)
            user.email = f"{username}@example.com"
            user.is_staff = True
            user.is_superuser = superuser
            user.is_active = True
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get(name=group_name)])
        # With demo data loaded, the demo reviewers have done some reviews, so
        # the review results and agreement pages show something.
        if ReviewQueue.objects.exists():
            queues.demo_queues(reviewers=list(User.objects.filter(username__in=["staff", "admin"])))
        self.stdout.write("Demo logins (one per role), all with the same password:")
        for username, (group_name, _) in ACCOUNTS.items():
            self.stdout.write(f"  {username:<8} ({group_name})")
        self.stdout.write(self.style.SUCCESS(f"  password: {password}"))
