"""Secrets a service stores for its users (a teacher's or a judge's API key), sealed at rest.

A sealed value is a Fernet token (AES-128-CBC with HMAC-SHA256, from `cryptography`) under a key
derived from the process's `TUNEFORGE_SECRET_KEY` with HKDF, one key per purpose. Every replica
and worker holds the same secret key, so any of them can open what another sealed; the database
alone opens nothing. A sealed value is bound to what it belongs to (`context`, for example the
teacher's uid): a token copied onto another row does not open there.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SealBroken(Exception):
    """A sealed value that does not open: another secret key, another context, or altered bytes."""


class SecretBox:
    """Seals and opens secrets for one purpose (`purpose`, e.g. `teacher-api-key`)."""

    def __init__(self, secret_key: str, purpose: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"tuneforge-sealing", info=purpose.encode()
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, value: str, context: str) -> str:
        """The sealed form of `value`, bound to `context`."""
        return self._fernet.encrypt(f"{context}\x00{value}".encode()).decode("ascii")

    def open(self, token: str, context: str) -> str:
        try:
            plain = self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError, ValueError):
            raise SealBroken("the stored secret does not open with this secret key") from None
        bound, _, value = plain.partition("\x00")
        if bound != context:
            raise SealBroken("the stored secret belongs to something else")
        return value
