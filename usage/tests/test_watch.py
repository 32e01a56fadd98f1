"""The spend watch (usage.watch, manage.py watch_spend): budget thresholds
across month ends, once per budget month and threshold; e-mail through the
locmem backend; signed webhooks to a local HTTP receiver, retried, failures
recorded and shown; the alerts page."""

import datetime as dt
import hashlib
import hmac
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from core.tests import factories as f
from usage import ledger, watch
from usage.models import Delivery, ModelUsage, Notification, NotificationChannel

pytestmark = pytest.mark.django_db

NY = "America/New_York"


def spend(cost, when, user=None, organization=None, model=("gpt-4o", "openai"), n=1):
    ledger.add_usage(
        [
            ModelUsage(
                user=user,
                organization=organization,
                model_name=model[0],
                provider=model[1],
                prompt_tokens=10,
                completion_tokens=10,
                cost=Decimal(cost) / n,
                timestamp=when,
            )
            for _ in range(n)
        ]
    )


def ny(*args):
    from zoneinfo import ZoneInfo

    return dt.datetime(*args, tzinfo=ZoneInfo(NY))


def sent(kind="budget"):
    rows = Notification.objects.filter(kind=kind).order_by("period", "key", "threshold")
    return [(n.key, n.period, n.threshold) for n in rows]


def no_sleep(seconds):
    no_sleep.calls.append(seconds)


no_sleep.calls = []


@pytest.fixture
def acme(time_zone):
    org = f.OrganizationFactory(name="Acme")
    budget = f.BudgetFactory(
        organization=org, monthly_limit=Decimal("100.00"), alert_threshold=Decimal("0.900")
    )
    return org, budget


@pytest.fixture
def mail_channel(db):
    """Budget alerts only (a budget's spend is often an anomaly too)."""
    return NotificationChannel.objects.create(
        name="finance", kind="email", target="cfo@acme.test, ops@acme.test", anomaly_alerts=False
    )


# -- thresholds ----------------------------------------------------------------


def test_each_threshold_is_found_once_as_it_is_crossed(acme, mail_channel):
    org, budget = acme
    key = f"budget:{budget.pk}"
    march = dt.date(2024, 3, 1)
    spend("40", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)

    watch.run(today=dt.date(2024, 3, 20), sleep=no_sleep)
    assert sent() == []  # 40 %, projected 62 at the 20th

    spend("30", dt.datetime(2024, 3, 10, 13, tzinfo=dt.UTC), organization=org)
    report = watch.run(today=dt.date(2024, 3, 20), sleep=no_sleep)
    assert sent() == [(key, march, "50%"), (key, march, "projected")]  # 70 → 108.50
    assert len(report.new) == 2 and len(report.sent) == 2

    # a rerun finds the same and sends nothing
    report = watch.run(today=dt.date(2024, 3, 20), sleep=no_sleep)
    assert report.new == [] and report.sent == [] and report.known == 2
    assert len(mail.outbox) == 2

    spend("50", dt.datetime(2024, 3, 15, 13, tzinfo=dt.UTC), organization=org)
    watch.run(today=dt.date(2024, 3, 25), sleep=no_sleep)
    assert sent() == [
        (key, march, "100%"),
        (key, march, "50%"),
        (key, march, "80%"),
        (key, march, "90%"),  # the budget's own alert threshold
        (key, march, "projected"),
    ]
    assert len(mail.outbox) == 5
    assert Delivery.objects.filter(status="sent").count() == 5


def test_a_budget_spent_at_once_sends_one_message_per_threshold(acme, mail_channel):
    org, budget = acme
    spend("120", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)

    watch.run(today=dt.date(2024, 3, 2), sleep=no_sleep)

    # over already: no "projected" on top of "100%"
    assert [t for _k, _p, t in sent()] == ["100%", "50%", "80%", "90%"]
    subjects = sorted(m.subject for m in mail.outbox)
    assert subjects[0] == "Budget for Acme: 100% of $100.00 spent in March 2024"
    message = next(m for m in mail.outbox if "100%" in m.subject)
    assert message.to == ["cfo@acme.test", "ops@acme.test"]
    assert "$120.00 of its $100.00" in message.body
    notification = Notification.objects.get(threshold="100%")
    assert notification.link in message.body
    assert f"organization__id__exact={org.pk}" in notification.link


