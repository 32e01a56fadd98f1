"""Encryption of secrets at rest (Fernet: AES-128-CBC with an HMAC-SHA256).

Keys come from ``FIELD_ENCRYPTION_KEYS`` (comma-separated, each a Fernet key
made by ``Fernet.generate_key()``). The first key encrypts; every key
decrypts. To rotate: put a new key first, keep the old ones after it, run
``manage.py rotate_encryption_key`` (re-encrypts every value of every model's
``encrypted_fields`` with the new key), then drop the old keys.

Without ``FIELD_ENCRYPTION_KEYS`` a key is derived from ``SECRET_KEY`` (HKDF),
so a local run or a test works with no set-up; ``check --deploy`` warns
about it (core.W001), because changing SECRET_KEY would then make every
stored password unreadable.
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

__all__ = ["DecryptionError", "decrypt", "encrypt", "encrypted_fields", "is_current", "rotate"]

HKDF_INFO = b"analyst-admin field encryption"


class DecryptionError(Exception):
    """A value no configured key can decrypt (an imported application's own
    ciphertext, or a value encrypted with a key since removed)."""


def derived_key(secret_key):
    """A Fernet key derived from SECRET_KEY: the local and test default."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def configured_keys():
    """The keys in force, first the one that encrypts."""
    keys = [key.strip() for key in settings.FIELD_ENCRYPTION_KEYS if key.strip()]
    return keys or [derived_key(settings.SECRET_KEY).decode()]


@lru_cache(maxsize=8)
def _fernet(keys):
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as error:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key "
            "(32 url-safe base64-encoded bytes)."
        ) from error


def fernet():
    # Cached per key tuple, so a test's override_settings takes effect.
    return _fernet(tuple(configured_keys()))


def encrypt(plaintext):
    """``plaintext`` (str) encrypted with the first key, as text."""
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token):
    """The text encrypted in ``token``; DecryptionError if no key opens it."""
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise DecryptionError("no configured key decrypts this value") from error


def rotate(token):
    """``token`` re-encrypted with the first key; DecryptionError as above."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken as error:
        raise DecryptionError("no configured key decrypts this value") from error


def is_current(token):
    """Whether ``token`` is encrypted with the first key (the one that encrypts)."""
    try:
        _fernet((configured_keys()[0],)).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def encrypted_fields():
    """[(model, field name)] of every stored value these keys encrypt: each
    model names its own in an ``encrypted_fields`` class attribute (so this
    module needs to import no app's models)."""
    return [
        (model, name)
        for model in apps.get_models()
        for name in getattr(model, "encrypted_fields", ())
    ]


@checks.register(checks.Tags.security, deploy=True)
def check_encryption_keys_set(app_configs, **kwargs):
    if any(key.strip() for key in settings.FIELD_ENCRYPTION_KEYS):
        return []
    return [
        checks.Warning(
            "FIELD_ENCRYPTION_KEYS is not set: database passwords are encrypted with a "
            "key derived from SECRET_KEY, and changing SECRET_KEY would make them "
            "unreadable.",
            hint="Set FIELD_ENCRYPTION_KEYS to a key from "
            "`python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`.",
            id="core.W001",
        )
    ]


@checks.register(checks.Tags.security)
def check_encryption_keys_valid(app_configs, **kwargs):
    errors = []
    for position, key in enumerate(settings.FIELD_ENCRYPTION_KEYS, start=1):
        try:
            Fernet(key.strip())
        except (ValueError, TypeError):
            errors.append(
                checks.Error(
                    f"FIELD_ENCRYPTION_KEYS entry {position} is not a Fernet key.",
                    hint="A Fernet key is 32 random bytes, url-safe base64-encoded "
                    "(Fernet.generate_key()).",
                    id="core.E010",
                )
            )
    return errors
