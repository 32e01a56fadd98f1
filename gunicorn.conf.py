"""gunicorn settings for Analyst Admin, read from the environment.

gunicorn loads this file from the working directory by default, so
``gunicorn analyst_admin.wsgi`` in the project folder uses it; command-line
flags (as in scripts/demo) override it. docs/DEPLOY.md shows it behind nginx.
"""

import multiprocessing
import os


def _int(name, default):
    return int(os.environ.get(name, default))


wsgi_app = "analyst_admin.wsgi:application"

# Where to listen: the reverse proxy talks to this address.
bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")

# Sync workers, one request each: (2 x cores) + 1 unless WEB_CONCURRENCY says.
workers = _int("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1)
threads = _int("GUNICORN_THREADS", 1)

# A request running longer than this is killed and its worker restarted;
# dashboards read roll-ups and CSV exports stream, so 30 s is generous.
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Idle keep-alive seconds: longer than nothing, shorter than the proxy's.
keepalive = _int("GUNICORN_KEEPALIVE", 5)

# Recycle workers now and then, so a slow leak never grows without bound.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 200)

# Logs to stdout/stderr for the process manager (systemd, docker) to keep.
# The access log has the request time (%(M)s ms) and the client address the
# proxy forwarded; query strings may carry filters, never secrets.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = (
    '%({x-forwarded-for}i)s %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
)

# Proxies whose X-Forwarded-Proto (https) gunicorn believes; the proxy on
# the same machine by default. A comma-separated list, or "*" behind a
# private load balancer that nothing else can reach.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Off by default, so `kill -HUP` (systemctl reload) brings up workers with
# new code and lets the old ones finish. GUNICORN_PRELOAD=true loads the app
# once in the master instead (less memory, faster start), but then only a
# full restart picks up new code.
preload_app = os.environ.get("GUNICORN_PRELOAD", "false").lower() in {"1", "true", "yes"}
