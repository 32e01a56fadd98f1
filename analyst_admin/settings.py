"""Analyst Admin settings: one module, read from the environment.

Every variable has a safe default for a local run on the embedded SQLite
database; README.md's configuration table lists them all.
"""

import datetime as dt
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env file beside manage.py, when there is one; the environment wins.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Settings that would run the site insecurely stop the start with one line
# (ImproperlyConfigured) instead of a warning nobody reads.
TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off", ""}


def strict_bool(name, default):
    """A boolean variable; anything but true/false/1/0/yes/no/on/off refuses
    to start (django-environ would read "ture" as false)."""
    raw = env.str(name, default=None)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: set it to true or false.")


DEBUG = strict_bool("DEBUG", default=False)
# Used only with DEBUG on (a local run); with DEBUG off it refuses to start.
LOCAL_SECRET_KEY = "django-insecure-local-only-set-SECRET_KEY-in-production-0123456789abcdef"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default="").strip()
if not SECRET_KEY or SECRET_KEY == LOCAL_SECRET_KEY or SECRET_KEY.startswith("django-insecure"):
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set (or is the local-only default) and DEBUG is off: set "
            'SECRET_KEY to 50+ random characters (python -c "import secrets; '
            'print(secrets.token_urlsafe(50))"), or DEBUG=true for a local run.'
        )
    SECRET_KEY = LOCAL_SECRET_KEY
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_filters",
    # Content-Security-Policy header (its system checks and template tags)
    "csp",
    # login throttling: locks an account out after repeated failures
    "axes",
    # the ingest API; listed so its Swagger UI assets are served locally, not from a CDN
    "ninja",
    "core",
    "chats",
    "usage",
    "reports",
    "analytics",  # no models: the quality, activity and text-to-SQL pages
    # no models: the importers, the ingest API and the demo data (on top of the four)
    "ingest",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # a database that cannot be reached answers 503 with a plain page
    "core.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # dashboard, quality and report reads from a read replica when configured
    "core.replicas.ReplicaReadMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # last, as django-axes asks: turns a lockout into the 429 page
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "analyst_admin.urls"
WSGI_APPLICATION = "analyst_admin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: the embedded SQLite file unless DATABASE_URL names another.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The stock backend, recovering from file faults (a missing file is
    # never re-created empty; read-only WAL side files are repaired).
    DATABASES["default"]["ENGINE"] = "analyst_admin.sqlite3"
    # WAL lets the dashboards read while an import writes; IMMEDIATE avoids
    # "database is locked" on write transactions that start as reads.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# Read replicas (PostgreSQL streaming replicas; core/replicas.py): the
# dashboard, quality and report pages read from a healthy one; writes, reads
# in a writing transaction and a client that wrote in the last
# REPLICA_PIN_SECONDS use the primary.
REPLICA_URLS = env.list("DATABASE_REPLICA_URLS", default=[])
for _n, _url in enumerate(REPLICA_URLS):
    _replica = environ.Env.db_url_config(_url)
    _replica["CONN_MAX_AGE"] = DATABASES["default"].get("CONN_MAX_AGE", 0)
    _replica["CONN_HEALTH_CHECKS"] = True
    # a replica that is down is skipped after this many seconds, not 2 minutes
    _replica.setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("REPLICA_CONNECT_TIMEOUT", default=2)
    )
    # the test run has one database; a replica there is the same one
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES[f"replica_{_n}"] = _replica
DATABASE_ROUTERS = ["core.replicas.ReplicaRouter"] if REPLICA_URLS else []
REPLICA_MAX_LAG_SECONDS = env.float("REPLICA_MAX_LAG_SECONDS", default=30.0)
REPLICA_PIN_SECONDS = env.int("REPLICA_PIN_SECONDS", default=10)
REPLICA_CHECK_SECONDS = env.float("REPLICA_CHECK_SECONDS", default=5.0)
REPLICA_READ_PATHS = ["/admin/dashboards/", "/admin/quality/", "/admin/reports/"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "core.User"
# django-axes checks the lockout before the password is tried.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Cache: Redis when REDIS_URL is set, else local memory.
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Stored times are UTC; TIME_ZONE is the zone pages display and days are cut in.
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # vendor/plotly.min.js from the pinned plotly package
    "core.staticfinders.PlotlyFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed names in production (collectstatic writes them and
    # STATIC_ROOT/staticfiles.json); plain in DEBUG. Without the manifest
    # (collectstatic not run yet) pages still render: the storage hands out
    # plain names, with a warning in the log, and whitenoise serves the files
    # from the app folders instead of STATIC_ROOT.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "analyst_admin.staticfiles.ManifestOrPlainStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG or not (Path(STATIC_ROOT) / "staticfiles.json").is_file()

LOGIN_URL = "admin:login"

# Mail: the spend watch's notifications (manage.py watch_spend) go by SMTP.
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="analyst-admin@localhost")
# The site's address, put before the links in notifications (https://admin.example).
SITE_URL = env("SITE_URL", default="")

