"""The spend watch: budget thresholds and anomalies, notified once each.

``run(today)`` (the ``watch_spend`` command, for cron) finds

- every budget threshold crossed in the budget month: 50, 80 and 100 % of
  the monthly limit spent, the budget's own alert threshold, and "projected"
  (the month-end projection above the limit while the spend is not yet);
- every anomaly (usage.anomalies) of yesterday and today;

records each as a ``Notification`` (unique per kind, key, period and
threshold, so a rerun finds nothing new), and sends each new one to every
active channel that takes its kind: e-mail through Django's mail backend,
or a webhook (a JSON POST, its body signed with HMAC-SHA256 in the
``X-Analyst-Admin-Signature`` header, retried with exponential backoff).
Each try's outcome is kept on the ``Delivery``; a failed delivery is tried
again on the next runs until ``MAX_ATTEMPTS``.

Budget months are calendar months in TIME_ZONE. For the first
``LATE_DAYS`` days of a month the month before is checked too (its whole
month), so spend that landed in its last hours, or a run missed at the
month's end, is still reported for that month.
"""

import calendar
import hashlib
import hmac
import json
import logging
import math
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from . import anomalies, metrics
from .metrics import Period
from .models import Delivery, Notification, NotificationChannel
from .pricebook import unpriced_models

log = logging.getLogger(__name__)

THRESHOLDS = (Decimal(50), Decimal(80), Decimal(100))
LATE_DAYS = 3
# Tries of one webhook delivery in one run, and over all runs.
TRIES_PER_RUN = 3
MAX_ATTEMPTS = 9
BACKOFF_SECONDS = 1.0
TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-Analyst-Admin-Signature"


@dataclass
class Finding:
    """A notification to be: what, for which period and threshold."""

    kind: str
    key: str
    period: date
    threshold: str
    subject: str
    body: str
    link: str
    payload: dict
    budget: object = None


@dataclass
class Report:
    new: list = field(default_factory=list)  # Notifications created this run
    known: int = 0  # findings already notified before
    sent: list = field(default_factory=list)  # Deliveries sent this run
    failed: list = field(default_factory=list)  # Deliveries that failed this run
    unpriced: list = field(default_factory=list)


# -- budgets -------------------------------------------------------------------


def budget_months(today):
    """[(first day of the month, the day its spend is counted to)]: this
    month to today, and in its first LATE_DAYS days the whole month before."""
    months = [(today.replace(day=1), today)]
    if today.day <= LATE_DAYS:
        last = today.replace(day=1) - timedelta(days=1)
        months.append((last.replace(day=1), last))
    return months


def _level(share):
    """Decimal percent as text: 80 → "80%", 12.5 → "12.5%"."""
    text = format(share.quantize(Decimal("0.1")), "f").removesuffix(".0")
    return f"{text}%"


def budget_findings(today):
    findings = []
    for first, as_of in budget_months(today):
        month = Period(first, as_of)
        closed = as_of.month != today.month or as_of.year != today.year
        for status in metrics.budget_statuses(today=as_of):
            budget = status.budget
            limit = budget.monthly_limit
            target = budget.organization or budget.user
            levels = sorted({*THRESHOLDS, budget.alert_threshold * 100})
            crossed = [
                level
                for level in levels
                if status.spent > 0 and status.spent * 100 >= limit * level
            ]
            if budget.organization_id:
                filters = {"organization__id__exact": budget.organization_id}
                page = reverse("dashboards:organization", args=[budget.organization_id])
            else:
                filters = {"user__id__exact": budget.user_id}
                page = reverse("dashboards:user", args=[budget.user_id])
            rows = anomalies.ledger_url(month, **filters)
            dashboard = f"{page}?period=custom&start={first}&end={as_of}"
            common = {
                "budget_id": budget.pk,
                "target": str(target),
                "month": first.strftime("%Y-%m"),
                "as_of": as_of.isoformat(),
                "limit": limit,
                "spent": status.spent,
                # None for a zero limit with spend (JSON has no infinity)
                "share": status.share if math.isfinite(status.share) else None,
                "projected": status.projected,
                "links": {"rows": rows, "dashboard": dashboard},
            }
            month_name = first.strftime("%B %Y")
            for level in crossed:
                threshold = _level(level)
                findings.append(
                    Finding(
                        Notification.Kind.BUDGET,
                        f"budget:{budget.pk}",
                        first,
                        threshold,
                        f"Budget for {target}: {threshold} of ${limit:,.2f} spent in {month_name}",
                        (
                            f"{target} has spent ${status.spent:,.2f} of its ${limit:,.2f} "
                            f"budget for {month_name} by {as_of}; "
                            f"projected month end ${status.projected:,.2f}."
                        ),
                        rows,
                        {**common, "threshold": threshold},
                        budget,
                    )
                )
            # At risk (usage.metrics.budget_state), and not yet at the limit:
            # the 100% threshold reports that.
            at_risk = status.state == metrics.BudgetState.AT_RISK
            if not closed and at_risk and status.spent < limit:
                findings.append(
                    Finding(
                        Notification.Kind.BUDGET,
                        f"budget:{budget.pk}",
                        first,
                        "projected",
                        f"Budget for {target}: projected over ${limit:,.2f} in {month_name}",
                        (
                            f"At its run rate {target} will spend ${status.projected:,.2f} in "
                            f"{month_name}, over its ${limit:,.2f} budget "
                            f"(${status.spent:,.2f} spent by {as_of}, "
                            f"{calendar.monthrange(as_of.year, as_of.month)[1] - as_of.day} "
                            "days left)."
                        ),
                        rows,
                        {**common, "threshold": "projected"},
                        budget,
                    )
                )
    return findings


