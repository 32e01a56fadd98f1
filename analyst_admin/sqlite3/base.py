"""Django's SQLite backend, made to recover from file-system faults by itself.

Two faults of the stock backend (#17.4):

- A database file that goes missing (deleted, moved, an unmounted volume)
  is silently re-created empty by the next connection: every page then
  answers 503 ("no such table") while the real file is shadowed. Once this
  process has opened the file, it reopens it with ``mode=rw`` only, which
  never creates one: the connection fails (503) until the file is back, and
  nothing has to be cleaned up afterwards.
- SQLite creates the WAL side files (``-wal``, ``-shm``) with the database
  file's permissions. While the file is briefly read-only they are created
  read-only and stay so after the file is writable again, so every write
  fails ("attempt to write a readonly database") until a restart. Before
  each connection, side files less writable than the database file get its
  permissions back; and the fault middleware closes a connection after a
  database error, so the next request reconnects through here.
"""

import os
import stat
import urllib.parse

from django.db.backends.sqlite3 import base

SIDE_FILES = ("-wal", "-shm")
WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH

# Database files this process has opened: they must exist from now on.
_opened = set()


def file_path(name):
    """The file a NAME opens, or None for in-memory and URI names."""
    name = str(name)
    if name in ("", ":memory:") or name.startswith("file:") or "mode=memory" in name:
        return None
    return os.path.abspath(name)


def repair_side_files(path):
    """Give -wal/-shm files the database file's write bits when they lack them."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    for suffix in SIDE_FILES:
        side = path + suffix
        try:
            side_mode = stat.S_IMODE(os.stat(side).st_mode)
            if mode & WRITE_BITS & ~side_mode:
                os.chmod(side, side_mode | (mode & WRITE_BITS))
        except OSError:
            continue  # absent, or not ours to change: SQLite reports it


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        path = file_path(conn_params["database"])
        if path is not None:
            repair_side_files(path)
            if path in _opened:
                # Never create it again: a missing file fails the connection.
                uri = "file:" + urllib.parse.quote(path) + "?mode=rw"
                conn_params = {**conn_params, "database": uri, "uri": True}
        connection = super().get_new_connection(conn_params)
        if path is not None:
            _opened.add(path)
        return connection
