"""API keys: generation and hashing.

The raw key is shown once, when it is created, and never stored: the
database keeps its first characters (``key_prefix``, to recognise a key in a
list) and its SHA-256 hash (``key_hash``, to find the key a request presents).

A plain SHA-256 is enough here, unlike for passwords: a raw key carries 256
bits of randomness, so there is nothing to brute-force, and a fast hash lets
the ingest API find a key with one indexed equality lookup.
"""

import hashlib
import secrets

KEY_PREFIX = "aa_"
# Characters of the raw key kept in clear in ``ApiKey.key_prefix``.
PREFIX_LENGTH = 8


def hash_api_key(raw_key):
    """The value stored in ``ApiKey.key_hash`` for a raw key (SHA-256, hex)."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def generate_api_key():
    """A new key as ``(raw_key, prefix, key_hash)``.

    Show ``raw_key`` to its owner once; store only ``prefix`` and ``key_hash``.
    """
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    return raw_key, raw_key[:PREFIX_LENGTH], hash_api_key(raw_key)