# -- anomalies -----------------------------------------------------------------


def _figure(measure, value):
    return f"${value:,.2f}" if measure == "cost" else f"{value:,.0f} requests"


def anomaly_findings(today, rule=anomalies.DEFAULT_RULE):
    findings = []
    for day in (today - timedelta(days=1), today):
        for a in anomalies.find(day, rule):
            size = f"{a.size:.1f}× its run rate" if a.size else "first day seen"
            baseline = _figure(a.measure, a.baseline)
            what = "spend" if a.measure == "cost" else "requests"
            findings.append(
                Finding(
                    Notification.Kind.ANOMALY,
                    a.notification_key,
                    a.day,
                    a.measure,
                    f"Unusual {what} on {a.day}: {a.label}, {_figure(a.measure, a.value)}",
                    (
                        f"{a.label} had {_figure(a.measure, a.value)} on {a.day}: {size} "
                        f"(baseline {baseline} over {a.history_days} days, "
                        f"alarm above {_figure(a.measure, a.threshold)})."
                    ),
                    a.links["rows"],
                    {
                        "dimension": a.dimension,
                        "key": list(a.key),
                        "label": a.label,
                        "day": a.day.isoformat(),
                        "measure": a.measure,
                        "value": a.value,
                        "baseline": a.baseline,
                        "median": a.median,
                        "weekday_median": a.weekday_median,
                        "threshold": a.threshold,
                        "size": a.size,
                        "history_days": a.history_days,
                        "links": a.links,
                    },
                )
            )
    return findings


# -- recording and sending -------------------------------------------------------


def redacted(url):
    """A webhook URL without its path and query (which may hold a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.path not in ("", "/") else url


def record(findings):
    """Create the Notifications not made before, and a pending Delivery on
    every active channel that takes each new one. Returns (new, known)."""
    channels = list(NotificationChannel.objects.filter(is_active=True))
    new, known = [], 0
    for finding in findings:
        payload = json.loads(json.dumps(finding.payload, cls=DjangoJSONEncoder))
        try:
            with transaction.atomic():
                notification, created = Notification.objects.get_or_create(
                    kind=finding.kind,
                    key=finding.key,
                    period=finding.period,
                    threshold=finding.threshold,
                    defaults={
                        "budget": finding.budget,
                        "subject": finding.subject[:250],
                        "body": finding.body,
                        "link": finding.link,
                        "payload": payload,
                    },
                )
                if created:
                    wanted = "budget_alerts" if finding.kind == "budget" else "anomaly_alerts"
                    Delivery.objects.bulk_create(
                        Delivery(
                            notification=notification,
                            channel=channel,
                            kind=channel.kind,
                            recipient=channel.target
                            if channel.kind == NotificationChannel.Kind.EMAIL
                            else redacted(channel.target),
                        )
                        for channel in channels
                        if getattr(channel, wanted)
                    )
        except IntegrityError:
            # Another run made it between the get and the create; anything
            # else is a bug to surface.
            if not Notification.objects.filter(
                kind=finding.kind,
                key=finding.key,
                period=finding.period,
                threshold=finding.threshold,
            ).exists():
                raise
            created = False
        if created:
            new.append(notification)
        else:
            known += 1
    return new, known


def _absolute(link, base_url):
    return f"{base_url.rstrip('/')}{link}" if base_url and link.startswith("/") else link


def webhook_body(notification, base_url=""):
    message = {
        "id": notification.pk,
        "kind": notification.kind,
        "key": notification.key,
        "period": notification.period.isoformat(),
        "threshold": notification.threshold,
        "subject": notification.subject,
        "text": notification.body,
        "link": _absolute(notification.link, base_url),
        "created_at": notification.created_at.isoformat(),
        "data": notification.payload,
    }
    return json.dumps(message, sort_keys=True, cls=DjangoJSONEncoder).encode()


def sign(secret, body):
    """The signature header's value: "sha256=" and the hex HMAC of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(url, body, secret, notification):
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {redacted(url)}")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "analyst-admin-watch/1",
        "X-Analyst-Admin-Event": notification.kind,
        "X-Analyst-Admin-Notification": str(notification.pk),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (scheme checked)
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
        return response.status


