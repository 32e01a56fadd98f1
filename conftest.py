"""Project-wide pytest fixtures: static files, and a browser for end-to-end tests;
the roll-up guard every database test passes through."""

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parent / "test-artifacts"
# The machine has no network but package registries: keep Chromium quiet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "rollups_unchecked: the test leaves the quality roll-ups unequal to the raw "
        "rows (a repair test), or every query failing (a fault test), on purpose; the "
        "guard below skips it",
    )


def _uses_database(item):
    fixtures = getattr(item, "fixturenames", ())
    return item.get_closest_marker("django_db") is not None or bool(
        {"db", "transactional_db", "live_server"} & set(fixtures)
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After every test that wrote to the database: the quality roll-ups
    (chats.rollups: code executions; chats.feedback_rollups: ratings and
    answers) must equal a recomputation from the raw rows. So a writer that
    bypasses them (a raw UPDATE, a new write path) fails the test that
    exercises it, whichever app it is in."""
    result = yield
    if _uses_database(item) and item.get_closest_marker("rollups_unchecked") is None:
        from chats import feedback_rollups, rollups
        from chats.models import (
            CodeExecution,
            ExecutionRollup,
            FeedbackRollup,
            Message,
            MessageFeedback,
        )

        if CodeExecution.objects.exists() or ExecutionRollup.objects.exists():
            wrong = rollups.differences()
            assert not wrong, (
                "code execution roll-ups unequal to the raw rows (a writer bypassed "
                f"chats.rollups?): {wrong[:5]}"
            )
        if (
            Message.objects.exists()
            or MessageFeedback.objects.exists()
            or FeedbackRollup.objects.exists()
        ):
            wrong = feedback_rollups.differences()
            assert not wrong, (
                "feedback roll-ups unequal to the raw rows (a writer bypassed "
                f"chats.feedback_rollups?): {wrong[:5]}"
            )
    return result


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # The manifest storage needs collectstatic; tests render templates without it.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright.

    Skipped where Chromium is not installed, except in CI (CI=true), where
    its absence is a failure: .ci/run installs it.
    """
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found: install Debian's chromium package"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's
    # own ORM calls (fixtures, assertions) are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot():
    """Save a full-page screenshot under test-artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)

    def take(page, name):
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def login(live_server):
    """Log a staff account into a browser page through the admin login form."""

    def log_in(page, username, password):
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_load_state()

    return log_in
