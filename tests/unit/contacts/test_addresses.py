"""Canonical addresses, provider folding and display names."""

from __future__ import annotations

import pytest

from mailport.contacts.addresses import canonical, display_name, fold


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Bob@Example.ORG", "bob@example.org"),
        ("  bob@example.org. ", "bob@example.org"),
        ("joerg@Exämple.DE", "joerg@xn--exmple-cua.de"),
        ("joerg@xn--exmple-cua.de", "joerg@xn--exmple-cua.de"),
        ("Ünï@example.com", "ünï@example.com"),  # SMTPUTF8 local parts are kept, lowercased
        ('"john smith"@example.com', '"john smith"@example.com'),
        ("a@b@example.com", None),
        ("bob", None),
        ("@example.com", None),
        ("bob@", None),
        ("bob@localhost", None),
        ("bob@[192.0.2.1]", None),
        ("bob smith@example.com", None),
        ("bob@exa mple.com", None),
        ("bob@-example.com", None),
        ("bob@xn--zz.com", None),  # a bogus A-label
        ("x" * 65 + "@example.com", None),
        ("bob@" + "a" * 64 + ".com", None),
        ("bob@" + ".".join(["a" * 60] * 5) + ".com", None),  # over 254 octets
    ],
)
def test_canonical(raw: str, key: str | None) -> None:
    assert canonical(raw) == key


@pytest.mark.parametrize(
    ("key", "folded"),
    [
        ("j.doe+news@gmail.com", "jdoe@gmail.com"),
        ("j.doe@googlemail.com", "jdoe@gmail.com"),
        ("jane+shop@outlook.com", "jane@outlook.com"),
        ("jane+x+y@icloud.com", "jane@icloud.com"),
        ("jane.doe+x@fastmail.com", "jane.doe@fastmail.com"),  # only Gmail ignores dots
        ("jane+x@example.com", "jane+x@example.com"),  # unknown providers are left alone
        ("+only@gmail.com", "+only@gmail.com"),  # folding never empties the local part
    ],
)
def test_fold(key: str, folded: str) -> None:
    assert fold(key) == folded


@pytest.mark.parametrize(
    ("name", "address", "shown"),
    [
        ("=?utf-8?Q?J=C3=B6rg_M=C3=BCller?=", "j@x.de", "Jörg Müller"),
        ("=?iso-8859-1?B?U/hyZW4=?= Kj=?utf-8?Q?=C3=A6r?=", "s@x.dk", "Søren Kjær"),
        ('  "Alice   Martin" ', "a@x.org", "Alice Martin"),
        ("'bob@x.org'", "bob@x.org", ""),
        ("BOB@X.ORG", "bob@x.org", ""),
        ("someone@else.org", "bob@x.org", ""),
        ("=?utf-8?B?QW5u!?=", "b@x.org", "Ann"),  # broken base64 is repaired, never raises
        ("=?x-unknown?Q?Ann?=", "b@x.org", "Ann"),  # an unknown charset falls back
        ("", "b@x.org", ""),
    ],
)
def test_display_name(name: str, address: str, shown: str) -> None:
    assert display_name(name, address) == shown