# Ingest API (/api/v1/): the largest request body accepted, in bytes; larger
# ones are answered 413 before they are read (ingest/api/errors.py). Batches are
# also capped at 1,000 items (ingest/api/schemas.py).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=5 * 1024 * 1024)

# Security: secure by default outside DEBUG. The reverse proxy terminating
# TLS sets X-Forwarded-Proto on every request (docs/DEPLOY.md's nginx does,
# replacing whatever the client sent), so a request that reached the proxy
# over https is https here and only plain-http ones are redirected; /health/
# is exempt. A local run over plain http sets SECURE_SSL_REDIRECT=false.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = strict_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = strict_bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Load balancers probe /health/ over plain http.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]

# Content-Security-Policy (django-csp): scripts and everything else only from
# this site (plotly.js is a static file; chart data sits in json_script
# blocks, which are data, not scripts). Styles also 'unsafe-inline': plotly
# injects <style> rules and style attributes as it draws, as the admin does.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        **({"report-uri": [env("CSP_REPORT_URI")]} if env("CSP_REPORT_URI", default="") else {}),
    }
}

# Login throttling (django-axes, attempts kept in the database so every
# gunicorn worker and host sees them): LOGIN_FAILURE_LIMIT failures for one
# username from one address lock that pair out for LOGIN_LOCKOUT_MINUTES
# (429 page); a successful login clears the count. Unlock early with
# ``manage.py axes_reset_username NAME``. Logins and failures go to the one
# audit trail (core.signals), so axes keeps no access log of its own.
#
# The address is the client's, not the proxy's: TRUSTED_PROXY_COUNT reverse
# proxies (nginx on the same machine: 1) each append to X-Forwarded-For, and
# core.audit.client_ip takes the address the outermost one saw, for the
# lockout and the audit trail alike. 0 (no proxy) ignores the header. So
# failures from one address lock out that username from that address only.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(f"TRUSTED_PROXY_COUNT={TRUSTED_PROXY_COUNT} must be 0 or more.")
AXES_CLIENT_IP_CALLABLE = "core.audit.client_ip"
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "429.html"
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False

# Secrets stored in the database (app users' database passwords, webhook
# signing secrets: every model's ``encrypted_fields``) are encrypted with
# Fernet (core.crypto). Comma-separated keys: the first
# encrypts, all decrypt, so a new key goes first and the old one stays until
# ``manage.py rotate_encryption_key`` has re-encrypted every value. Unset, a
# key derived from SECRET_KEY is used (fine locally; check --deploy warns).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # 403s: one warning line each, no traceback (analyst_admin/log_filters.py)
        "quiet_permission_denied": {"()": "analyst_admin.log_filters.QuietPermissionDenied"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"filters": ["quiet_permission_denied"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
