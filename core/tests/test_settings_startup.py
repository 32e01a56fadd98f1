"""Settings that fail loudly (#14 point 5): with DEBUG off, a missing or
default SECRET_KEY, and a DEBUG value that is not a boolean, stop every
start (manage.py, gunicorn, WSGI) with one ImproperlyConfigured line.

Each case runs ``manage.py check`` in a subprocess with a production
environment, so the test process's own settings never leak in.
"""

import pytest

from .test_production import manage, production_env


def last_line(done):
    return done.stderr.strip().splitlines()[-1]


def test_debug_off_without_secret_key_refuses_to_start():
    done = manage("check", env=production_env(SECRET_KEY=None))

    assert done.returncode != 0
    assert last_line(done).startswith(
        "django.core.exceptions.ImproperlyConfigured: SECRET_KEY is not set"
    )
    assert "secrets.token_urlsafe(50)" in last_line(done)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "   ",
        "django-insecure-local-only-set-SECRET_KEY-in-production-0123456789abcdef",
        "django-insecure-k8s7d6f5g4h3j2k1l0",
    ],
)
def test_debug_off_with_an_empty_or_default_secret_key_refuses_to_start(key):
    done = manage("check", env=production_env(SECRET_KEY=key))

    assert done.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in last_line(done)


@pytest.mark.parametrize("value", ["maybe", "ture", "2", "enabled"])
def test_a_debug_value_that_is_not_a_boolean_refuses_to_start(value):
    done = manage("check", env=production_env(DEBUG=value))

    assert done.returncode != 0
    assert last_line(done) == (
        f"django.core.exceptions.ImproperlyConfigured: DEBUG={value!r} is not a boolean: "
        "set it to true or false."
    )


@pytest.mark.parametrize("value", ["false", "False", "0", "no", "off"])
def test_debug_off_spellings_start_with_a_secret_key(value):
    done = manage("check", env=production_env(DEBUG=value))

    assert done.returncode == 0, done.stderr


def test_debug_on_starts_without_a_secret_key():
    done = manage("check", env=production_env(DEBUG="true", SECRET_KEY=None))

    assert done.returncode == 0, done.stderr
