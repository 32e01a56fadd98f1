"""What every benchmark sets before Django starts: the site with DEBUG off, as
in production, over plain http on loopback, with a throwaway secret key
(settings refuse to start without one)."""

import os
import secrets

os.environ.setdefault("SECRET_KEY", f"bench-only-{secrets.token_urlsafe(40)}")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SECURE_COOKIES", "false")
