"""Production settings: check --deploy, cookies, HSTS, CSRF, the
Content-Security-Policy (with the charts drawing under it in Chromium),
login throttling, the health endpoint, gunicorn's configuration and
static files through whitenoise under gunicorn.

Settings that depend on the environment are read in a subprocess given a
production environment, so the test process's own settings never leak in.
"""

import contextlib
import datetime as dt
import json
import os
import runpy
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import OperationalError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from core.models import AuditLog

from . import factories as f

BASE_DIR = Path(settings.BASE_DIR)
PASSWORD = "correct-horse-battery-4711"
NO_ISSUES = "System check identified no issues (0 silenced)."


def production_env(**overrides):
    """The environment of the issue's ``check --deploy`` command: only what
    a production host sets, nothing of this test process's configuration."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(Path.home())),
        "DJANGO_SETTINGS_MODULE": "analyst_admin.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "admin.example.com",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def manage(*args, env):
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # Login tests hash passwords many times; the hasher is not what they test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="module", autouse=True)
def restore_migration_data(django_db_blocker):
    """After this module's transactional tests, give the next modules back the
    rows the migrations made (content types, permissions, the role groups).

    A transactional test with serialized_rollback ends with a flush and
    counts on the next test to reload the migrations' rows; a test driving
    Playwright cannot (its greenlet has a DatabaseWrapper of its own, see
    usage/tests/test_dashboard_browser.py), so it would find no groups.
    """
    yield
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    with django_db_blocker.unblock():
        contents = getattr(connection, "_test_serialized_contents", None)
        if contents and not ContentType.objects.exists():
            connection.creation.deserialize_db_from_string(contents)


# check --deploy -------------------------------------------------------------


def test_check_deploy_reports_no_issues_in_production_environment():
    done = manage("check", "--deploy", env=production_env())

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == NO_ISSUES
    assert "WARNINGS" not in done.stderr


def documented_production_env():
    """The variables docs/DEPLOY.md's "Environment" section lists, with its
    placeholders filled in, and nothing else (README's "Production" list is a
    subset of it)."""
    text = (BASE_DIR / "docs" / "DEPLOY.md").read_text()
    block = text.split("## 2. Environment", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    filled = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": "postgres://analyst:password@127.0.0.1:5432/analyst_admin",
    }
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(Path.home())),
        "DJANGO_SETTINGS_MODULE": "analyst_admin.settings",
    }
    for line in block.splitlines():
        name, _, value = line.partition("=")
        if not value:
            continue
        value = value.split("  #", 1)[0].strip()
        env[name] = filled[name] if "<" in value else value
    return env


def test_check_deploy_reports_no_issues_with_the_documented_settings():
    """Exactly what the docs list (no SECURE_SSL_REDIRECT among them): no
    security.W008, no other issue."""
    env = documented_production_env()
    assert "SECURE_SSL_REDIRECT" not in env
    assert {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SECURE_HSTS_SECONDS"} <= set(env)

    done = manage("check", "--deploy", env=env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == NO_ISSUES, done.stderr


def test_ssl_redirect_is_on_in_production_unless_turned_off():
    code = "import django; django.setup(); from django.conf import settings as s; "
    code += "print(s.SECURE_SSL_REDIRECT)"

    def redirect(**env):
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-c", code],
            cwd=BASE_DIR,
            env=production_env(**{"SECURE_SSL_REDIRECT": None, **env}),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    assert redirect() == "True"
    assert redirect(SECURE_SSL_REDIRECT="false") == "False"
    assert redirect(DEBUG="true") == "False"


def test_check_deploy_warns_when_the_encryption_keys_are_unset():
    done = manage("check", "--deploy", env=production_env(FIELD_ENCRYPTION_KEYS=None))

    output = done.stdout + done.stderr
    assert "core.W001" in output
    assert "FIELD_ENCRYPTION_KEYS is not set" in output
    assert "identified 1 issue (0 silenced)" in output


def test_check_deploy_catches_debug_left_on():
    """The same command notices a production mistake: it is not a rubber stamp."""
    done = manage("check", "--deploy", env=production_env(DEBUG="true"))

    assert "security.W018" in done.stdout + done.stderr


def test_check_refuses_a_malformed_encryption_key():
    done = manage("check", env=production_env(FIELD_ENCRYPTION_KEYS="not-a-key"))

    assert done.returncode != 0
    assert "core.E010" in done.stderr


PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "DEBUG": s.DEBUG,
    "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "SESSION_COOKIE_HTTPONLY": s.SESSION_COOKIE_HTTPONLY,
    "CSRF_COOKIE_SECURE": s.CSRF_COOKIE_SECURE,
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": s.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "SECURE_PROXY_SSL_HEADER": s.SECURE_PROXY_SSL_HEADER,
    "X_FRAME_OPTIONS": s.X_FRAME_OPTIONS,
    "staticfiles": s.STORAGES["staticfiles"]["BACKEND"],
    "MIDDLEWARE": s.MIDDLEWARE,
    "AUTHENTICATION_BACKENDS": s.AUTHENTICATION_BACKENDS,
}))
"""


