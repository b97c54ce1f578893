"""Keep channels' secrets unreadable at rest, and never show them back.

A channel's secret (a webhook's signing key, a Slack incoming-webhook URL) is stored in one of
two forms:

* ``fernet:<token>``: encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`)
  under a key derived from SECRET_KEY with HKDF-SHA256. A copy of the database alone does not
  reveal it; whoever holds SECRET_KEY does, as they could also sign sessions.
* ``env:NAME``: a reference, stored as is; the secret is read from the environment variable
  NAME at send time, so it never enters the database at all.

Rotating SECRET_KEY makes every ``fernet:`` secret unreadable: channels must then be given
their secrets again (`unseal` says so). `describe` is what a page may show instead.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FERNET_PREFIX = "fernet:"
ENV_PREFIX = "env:"
# Upper case, as environment variables conventionally are; a lower-case name is more likely a
# typo (or a secret pasted after "env:") than a variable.
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# Binds the derived key to this one use: other keys derived from SECRET_KEY never equal it.
HKDF_INFO = b"channel-secrets"


class SecretError(ValueError):
    """A channel secret that cannot be stored or read; the message says why, never the secret."""


def _fernet(secret_key: str) -> Fernet:
    """Return the Fernet whose key HKDF derives from SECRET_KEY."""
    # No salt: SECRET_KEY is already a random key (settings demand 32+ characters), which is
    # what HKDF's extract step without salt assumes (RFC 5869, section 3.1).
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def reference_name(value: str) -> str | None:
    """Return NAME of an "env:NAME" reference, None for any other value; refuse a bad NAME."""
    if not value.startswith(ENV_PREFIX):
        return None
    name = value[len(ENV_PREFIX) :]
    if not ENV_NAME.fullmatch(name):
        raise SecretError(
            "An environment reference is env:NAME, where NAME is an upper-case variable name "
            "such as SLACK_WEBHOOK_URL (letters, digits and _, not starting with a digit)."
        )
    return name


def seal(plain: str, secret_key: str) -> str:
    """Encrypt a secret for storage, or keep an "env:NAME" reference as it is."""
    if reference_name(plain) is not None:
        return plain
    if not plain:
        return ""  # no secret: nothing to hide, and `describe` says "none"
    return FERNET_PREFIX + _fernet(secret_key).encrypt(plain.encode()).decode()


def unseal(stored: str, secret_key: str, environ: Mapping[str, str] | None = None) -> str:
    """Return the plain secret of a stored value ("" for none), or raise SecretError."""
    if not stored:
        return ""
    name = reference_name(stored)
    if name is not None:
        env = os.environ if environ is None else environ
        value = env.get(name, "")
        if not value:
            raise SecretError(
                f"The channel's secret comes from the environment variable {name}, which is "
                "not set (or empty) in this process."
            )
        return value
    if not stored.startswith(FERNET_PREFIX):
        raise SecretError(
            "The channel's stored secret is in no known form (fernet:... or env:NAME); "
            "enter the secret again."
        )
    try:
        return _fernet(secret_key).decrypt(stored[len(FERNET_PREFIX) :].encode()).decode()
    except (InvalidToken, UnicodeDecodeError):
        raise SecretError(
            "The channel's secret was encrypted under another SECRET_KEY (or is damaged) and "
            "cannot be read. Rotating SECRET_KEY requires re-entering channel secrets: edit the "
            "channel and give its secret again."
        ) from None


def describe(stored: str) -> str:
    """Say how a secret is kept, for pages and the API: never the secret itself."""
    if not stored:
        return "none"
    if stored.startswith(ENV_PREFIX):
        try:
            name = reference_name(stored)
        except SecretError:
            return "invalid environment reference"
        return f"from ${name}"
    if stored.startswith(FERNET_PREFIX):
        return "stored encrypted"
    return "unreadable (enter it again)"
