"""Figures a page asks for twice (a chart and a table of the same rows)
computed once per request: ``admin_page`` runs every view in ``memo()``."""

import functools
from contextlib import contextmanager
from contextvars import ContextVar

_memo = ContextVar("page_memo", default=None)


@contextmanager
def memo():
    """Within the block, a memoized function asked again with the same
    arguments answers its first result."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def memoized(function=None, *, key=None):
    """Memoize ``function`` within ``memo()`` blocks; ``key()`` adds what else
    its result depends on (e.g. the metrics reader in force)."""

    def decorate(function):
        name = f"{function.__module__}.{function.__qualname__}"

        @functools.wraps(function)
        def wrapper(*args):
            cache = _memo.get()
            if cache is None:
                return function(*args)
            cache_key = (name, *(key() if key else ()), *args)
            if cache_key not in cache:
                cache[cache_key] = function(*args)
            return cache[cache_key]

        return wrapper

    return decorate(function) if function else decorate