def test_production_environment_turns_on_secure_cookies_hsts_and_manifest_static():
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=BASE_DIR,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    values = json.loads(done.stdout)

    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31_536_000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["staticfiles"] == "analyst_admin.staticfiles.ManifestOrPlainStorage"
    middleware = values["MIDDLEWARE"]
    for name in (
        "django.middleware.csrf.CsrfViewMiddleware",
        "csp.middleware.CSPMiddleware",
        "core.middleware.DatabaseUnavailableMiddleware",
    ):
        assert name in middleware
    # whitenoise right after SecurityMiddleware (and the fault middleware),
    # axes last, as their documentation asks.
    assert middleware.index("whitenoise.middleware.WhiteNoiseMiddleware") <= 2
    assert middleware[-1] == "axes.middleware.AxesMiddleware"
    assert values["AUTHENTICATION_BACKENDS"][0] == "axes.backends.AxesStandaloneBackend"


# Headers in process ---------------------------------------------------------


def _directives(header):
    parts = (part.strip().split() for part in header.split(";") if part.strip())
    return {words[0]: words[1:] for words in parts}


@pytest.mark.django_db
def test_pages_send_a_content_security_policy_without_inline_scripts(client):
    response = client.get(reverse("admin:login"))

    policy = _directives(response["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" in policy["style-src"]  # plotly's injected styles
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_https_responses_carry_hsts(client, settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = settings.SECURE_HSTS_PRELOAD = True

    secure = client.get(reverse("admin:login"), secure=True)
    plain = client.get(reverse("admin:login"))

    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "Strict-Transport-Security" not in plain


@pytest.mark.django_db
def test_ssl_redirect_spares_the_health_check(client, settings):
    settings.SECURE_SSL_REDIRECT = True

    page = client.get("/admin/login/")
    health = client.get("/health/")

    assert page.status_code == 301
    assert page["Location"] == "https://testserver/admin/login/"
    assert health.status_code == 200


@pytest.mark.django_db
def test_login_cookies_are_secure_and_http_only(client, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    f.UserFactory(username="ops", password=make_password(PASSWORD))

    response = client.post(reverse("admin:login"), {"username": "ops", "password": PASSWORD})

    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["secure"] is True
    assert session["httponly"] is True
    assert session["samesite"] == "Lax"


@pytest.mark.django_db
def test_a_post_without_csrf_token_is_refused():
    f.UserFactory(username="ops", password=make_password(PASSWORD))
    client = Client(enforce_csrf_checks=True)

    response = client.post(reverse("admin:login"), {"username": "ops", "password": PASSWORD})

    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


# Login throttling -------------------------------------------------------------


def _login(client, username, password):
    return client.post(reverse("admin:login"), {"username": username, "password": password})


@pytest.fixture
def ops():
    return f.UserFactory(username="ops", password=make_password(PASSWORD))


@pytest.mark.django_db
def test_five_failures_lock_the_account_out_even_for_the_right_password(client, ops):
    statuses = [_login(client, "ops", f"wrong-{n}").status_code for n in range(5)]

    locked = _login(client, "ops", PASSWORD)

    # 4 x the form again; the 5th failure reaches the limit and is answered 429.
    assert statuses == [200, 200, 200, 200, 429]
    assert locked.status_code == 429
    assert "Too many failed login attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Every attempt is in the audit trail; each one at or past the limit
    # (the 5th and the 6th) also as a lockout.
    assert AuditLog.objects.filter(action="login_failed").count() == 6
    assert AuditLog.objects.filter(action="login_locked_out").count() == 2
    assert not AuditLog.objects.filter(action="login").exists()


@pytest.mark.django_db
def test_lockout_is_per_account_and_address(client, ops):
    other = f.UserFactory(username="other", password=make_password(PASSWORD))
    for n in range(5):
        _login(client, "ops", f"wrong-{n}")
    same_address, elsewhere = Client(), Client(REMOTE_ADDR="198.51.100.20")

    other_account = _login(same_address, "other", PASSWORD)
    same_account_elsewhere = _login(elsewhere, "ops", PASSWORD)

    assert other_account.status_code == 302
    assert same_address.session["_auth_user_id"] == str(other.pk)
    assert same_account_elsewhere.status_code == 302
    assert elsewhere.session["_auth_user_id"] == str(ops.pk)


@pytest.mark.django_db
def test_a_successful_login_resets_the_failure_count(client, ops):
    for n in range(4):
        _login(client, "ops", f"wrong-{n}")
    assert _login(client, "ops", PASSWORD).status_code == 302
    client.post(reverse("admin:logout"))

    for n in range(4):
        assert _login(client, "ops", f"again-{n}").status_code == 200

    assert _login(client, "ops", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_the_lockout_ends_after_fifteen_minutes(client, ops):
    for n in range(5):
        _login(client, "ops", f"wrong-{n}")
    assert _login(client, "ops", PASSWORD).status_code == 429

    # 16 minutes later (the attempts' clock moved back instead of ours).
    AccessAttempt.objects.update(attempt_time=timezone.now() - dt.timedelta(minutes=16))

    assert dt.timedelta(minutes=15) == settings.AXES_COOLOFF_TIME
    assert _login(client, "ops", PASSWORD).status_code == 302


# Health ---------------------------------------------------------------------


@pytest.mark.django_db
def test_health_answers_ok_without_login(client):
    response = client.get("/health/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
@pytest.mark.rollups_unchecked  # every query fails until the test ends
def test_health_answers_503_when_the_database_fails(client, monkeypatch):
    def refuse(self, sql, params=None):
        raise OperationalError("connection refused")

    monkeypatch.setattr("django.db.backends.utils.CursorWrapper.execute", refuse)

    response = client.get("/health/")

    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}


@pytest.mark.django_db
def test_health_takes_only_get(client):
    assert client.post("/health/").status_code == 405


# gunicorn -------------------------------------------------------------------


def _gunicorn_config(monkeypatch, **env):
    for name in ("WEB_CONCURRENCY", "GUNICORN_TIMEOUT", "FORWARDED_ALLOW_IPS", "GUNICORN_BIND"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(BASE_DIR / "gunicorn.conf.py"))


def test_gunicorn_config_reads_workers_timeout_and_proxies_from_the_environment(monkeypatch):
    config = _gunicorn_config(
        monkeypatch,
        WEB_CONCURRENCY="3",
        GUNICORN_TIMEOUT="45",
        FORWARDED_ALLOW_IPS="10.0.0.5",
        GUNICORN_BIND="0.0.0.0:9000",
    )

    assert config["workers"] == 3
    assert config["timeout"] == 45
    assert config["forwarded_allow_ips"] == "10.0.0.5"
    assert config["bind"] == "0.0.0.0:9000"
    assert config["wsgi_app"] == "analyst_admin.wsgi:application"


def test_gunicorn_config_defaults(monkeypatch):
    config = _gunicorn_config(monkeypatch)

    assert config["workers"] == os.cpu_count() * 2 + 1
    assert config["timeout"] == 30
    assert config["accesslog"] == "-"
    assert config["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert config["bind"] == "127.0.0.1:8000"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url, headers=None, timeout=30):
    """(status, headers, body) of a GET, following no redirect."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@contextlib.contextmanager
def gunicorn_server(env, timeout=30):
    """gunicorn with the repository's gunicorn.conf.py on a free loopback
    port; yields its base URL and stops it on exit."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=BASE_DIR,
        env={**env, "ALLOWED_HOSTS": "127.0.0.1,localhost"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.poll() is not None else ""
                raise RuntimeError(f"gunicorn did not start: {output}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory):
    """collectstatic with the production (manifest, compressed) storage."""
    root = tmp_path_factory.mktemp("staticfiles")
    env = production_env(STATIC_ROOT=str(root), DATABASE_URL=f"sqlite:///{root}/unused.db")
    done = manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
    assert done.returncode == 0, done.stderr
    return root


def test_gunicorn_serves_hashed_static_files_through_whitenoise(collected_static, tmp_path):
    manifest = json.loads((collected_static / "staticfiles.json").read_text())
    plotly = manifest["paths"]["vendor/plotly.min.js"]
    env = production_env(
        STATIC_ROOT=str(collected_static), DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3"
    )
    # /health/ is ok only on a migrated database.
    assert manage("migrate", "--noinput", env=env).returncode == 0

    with gunicorn_server(env) as base:
        proto = {"X-Forwarded-Proto": "https"}
        status, headers, body = get(f"{base}/static/{plotly}", {**proto, "Accept-Encoding": "gzip"})
        plain_http = get(f"{base}/admin/login/")
        health = get(f"{base}/health/")
        page = get(f"{base}/admin/login/", proto)

    assert plotly != "vendor/plotly.min.js"  # a hashed name
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert "immutable" in headers["Cache-Control"]
    assert len(body) > 100_000
    # Over http (no proxy header) pages redirect to https; the health check does not.
    assert plain_http[0] == 301
    assert plain_http[1]["Location"] == f"https://{base.removeprefix('http://')}/admin/login/"
    assert health[0] == 200
    # Over https (the proxy says so): the page, with HSTS and the CSP.
    assert page[0] == 200
    assert page[1]["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "script-src 'self'" in page[1]["Content-Security-Policy"]


# The charts under the CSP, in Chromium --------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_dashboard_charts_draw_under_the_csp_without_violations(live_server, page, login):
    from usage import ledger
    from usage.models import ModelUsage

    f.UserFactory(username="boss", is_superuser=True, password=make_password(PASSWORD))
    user = f.AppUserFactory()
    now = timezone.now()
    ledger.add_usage(
        ModelUsage(
            user=user,
            model_name=model,
            provider=provider,
            prompt_tokens=1000 + day * 10,
            completion_tokens=400,
            cost=Decimal("0.0100"),
            timestamp=now - dt.timedelta(days=day),
        )
        for day in range(10)
        for model, provider in (("gpt-4o", "openai"), ("claude-3-5-sonnet", "anthropic"))
    )
    messages = []
    page.on("console", lambda message: messages.append(message.text))
    # Collects every CSP violation the page reports, from the first script on.
    page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation', e => "
        "window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    login(page, "boss", PASSWORD)

    response = page.goto(f"{live_server.url}/admin/dashboards/?period=30d")
    page.wait_for_function(
        "document.querySelectorAll('[data-chart]').length > 0 && "
        "[...document.querySelectorAll('[data-chart]')].every(p => p.querySelector('svg'))",
        timeout=20_000,
    )

    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert page.locator("[data-chart] svg.main-svg").count() >= 3
    assert page.evaluate("window.__violations") == []
    assert [m for m in messages if "Content Security Policy" in m] == []


# Without collectstatic ------------------------------------------------------


def test_pages_render_and_static_files_are_served_before_collectstatic(tmp_path):
    """A fresh clone started without collectstatic (no STATIC_ROOT, no
    manifest) serves its pages, unhashed static names from the app folders,
    instead of answering 500 "Missing staticfiles manifest entry"."""
    env = production_env(
        STATIC_ROOT=str(tmp_path / "never-collected"),
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
    )
    assert manage("migrate", "--noinput", env=env).returncode == 0

    proto = {"X-Forwarded-Proto": "https"}
    with gunicorn_server(env) as base:
        status, _headers, body = get(f"{base}/admin/login/", proto)
        css = get(f"{base}/static/admin/css/base.css", proto)

    assert status == 200, body[:2000]
    assert b'href="/static/admin/css/base.css"' in body
    assert css[0] == 200
    assert b"body" in css[2]
