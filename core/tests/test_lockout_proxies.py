"""Login lockout behind reverse proxies (#17.3): failures are counted per
username AND client address, the address taken from TRUSTED_PROXY_COUNT
trusted proxies' X-Forwarded-For, so failures from one address never lock
out a login from another, and a client cannot pick its address."""

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client, RequestFactory
from django.urls import reverse

from core.audit import client_ip
from core.models import AuditLog

from . import factories as f

PASSWORD = "correct-horse-battery-4711"
PROXY = "127.0.0.1"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_account():
    return f.UserFactory(username="admin", password=make_password(PASSWORD))


def via_proxy(forwarded_for):
    """A browser behind nginx: the socket is the proxy's, the header nginx's."""
    return Client(REMOTE_ADDR=PROXY, headers={"x-forwarded-for": forwarded_for})


def login(client, password):
    return client.post(reverse("admin:login"), {"username": "admin", "password": password})


@pytest.mark.django_db
def test_failures_from_one_address_behind_the_proxy_leave_another_address_alone(
    settings, admin_account
):
    settings.TRUSTED_PROXY_COUNT = 1
    attacker, owner = via_proxy("203.0.113.9"), via_proxy("198.51.100.7")

    statuses = [login(attacker, f"guess-{n}").status_code for n in range(6)]
    owner_login = login(owner, PASSWORD)

    assert statuses[-2:] == [429, 429]
    assert login(attacker, PASSWORD).status_code == 429  # locked: even the right one
    assert owner_login.status_code == 302
    assert owner.session["_auth_user_id"] == str(admin_account.pk)
    # The audit trail records the same addresses the lockout counted.
    failed = AuditLog.objects.filter(action="login_failed")
    assert set(failed.values_list("ip_address", flat=True)) == {"203.0.113.9"}
    assert AuditLog.objects.get(action="login").ip_address == "198.51.100.7"


@pytest.mark.django_db
def test_a_client_cannot_dodge_the_lockout_by_writing_x_forwarded_for(settings, admin_account):
    """Behind one proxy, only the address nginx appended counts; whatever the
    client put before it changes every time and makes no difference."""
    settings.TRUSTED_PROXY_COUNT = 1

    for n in range(5):
        login(via_proxy(f"10.9.9.{n}, 203.0.113.9"), f"guess-{n}")

    assert login(via_proxy("10.1.1.1, 203.0.113.9"), PASSWORD).status_code == 429
    assert login(via_proxy("198.51.100.7"), PASSWORD).status_code == 302


@pytest.mark.django_db
def test_without_trusted_proxies_the_header_is_ignored(settings, admin_account):
    settings.TRUSTED_PROXY_COUNT = 0
    for n in range(5):
        login(
            Client(REMOTE_ADDR="203.0.113.9", headers={"x-forwarded-for": f"10.0.0.{n}"}), "guess"
        )

    spoofed = Client(REMOTE_ADDR="203.0.113.9", headers={"x-forwarded-for": "198.51.100.7"})
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")

    assert login(spoofed, PASSWORD).status_code == 429
    assert login(elsewhere, PASSWORD).status_code == 302


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "192.0.2.1", "203.0.113.9", "192.0.2.1"),
        (1, "127.0.0.1", "203.0.113.9", "203.0.113.9"),
        (1, "127.0.0.1", "6.6.6.6, 203.0.113.9", "203.0.113.9"),
        (2, "10.0.0.2", "6.6.6.6, 203.0.113.9, 10.0.0.1", "203.0.113.9"),
        (2, "10.0.0.2", "203.0.113.9", "10.0.0.2"),  # bypassed a proxy
        (1, "127.0.0.1", "", "127.0.0.1"),
        (1, "127.0.0.1", "not-an-address", "127.0.0.1"),
        (1, "127.0.0.1", " 2001:DB8::1 ", "2001:db8::1"),
        (0, "", "", None),
    ],
)
def test_client_ip_takes_the_address_the_outermost_trusted_proxy_saw(
    settings, proxies, remote, forwarded, expected
):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)

    assert client_ip(request) == expected
