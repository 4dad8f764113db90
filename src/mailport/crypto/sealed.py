"""A stored secret that stays ciphertext until the moment of use.

Rows are read far more often than their secrets are used: listing 1,000 mailboxes must not
decrypt 1,000 passwords, nor a page of webhook endpoints their signing secrets. The store hands
out :class:`Sealed` values instead: the ciphertext with the :class:`Cipher` that opens it.
``reveal()`` decrypts at that moment (and every time: the plaintext is never cached on the row);
``open()`` gives a plain :class:`~mailport.crypto.Secret` for a caller that uses it repeatedly.

A ``Sealed`` *is* a ``Secret`` (it prints as one, ``***``, and is not picklable), so every
consumer that takes a ``Secret`` takes it unchanged and decrypts only when it sends it.
"""

from __future__ import annotations

from typing import Protocol

from mailport.crypto.secret import Secret


class Cipher(Protocol):
    """What the stores encrypt and decrypt with (:class:`~mailport.crypto.KeyRing`; a test may
    wrap it, e.g. to count decryptions)."""

    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, token: str) -> str: ...


class Sealed(Secret):
    __slots__ = ("_cipher", "_ciphertext")

    def __init__(self, ciphertext: str, cipher: Cipher) -> None:
        super().__init__("")
        self._ciphertext = ciphertext
        self._cipher = cipher

    @classmethod
    def of(cls, ciphertext: str | None, cipher: Cipher) -> Sealed | None:
        """A nullable column's value: None stays None."""
        return None if ciphertext is None else cls(ciphertext, cipher)

    def reveal(self) -> str:
        """Decrypt now, for the one place that must send it."""
        return self._cipher.decrypt(self._ciphertext)

    def open(self) -> Secret:
        """Decrypt once into a plain :class:`Secret` (for a caller that uses it many times)."""
        return Secret(self.reveal())

    def sealed_by(self, cipher: Cipher) -> str | None:
        """The ciphertext, when ``cipher`` sealed it (a store writing it back unchanged need not
        decrypt and encrypt it again); None otherwise."""
        return self._ciphertext if cipher is self._cipher else None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sealed) and other._ciphertext == self._ciphertext:
            return True  # the same stored value: no need to decrypt
        return super().__eq__(other)

    def __hash__(self) -> int:
        return super().__hash__()

    def __bool__(self) -> bool:
        return bool(self.reveal())