def _send_email(delivery, base_url):
    notification = delivery.notification
    link = _absolute(notification.link, base_url)
    EmailMessage(
        subject=notification.subject,
        body=f"{notification.body}\n\nThe rows behind it: {link}\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=delivery.channel.recipients(),
    ).send(fail_silently=False)


def deliver(delivery, base_url="", sleep=time.sleep, tries=TRIES_PER_RUN):
    """Send one delivery: up to ``tries`` tries (webhooks; exponential
    backoff between them), each counted; the outcome is saved."""
    channel = delivery.channel
    for attempt in range(tries):
        if attempt:
            sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
        delivery.attempts += 1
        try:
            if channel.kind == NotificationChannel.Kind.EMAIL:
                _send_email(delivery, base_url)
            else:
                body = webhook_body(delivery.notification, base_url)
                delivery.response_status = _post(
                    channel.target, body, channel.get_secret(), delivery.notification
                )
        except urllib.error.HTTPError as error:
            delivery.response_status = error.code
            delivery.last_error = f"HTTP {error.code} {error.reason}"[:2000]
        except Exception as error:  # noqa: BLE001 - any failure is recorded, then retried
            delivery.last_error = f"{type(error).__name__}: {error}"[:2000]
        else:
            delivery.status = Delivery.Status.SENT
            delivery.sent_at = timezone.now()
            delivery.last_error = ""
            break
        if channel.kind == NotificationChannel.Kind.EMAIL or delivery.attempts >= MAX_ATTEMPTS:
            break
    if delivery.status != Delivery.Status.SENT:
        delivery.status = Delivery.Status.FAILED
        log.warning("Delivery %s failed: %s", delivery.pk, delivery.last_error)
    delivery.updated_at = timezone.now()
    delivery.save(
        update_fields=[
            "status",
            "attempts",
            "response_status",
            "last_error",
            "sent_at",
            "updated_at",
        ]
    )
    return delivery


def due_deliveries():
    """Pending deliveries, and failed ones with tries left, on live channels."""
    return (
        Delivery.objects.filter(channel__isnull=False, channel__is_active=True)
        .filter(status__in=[Delivery.Status.PENDING, Delivery.Status.FAILED])
        .filter(attempts__lt=MAX_ATTEMPTS)
        .select_related("notification", "channel")
        .order_by("pk")
    )


def send_due(base_url="", sleep=time.sleep):
    sent, failed = [], []
    for delivery in due_deliveries():
        # Claim it: a concurrent run that read the same row loses here.
        claimed = Delivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts).update(
            updated_at=timezone.now()
        )
        if not claimed:
            continue
        deliver(delivery, base_url, sleep)
        (sent if delivery.status == Delivery.Status.SENT else failed).append(delivery)
    return sent, failed


def run(today=None, base_url="", sleep=time.sleep, rule=anomalies.DEFAULT_RULE):
    """One watch: find, record, send. Returns a Report."""
    today = today or timezone.localdate()
    report = Report()
    report.new, report.known = record(budget_findings(today) + anomaly_findings(today, rule))
    report.sent, report.failed = send_due(base_url, sleep)
    report.unpriced = unpriced_models()
    return report
