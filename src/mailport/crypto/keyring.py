"""The key ring that encrypts every stored secret.

``MAILPORT_SECRET_KEYS`` holds comma-separated Fernet keys: the first encrypts, all decrypt,
so a key can be rotated in without downtime. On the embedded default (no keys configured)
a key is generated on first start into ``<data_dir>/secret.key`` with mode 0600, with a loud
warning: production must set the variable.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mailport.errors import SecretKeyError

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"


def generate_key() -> str:
    """A new random Fernet key (url-safe base64, 32 bytes)."""
    return Fernet.generate_key().decode("ascii")


@dataclass(frozen=True, repr=False)
class KeyRing:
    """Encrypts with the first key, decrypts with any of them."""

    _fernets: tuple[Fernet, ...]
    source: str

    @classmethod
    def from_keys(cls, keys: list[str], *, source: str) -> KeyRing:
        if not keys:
            raise SecretKeyError("no secret key configured")
        fernets: list[Fernet] = []
        for index, key in enumerate(keys):
            try:
                fernets.append(Fernet(key.strip().encode("ascii")))
            except (ValueError, UnicodeEncodeError) as exc:
                raise SecretKeyError(
                    f"secret key #{index + 1} from {source} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes)"
                ) from exc
        return cls(tuple(fernets), source)

    def __repr__(self) -> str:
        return f"KeyRing(keys=***, count={len(self._fernets)}, source={self.source!r})"

    @property
    def key_count(self) -> int:
        return len(self._fernets)

    def encrypt(self, plaintext: str) -> str:
        return self._fernets[0].encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return MultiFernet(list(self._fernets)).decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretKeyError(
                "a stored secret cannot be decrypted with any configured key (wrong or missing key)"
            ) from exc

    def is_current(self, token: str) -> bool:
        """True when ``token`` is already encrypted under the first (current) key."""
        try:
            self._fernets[0].decrypt(token.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the first key (idempotent)."""
        try:
            return MultiFernet(list(self._fernets)).rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise SecretKeyError(
                "a stored secret cannot be decrypted with any configured key (wrong or missing key)"
            ) from exc


def load_key_ring(configured: str | None, data_dir: Path, *, create: bool = True) -> KeyRing:
    """The configured keys, or the embedded default's key file (created when ``create``)."""
    if configured is not None and configured.strip():
        return KeyRing.from_keys(
            [k for k in configured.split(",") if k.strip()], source="MAILPORT_SECRET_KEYS"
        )
    key_file = data_dir / KEY_FILE_NAME
    if not key_file.exists():
        if not create:
            raise SecretKeyError(f"MAILPORT_SECRET_KEYS is not set and {key_file} does not exist")
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_key() + "\n")
        log.warning(
            "!!! MAILPORT_SECRET_KEYS is not set: generated an encryption key into %s (mode 0600). "
            "Production MUST set MAILPORT_SECRET_KEYS and keep the key safe: losing it makes every "
            "stored password and token unreadable. !!!",
            key_file,
        )
    else:
        log.warning(
            "MAILPORT_SECRET_KEYS is not set: using the key file %s (fine for a single machine; "
            "production should set MAILPORT_SECRET_KEYS)",
            key_file,
        )
    keys = [line.strip() for line in key_file.read_text().splitlines() if line.strip()]
    return KeyRing.from_keys(keys, source=str(key_file))
