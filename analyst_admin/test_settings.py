"""Settings for the test suite (pyproject.toml's DJANGO_SETTINGS_MODULE).

The site's own settings with DEBUG off, as in production, and a throwaway
SECRET_KEY when none is set: with DEBUG off the settings refuse to start
without one. Put in the environment before the settings read it, so the
commands the tests run in subprocesses inherit it too.
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-" + "k" * 50)

from analyst_admin.settings import *  # noqa: E402, F403

# The test client speaks plain http; test_production checks the redirect.
SECURE_SSL_REDIRECT = False