@pytest.mark.parametrize("time_zone", [NY], indirect=True)
def test_budget_months_are_calendar_months_in_time_zone(acme, mail_channel):
    """$60 at 23:30 on 31 March in New York (04:30 UTC on 1 April) is March's;
    the run on 1 April still reports March, and April starts at zero."""
    org, budget = acme
    key = f"budget:{budget.pk}"
    spend("20", ny(2024, 3, 10, 12), organization=org)
    watch.run(today=dt.date(2024, 3, 31), sleep=no_sleep)
    assert sent() == []

    spend("60", ny(2024, 3, 31, 23, 30), organization=org)
    spend("1", ny(2024, 4, 1, 0, 30), organization=org)
    watch.run(today=dt.date(2024, 4, 1), sleep=no_sleep)

    assert sent() == [
        (key, dt.date(2024, 3, 1), "50%"),
        (key, dt.date(2024, 3, 1), "80%"),
    ]
    payload = Notification.objects.get(threshold="80%").payload
    assert Decimal(payload["spent"]) == Decimal("80")
    assert payload["as_of"] == "2024-03-31"

    # April: $1 on its first day projects to $30 — nothing; later $51 is 50 %
    spend("50", ny(2024, 4, 10, 9), organization=org)
    watch.run(today=dt.date(2024, 4, 10), sleep=no_sleep)
    assert (key, dt.date(2024, 4, 1), "50%") in sent()
    assert (key, dt.date(2024, 4, 1), "projected") in sent()  # 51 / 10 × 30 = 153
    # March is not looked at again after its late days
    assert len([s for s in sent() if s[1] == dt.date(2024, 3, 1)]) == 2


def test_a_new_month_sends_the_same_threshold_again(acme, mail_channel):
    org, budget = acme
    spend("60", dt.datetime(2024, 1, 30, 12, tzinfo=dt.UTC), organization=org)
    spend("60", dt.datetime(2024, 2, 27, 12, tzinfo=dt.UTC), organization=org)

    watch.run(today=dt.date(2024, 1, 31), sleep=no_sleep)
    watch.run(today=dt.date(2024, 2, 29), sleep=no_sleep)  # leap day
    watch.run(today=dt.date(2024, 3, 1), sleep=no_sleep)

    assert [(p, t) for _k, p, t in sent()] == [
        (dt.date(2024, 1, 1), "50%"),
        (dt.date(2024, 2, 1), "50%"),
    ]


def test_user_budgets_and_zero_limits(time_zone, mail_channel):
    ann = f.AppUserFactory(email="ann@solo.test")
    bob = f.AppUserFactory(email="bob@solo.test")
    f.BudgetFactory(organization=None, user=ann, monthly_limit=Decimal("10.00"))
    zero = f.BudgetFactory(organization=None, user=bob, monthly_limit=Decimal("0.00"))
    spend("8", dt.datetime(2024, 3, 28, 12, tzinfo=dt.UTC), user=ann)

    watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)
    assert [t for _k, _p, t in sent()] == ["50%", "80%"]  # bob spent nothing: no alarm

    spend("0.01", dt.datetime(2024, 3, 28, 13, tzinfo=dt.UTC), user=bob)
    watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)
    zero_alarms = [t for k, _p, t in sent() if k == f"budget:{zero.pk}"]
    assert zero_alarms == ["100%", "50%", "80%"]
    link = Notification.objects.filter(budget=zero).first().link
    assert f"user__id__exact={bob.pk}" in link


def test_anomalies_are_notified_once_with_their_links(time_zone):
    NotificationChannel.objects.create(name="ops", kind="email", target="ops@x.test")
    for back in range(1, 29):
        spend("2", dt.datetime(2024, 3, 14, 12, tzinfo=dt.UTC) - dt.timedelta(days=back))
    spend("30", dt.datetime(2024, 3, 14, 12, tzinfo=dt.UTC))

    watch.run(today=dt.date(2024, 3, 14), sleep=no_sleep)
    watch.run(today=dt.date(2024, 3, 15), sleep=no_sleep)  # looks at the 14th again

    assert sent("anomaly") == [
        ("model:gpt-4o/openai", dt.date(2024, 3, 14), "cost"),
        ("provider:openai", dt.date(2024, 3, 14), "cost"),
    ]
    model = Notification.objects.get(key="model:gpt-4o/openai")
    assert model.payload["size"] == pytest.approx(15.0)
    assert model.payload["baseline"] == pytest.approx(2.0)
    assert "model_name=gpt-4o" in model.link
    assert len(mail.outbox) == 2
    assert "15.0× its run rate" in mail.outbox[0].body


def test_channels_take_only_the_kinds_they_ask_for(acme):
    org, _budget = acme
    NotificationChannel.objects.create(
        name="anomalies only", kind="email", target="a@x.test", budget_alerts=False
    )
    NotificationChannel.objects.create(name="off", kind="email", target="b@x.test", is_active=False)
    spend("60", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)

    watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)

    assert Notification.objects.count() == 1
    assert Delivery.objects.count() == 0
    assert mail.outbox == []


