"""Print every budget's month-to-date state (over, at risk, on track: the
run-rate projection of usage.metrics); exit 1 when one is over (for cron)."""

from django.core.management.base import BaseCommand, CommandError

from usage import metrics


class Command(BaseCommand):
    help = (
        "Report month-to-date spend, month-end projection at the run rate and state (over, "
        "at risk, on track) of every budget. "
        "Exits with status 1 when any budget is exceeded."
    )

    def handle(self, *args, **options):
        statuses = metrics.budget_statuses()
        if not statuses:
            self.stdout.write("No budgets.")
            return
        header = (
            f"{'budget for':<40} {'limit':>12} {'spent':>12} {'used':>7} {'projected':>12}  state"
        )
        self.stdout.write(header)
        for s in statuses:
            target = str(s.budget.organization or s.budget.user)[:40]
            line = (
                f"{target:<40} {s.budget.monthly_limit:>12.2f} {s.spent:>12.2f} "
                f"{s.share * 100:>6.1f}% {s.projected:>12.2f}  {s.state}"
            )
            style = {
                metrics.BudgetState.OVER: self.style.ERROR,
                metrics.BudgetState.AT_RISK: self.style.WARNING,
            }.get(s.state)
            self.stdout.write(style(line) if style else line)
        over = [s for s in statuses if s.state == metrics.BudgetState.OVER]
        if over:
            raise CommandError(f"{len(over)} budget(s) exceeded.", returncode=1)
