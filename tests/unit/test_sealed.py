"""A sealed secret: ciphertext until the moment of use, and never shown."""

from __future__ import annotations

import pickle

import pytest

from mailport.crypto import Sealed, Secret
from tests.fixtures.ciphers import CountingCipher


def test_a_sealed_secret_decrypts_only_when_revealed_and_every_time() -> None:
    cipher = CountingCipher()
    sealed = Sealed(cipher.encrypt("hunter2"), cipher)
    assert cipher.decrypted == 0
    assert sealed.reveal() == "hunter2" and cipher.decrypted == 1
    opened = sealed.open()
    assert type(opened) is Secret and opened.reveal() == "hunter2" and cipher.decrypted == 2
    assert opened.reveal() == "hunter2" and cipher.decrypted == 2  # the opened one holds the plaintext


def test_a_sealed_secret_never_shows_itself() -> None:
    cipher = CountingCipher()
    token = cipher.encrypt("hunter2")
    sealed = Sealed(token, cipher)
    shown = [repr(sealed), str(sealed), f"{sealed}", f"{sealed!r}", repr([sealed]), repr({"p": sealed})]
    assert all("hunter2" not in s and token not in s for s in shown)
    assert str(sealed) == "***" and repr(sealed) == "Secret('***')"
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(sealed)
    assert cipher.decrypted == 0


def test_a_sealed_secret_compares_as_the_secret_it_holds() -> None:
    cipher = CountingCipher()
    sealed = Sealed(cipher.encrypt("s"), cipher)
    assert sealed == Secret("s") and Secret("s") == sealed and sealed != Secret("t")
    assert sealed == Sealed(cipher.encrypt("s"), cipher)  # another ciphertext of the same value
    assert hash(sealed) == hash(Secret("s")) and bool(sealed)
    same = Sealed(sealed.sealed_by(cipher) or "", cipher)
    before = cipher.decrypted
    assert same == sealed and cipher.decrypted == before  # one stored value: nothing to decrypt
    assert sealed.sealed_by(CountingCipher()) is None
    assert Sealed.of(None, cipher) is None and Sealed.of(cipher.encrypt("x"), cipher) == Secret("x")
    assert Secret("s") != "s"