def test_a_channel_added_later_gets_only_what_is_found_later(acme):
    org, _budget = acme
    spend("60", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)
    watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)
    NotificationChannel.objects.create(name="late", kind="email", target="c@x.test")

    watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)
    assert mail.outbox == []

    spend("30", dt.datetime(2024, 3, 20, 12, tzinfo=dt.UTC), organization=org)
    watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)
    assert sorted(m.subject for m in mail.outbox) == [
        "Budget for Acme: 80% of $100.00 spent in March 2024",
        "Budget for Acme: 90% of $100.00 spent in March 2024",
    ]


def test_a_mail_failure_is_recorded_and_retried_on_the_next_run(acme, mail_channel, settings):
    org, _budget = acme
    spend("60", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)
    settings.EMAIL_BACKEND = "usage.tests.test_watch.BrokenBackend"

    report = watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)

    delivery = Delivery.objects.get()
    assert [d.pk for d in report.failed] == [delivery.pk]
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.last_error == "ConnectionRefusedError: SMTP is down"

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 2, "")
    assert len(mail.outbox) == 1


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP is down")


# -- webhooks -----------------------------------------------------------------


class Receiver:
    """A local HTTP server on 127.0.0.1 that answers POSTs with the statuses
    given in turn (then 200), recording each request; shut down by the
    fixture (and every request the watch makes has a timeout)."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_port}/hooks/s3cr3t-token"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.stop()


def webhook(url, secret="hook-secret-42"):  # noqa: S107 (a test key)
    channel = NotificationChannel(name="hook", kind="webhook", target=url)
    channel.set_secret(secret)
    channel.save()
    return channel


def test_a_webhook_gets_a_signed_json_post(acme, receiver):
    org, budget = acme
    hook = receiver()
    channel = webhook(hook.url)
    spend("85", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)

    watch.run(today=dt.date(2024, 3, 28), base_url="https://admin.example", sleep=no_sleep)

    assert len(hook.requests) == 2  # 50 % and 80 %
    path, headers, body = hook.requests[0]
    assert path == "/hooks/s3cr3t-token"
    assert headers["Content-Type"] == "application/json"
    expected = hmac.new(b"hook-secret-42", body, hashlib.sha256).hexdigest()
    assert headers["X-Analyst-Admin-Signature"] == f"sha256={expected}"
    message = json.loads(body)
    assert message["kind"] == "budget" and message["threshold"] == "50%"
    assert message["link"].startswith("https://admin.example/admin/usage/modelusage/?")
    assert message["data"]["budget_id"] == budget.pk
    assert Decimal(message["data"]["spent"]) == Decimal("85")
    # the stored secret is encrypted; the page names the host only, never the token
    assert "hook-secret-42" not in channel.encrypted_secret
    delivery = Delivery.objects.first()
    assert delivery.recipient == f"http://127.0.0.1:{hook.server.server_port}/…"
    assert (delivery.status, delivery.response_status, delivery.attempts) == ("sent", 200, 1)


def test_a_failing_webhook_is_retried_with_backoff_then_recorded(acme, receiver):
    org, _budget = acme
    hook = receiver(statuses=[500, 503, 502, 500, 200])
    webhook(hook.url)
    spend("55", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)
    no_sleep.calls = []

    report = watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)

    delivery = Delivery.objects.get()
    assert len(report.failed) == 1 and report.sent == []
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 3, 502)
    assert delivery.last_error.startswith("HTTP 502")
    assert no_sleep.calls == [1.0, 2.0]  # exponential backoff between the three tries
    assert len(hook.requests) == 3

    report = watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)  # next cron run
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("sent", 5, 200)
    assert len(hook.requests) == 5
    # each try carried the same notification
    assert len({json.loads(body)["id"] for _p, _h, body in hook.requests}) == 1

    watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)
    assert len(hook.requests) == 5  # nothing sent twice


def test_a_webhook_gives_up_after_max_attempts(acme, receiver):
    org, _budget = acme
    hook = receiver(statuses=[500] * 20)
    webhook(hook.url)
    spend("55", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)

    for _ in range(4):
        watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", watch.MAX_ATTEMPTS)
    assert len(hook.requests) == watch.MAX_ATTEMPTS


def test_an_unreachable_webhook_is_recorded(acme):
    org, _budget = acme
    webhook("http://127.0.0.1:9/never")  # the discard port: connection refused
    spend("55", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)

    watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)

    delivery = Delivery.objects.get()
    assert delivery.status == "failed" and delivery.response_status is None
    assert "URLError" in delivery.last_error


# -- the command and the page -------------------------------------------------


def test_watch_spend_reports_sends_and_lists_unpriced_models(acme, mail_channel):
    org, _budget = acme
    spend("85", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)
    spend("0", dt.datetime(2024, 3, 3, 12, tzinfo=dt.UTC), model=("mystery", "x"))
    ledger.add_usage(
        [
            ModelUsage(
                model_name="mystery",
                provider="x",
                prompt_tokens=700,
                completion_tokens=300,
                cost=None,
                cost_source="computed",
                timestamp=dt.datetime(2024, 3, 5, 12, tzinfo=dt.UTC),
            )
        ]
    )
    out = StringIO()

    call_command("watch_spend", "--today", "2024-03-28", stdout=out, no_color=True)

    lines = out.getvalue().splitlines()
    assert lines[0] == "2 new notification(s), 0 already sent before."
    assert "  [budget] Budget for Acme: 50% of $100.00 spent in March 2024" in lines
    assert sum("sent #" in line for line in lines) == 2
    assert "Models without a price (since first seen):" in lines
    mystery = next(line for line in lines if "mystery" in line)
    assert mystery.split() == ["mystery", "x", "2024-03-03", "2", "1", "1020"]

    out = StringIO()
    call_command("watch_spend", "--today", "2024-03-28", stdout=out, no_color=True)
    assert out.getvalue().splitlines()[0] == "0 new notification(s), 2 already sent before."


def test_watch_spend_exits_1_when_a_delivery_failed(acme):
    org, _budget = acme
    webhook("http://127.0.0.1:9/never")
    spend("55", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)

    with pytest.raises(CommandError) as raised:
        call_command("watch_spend", "--today", "2024-03-28", stdout=StringIO())

    assert raised.value.returncode == 1


def test_the_alerts_page_lists_what_was_sent_and_to_whom(
    acme, mail_channel, manager, django_assert_num_queries
):
    org, _budget = acme
    webhook("http://127.0.0.1:9/never/s3cr3t")
    spend("85", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)
    watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)
    client = Client()
    client.force_login(manager)
    url = reverse("watch:alerts")

    # session, user, two of permissions; page count, rows, deliveries; failures;
    # unpriced models and prices; channels
    with django_assert_num_queries(11):
        response = client.get(url)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<tr class="notification">') == 2
    assert "E-mail to cfo@acme.test, ops@acme.test: <strong>Sent</strong>" in html
    assert "Webhook to http://127.0.0.1:9/…: <strong>Failed</strong>" in html
    assert "URLError" in html
    assert "2 deliveries failed." in html
    assert "s3cr3t" not in html
    assert "Every model is priced." in html

    # more notifications: the same number of queries
    spend("20", dt.datetime(2024, 3, 3, 12, tzinfo=dt.UTC), organization=org)
    watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)
    with django_assert_num_queries(11):
        response = client.get(url)
    assert response.content.decode().count('<tr class="notification">') == 4  # + 90 %, 100 %

    failed = client.get(url, {"status": "failed", "kind": "budget"}).content.decode()
    assert failed.count('<tr class="notification">') == 4
    anomalies = client.get(url, {"kind": "anomaly"}).content.decode()
    assert anomalies.count('<tr class="notification">') == 0


def test_the_alerts_page_escapes_names(time_zone, manager):
    org = f.OrganizationFactory(name="<script>alert(1)</script>")
    f.BudgetFactory(organization=org, monthly_limit=Decimal("1.00"))
    spend("5", dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC), organization=org)
    watch.run(today=dt.date(2024, 3, 28), sleep=no_sleep)
    client = Client()
    client.force_login(manager)

    html = client.get(reverse("watch:alerts")).content.decode()

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_channel_form_encrypts_the_secret_and_checks_the_target(db):
    from usage.admin import NotificationChannelForm

    data = {"name": "hook", "kind": "webhook", "target": "ftp://x.test/h", "is_active": "on"}
    form = NotificationChannelForm(data={**data, "new_secret": "k3y"})
    assert not form.is_valid()
    assert form.errors["target"] == ["A webhook's target is its http(s) URL."]

    form = NotificationChannelForm(data={**data, "target": "https://x.test/h", "new_secret": "k3y"})
    assert form.is_valid(), form.errors
    channel = form.save()
    assert channel.get_secret() == "k3y" and "k3y" not in channel.encrypted_secret
    assert "k3y" not in NotificationChannelForm(instance=channel).as_p()

    mail_form = NotificationChannelForm(
        data={**data, "kind": "email", "target": "a@x.test, not-an-address"}
    )
    assert mail_form.errors["target"] == ["Comma-separated e-mail addresses."]
