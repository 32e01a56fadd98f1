"""Reading an application's own database: SQLite (stdlib ``sqlite3``) or
PostgreSQL (psycopg 3, a server-side cursor), in batches.

Both readers hand out rows as dicts of what their driver returns, except
that PostgreSQL's json, jsonb, uuid and inet come back as text, as SQLite's
do, so one set of converters serves both.
"""

import datetime as dt
import queue
import sqlite3
import threading
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import psycopg
from psycopg.types.string import TextLoader


class SourceError(Exception):
    """The source database cannot be opened or read."""


def quote_name(name):
    return '"' + name.replace('"', '""') + '"'


def open_source(url):
    """A reader for ``url``: sqlite:///path, a file path, or postgres://…"""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("postgres", "postgresql"):
        return PostgresSource(url)
    if scheme == "sqlite":
        return SQLiteSource(url.split(":///", 1)[1] if ":///" in url else url[len("sqlite:") :])
    if scheme in ("", "file"):
        return SQLiteSource(url.removeprefix("file:"))
    raise SourceError(
        f"unsupported source URL {safe_url(url)!r}: use sqlite:///path or postgres://…"
    )


def safe_url(url):
    """``url`` without its password (user:password@, or ?password=), for
    messages, logs and Source.description."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not even a URL (a bad port): show only its scheme
        return url.split(":", 1)[0] + "://…" if "://" in url else "…"
    netloc, query = parts.netloc, parts.query
    if password:
        netloc = netloc.replace(f":{password}@", ":***@")
    if "password" in query.lower():
        query = "&".join(
            f"{pair.split('=', 1)[0]}=***" if pair.split("=", 1)[0].lower() == "password" else pair
            for pair in query.split("&")
        )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def scrubbed(text, url):
    """``text`` (a driver's message) with any password of ``url`` masked."""
    try:
        parts = urlsplit(url)
        secrets = [parts.password, *parse_qs(parts.query).get("password", [])]
    except ValueError:
        secrets = []
    for secret in filter(None, secrets):
        text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
    return text


class SQLiteSource:
    placeholder = "?"

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"no SQLite database at {self.path}")
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        try:
            # Read from the read-ahead thread (see read_ahead), never from two at once.
            self.connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self.connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as error:
            raise SourceError(f"{self.path} is not a SQLite database: {error}") from error

    @property
    def name(self):
        return self.path.name

    def tables(self):
        rows = self.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}

    def columns(self, table):
        """{column: declared type (upper case)}."""
        rows = self.connection.execute(f"PRAGMA table_info({quote_name(table)})")
        return {row[1]: (row[2] or "").upper() for row in rows}

    def is_integer(self, declared_type):
        return "INT" in declared_type

    def scalar(self, sql, params=()):
        return self.connection.execute(sql, params).fetchone()

    def rows(self, sql, params=()):
        return self.connection.execute(sql, params).fetchall()

    def stream(self, sql, params, batch_size, name="import"):
        cursor = self.connection.execute(sql, params)
        columns = [d[0] for d in cursor.description]
        try:
            while rows := cursor.fetchmany(batch_size):
                yield [dict(zip(columns, row, strict=True)) for row in rows]
        finally:
            cursor.close()

    def cursor_value(self, table, column, value):
        """A stored sync-cursor value as a query parameter."""
        return value

    def storable(self, value):
        return value

    def close(self):
        self.connection.close()


TEXT_TYPES = ("json", "jsonb", "uuid", "inet", "cidr")
CONNECT_TIMEOUT = {"connect_timeout": 10}  # seconds: the message comes within 15


class PostgresSource:
    """One REPEATABLE READ, read-only transaction: every table is read from
    the same snapshot, so children never refer to parents read later."""

    placeholder = "%s"

    def __init__(self, url):
        # A server that accepts and never answers must not hang the import:
        # libpq gives up after connect_timeout (unless the URL sets its own).
        timeout = {} if "connect_timeout" in parse_qs(urlsplit(url).query) else CONNECT_TIMEOUT
        try:
            self.connection = psycopg.connect(url, autocommit=False, **timeout)
        except psycopg.Error as error:
            message = scrubbed(" ".join(str(error).split()), url)
            raise SourceError(f"cannot connect to {safe_url(url)}: {message}") from None
        self.connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self.connection.read_only = True
        for type_name in TEXT_TYPES:
            self.connection.adapters.register_loader(type_name, TextLoader)
        self._types = {}

    @property
    def name(self):
        return self.connection.info.dbname

    def tables(self):
        rows = self.connection.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = ANY(current_schemas(false))"
        )
        return {name for (name,) in rows}

    def columns(self, table):
        if table not in self._types:
            rows = self.connection.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ANY(current_schemas(false)) AND table_name = %s",
                (table,),
            )
            self._types[table] = {name: data_type.upper() for name, data_type in rows}
        return self._types[table]

    def is_integer(self, declared_type):
        return declared_type in ("INTEGER", "BIGINT", "SMALLINT")

    def scalar(self, sql, params=()):
        return self.connection.execute(sql, params).fetchone()

    def rows(self, sql, params=()):
        return self.connection.execute(sql, params).fetchall()

    def stream(self, sql, params, batch_size, name="import"):
        with self.connection.cursor(name=f"aa_{name}") as cursor:
            cursor.itersize = batch_size
            cursor.execute(sql, params)
            columns = None
            while rows := cursor.fetchmany(batch_size):
                columns = columns or [d.name for d in cursor.description]
                yield [dict(zip(columns, row, strict=True)) for row in rows]

    def cursor_value(self, table, column, value):
        if isinstance(value, str) and self.columns(table).get(column, "").startswith("TIMESTAMP"):
            return dt.datetime.fromisoformat(value)
        return value

    def storable(self, value):
        return value.isoformat() if isinstance(value, dt.datetime | dt.date) else value

    def close(self):
        self.connection.rollback()
        self.connection.close()


def read_ahead(batches, depth=2):
    """Iterate ``batches`` in a thread, up to ``depth`` batches ahead.

    Reading and converting the next batch (pure Python, no access to our
    database) then overlaps with writing this one, when the main thread
    waits on the database. Memory stays flat: at most depth + 2 batches.
    Errors of the reading thread are raised here.
    """
    done, stop = object(), threading.Event()
    ready = queue.Queue(maxsize=depth)

    def put(item):
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(done)
        except BaseException as error:  # handed over to the main thread
            put(error)
        finally:
            batches.close()  # here, in the thread that ran it

    thread = threading.Thread(target=work, name="import-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
