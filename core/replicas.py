"""Read replicas: dashboard, quality and export reads go to a healthy replica.

Set ``DATABASE_REPLICA_URLS`` (comma-separated) and the settings add one
database alias per URL (``replica_0``, ``replica_1``, …) and this router.
What goes where:

- every write, and every read inside a transaction on the primary (a read
  that decides a write must see the primary's rows): the primary;
- reads of a request to the read-mostly pages (``REPLICA_READ_PATHS``:
  the dashboards, quality and report pages and their CSV exports), made
  while ``ReplicaReadMiddleware`` has them on: a replica, unless the user
  wrote in the last ``REPLICA_PIN_SECONDS`` (read-your-writes: a signed
  cookie set by any unsafe request pins them to the primary);
- a replica that does not answer within its connect timeout, or whose
  replay lags more than ``REPLICA_MAX_LAG_SECONDS`` behind (from
  ``pg_last_xact_replay_timestamp()``), is skipped until the next check
  (``REPLICA_CHECK_SECONDS``); with none healthy, reads go to the primary.

Replicas stay out of migrations. Without ``DATABASE_REPLICA_URLS`` nothing
of this runs.
"""

import itertools
import logging
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.core import signing
from django.db import DatabaseError, connections

logger = logging.getLogger(__name__)

PRIMARY = "default"
PIN_COOKIE = "aa_primary"
PIN_SALT = "core.replicas.pin"

_replica_reads = ContextVar("replica_reads", default=False)

# The lag of a replica that is replaying: 0 while it has replayed all it
# received (an idle primary sends nothing, and nothing is behind), else the
# age of the last transaction it replayed.
LAG_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()
            THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
       END
"""


def replica_aliases():
    """The database aliases of the configured replicas, in order."""
    return [alias for alias in settings.DATABASES if alias.startswith("replica_")]


@contextmanager
def replica_reads(enabled=True):
    """Within the block, reads outside a primary transaction may go to a replica."""
    token = _replica_reads.set(enabled)
    try:
        yield
    finally:
        _replica_reads.reset(token)


class Health:
    """Each replica's last check (healthy?, when), shared by a process's threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._checked = {}  # alias → (healthy, monotonic time)
        self._turn = itertools.count()

    def reset(self):
        with self._lock:
            self._checked.clear()

    def lag(self, alias):
        """Seconds the replica is behind, or None when it cannot be asked."""
        connection = connections[alias]
        try:
            with connection.cursor() as cursor:
                cursor.execute(LAG_SQL)
                in_recovery, lag = cursor.fetchone()
        except DatabaseError as error:
            logger.warning("replica %s skipped: %s", alias, str(error).splitlines()[0])
            connection.close()
            return None
        if not in_recovery:
            # Promoted or misconfigured: still a copy, but nothing says how old.
            logger.warning("replica %s is not in recovery; reading from it anyway", alias)
            return 0.0
        return float(lag)

    def healthy(self, alias):
        now = time.monotonic()
        with self._lock:
            checked = self._checked.get(alias)
        if checked and now - checked[1] < settings.REPLICA_CHECK_SECONDS:
            return checked[0]
        lag = self.lag(alias)
        healthy = lag is not None and lag <= settings.REPLICA_MAX_LAG_SECONDS
        if lag is not None and not healthy:
            logger.warning("replica %s skipped: %.1f s behind", alias, lag)
        with self._lock:
            self._checked[alias] = (healthy, now)
        return healthy

    def pick(self):
        """A healthy replica (round robin), or None."""
        aliases = replica_aliases()
        if not aliases:
            return None
        start = next(self._turn)
        for n in range(len(aliases)):
            alias = aliases[(start + n) % len(aliases)]
            if self.healthy(alias):
                return alias
        return None


health = Health()


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        if not _replica_reads.get():
            return PRIMARY
        if connections[PRIMARY].in_atomic_block:
            return PRIMARY
        return health.pick() or PRIMARY

    def db_for_write(self, model, **hints):
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        # Every alias holds the same data (replicas are copies of the primary).
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == PRIMARY


def pinned(request):
    """Did this client write within REPLICA_PIN_SECONDS (signed cookie)?"""
    value = request.COOKIES.get(PIN_COOKIE)
    if not value:
        return False
    try:
        signing.get_cookie_signer(salt=PIN_SALT).unsign(value, max_age=settings.REPLICA_PIN_SECONDS)
    except signing.BadSignature:
        return False
    return True


class ReplicaReadMiddleware:
    """Turns replica reads on for GET/HEAD requests to the read-mostly pages of
    a client that has not just written; pins a client that writes."""

    SAFE = ("GET", "HEAD", "OPTIONS")

    def __init__(self, get_response):
        self.get_response = get_response
        self.paths = tuple(settings.REPLICA_READ_PATHS)

    def __call__(self, request):
        use_replica = (
            bool(replica_aliases())
            and request.method in self.SAFE
            and request.path.startswith(self.paths)
            and not pinned(request)
        )
        with replica_reads(use_replica):
            response = self.get_response(request)
        if request.method not in self.SAFE and replica_aliases():
            response.set_cookie(
                PIN_COOKIE,
                signing.get_cookie_signer(salt=PIN_SALT).sign("1"),
                max_age=settings.REPLICA_PIN_SECONDS,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        return response
