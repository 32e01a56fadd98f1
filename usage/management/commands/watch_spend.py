"""Budget thresholds and anomalies, notified once each (for cron)."""

import datetime as dt

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from usage import watch


class Command(BaseCommand):
    help = (
        "Find budget thresholds crossed (50, 80, 100 % spent, the budget's own alert "
        "threshold, projected over) and anomalies of yesterday and today; record each "
        "once, send new ones to the active notification channels, retry failed "
        "deliveries, and list models without a price. Exits with status 1 when a "
        "delivery failed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--today",
            type=dt.date.fromisoformat,
            help="The local day to watch as (YYYY-MM-DD); default today in TIME_ZONE.",
        )
        parser.add_argument(
            "--base-url",
            default=getattr(settings, "SITE_URL", ""),
            help="Site address put before the links in messages (e.g. https://admin.example).",
        )

    def handle(self, *args, today=None, base_url="", **options):
        report = watch.run(today=today, base_url=base_url)
        self.stdout.write(
            f"{len(report.new)} new notification(s), {report.known} already sent before."
        )
        for notification in report.new:
            self.stdout.write(f"  [{notification.kind}] {notification.subject}")
            if notification.link:
                self.stdout.write(f"      {notification.link}")
        for delivery in report.sent:
            self.stdout.write(
                self.style.SUCCESS(f"  sent #{delivery.notification_id} to {delivery.recipient}")
            )
        for delivery in report.failed:
            self.stdout.write(
                self.style.ERROR(
                    f"  FAILED #{delivery.notification_id} to {delivery.recipient} "
                    f"(attempt {delivery.attempts}): {delivery.last_error}"
                )
            )
        if report.unpriced:
            self.stdout.write("Models without a price (since first seen):")
            self.stdout.write(
                f"  {'model':<40} {'provider':<16} {'first seen':<10} "
                f"{'requests':>10} {'unpriced':>10} {'tokens':>14}"
            )
            for row in report.unpriced:
                self.stdout.write(
                    f"  {row['model_name'][:40]:<40} {row['provider'][:16]:<16} "
                    f"{row['first_seen']!s:<10} {row['requests']:>10} "
                    f"{row['unpriced_requests']:>10} {row['tokens']:>14}"
                )
            for row in report.unpriced:
                if row["has_price"]:
                    self.stdout.write(
                        f"  {row['model_name']} ({row['provider']}) has a price, in force "
                        "only after its unpriced calls: give it an earlier effective date."
                    )
            self.stdout.write(
                "  Price them in the price book (Model prices in the admin, or import_prices "
                "FILE); recompute_costs --model NAME then prices their calls."
            )
        else:
            self.stdout.write("Every model is priced.")
        if report.failed:
            raise CommandError(f"{len(report.failed)} delivery(ies) failed.", returncode=1)
