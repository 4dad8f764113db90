"""SASL initial responses are byte-exact; OAuth error challenges decode."""

from __future__ import annotations

import base64
import json

import pytest

from mailport import sasl
from mailport.crypto import Secret
from mailport.errors import AuthMechanismUnsupportedError


def test_plain_xoauth2_and_oauthbearer_bytes() -> None:
    assert sasl.plain("u@example.test", "p\u00e4ss") == b"\x00u@example.test\x00p\xc3\xa4ss"
    assert sasl.xoauth2("u@example.test", "tok") == b"user=u@example.test\x01auth=Bearer tok\x01\x01"
    assert (
        sasl.oauthbearer("u,=x@example.test", "tok", host="imap.example.test", port=993)
        == b"n,a=u=2C=3Dx@example.test,\x01host=imap.example.test\x01port=993\x01auth=Bearer tok\x01\x01"
    )
    assert sasl.b64(b"\x00a\x00b") == b"AGEAYg=="


def test_oauth_error_challenge_decodes_from_base64_or_plain() -> None:
    error = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
    raw = json.dumps(error).encode()
    assert sasl.decode_oauth_error(base64.b64encode(raw)) == error
    assert sasl.decode_oauth_error(raw) == error
    assert sasl.decode_oauth_error(b"") is None
    assert sasl.decode_oauth_error(b"not json") is None
    assert "status 401" in sasl.describe_oauth_error(error)


async def test_token_source_may_be_an_async_callable() -> None:
    calls: list[int] = []

    async def fresh() -> str:
        calls.append(1)
        return f"token-{len(calls)}"

    auth = sasl.OAuth2Auth("u@example.test", fresh)
    assert (await auth.access_token()).reveal() == "token-1"
    assert (await auth.access_token()).reveal() == "token-2"
    assert (await sasl.OAuth2Auth("u", Secret("s")).access_token()).reveal() == "s"


def test_credentials_never_show_secrets() -> None:
    auth = sasl.PasswordAuth("u@example.test", Secret("hunter2"))
    assert "hunter2" not in repr(auth)
    assert "hunter2" not in repr(sasl.OAuth2Auth("u", Secret("hunter2")))


def test_choose_mechanism_only_picks_an_advertised_one() -> None:
    password = sasl.PasswordAuth("u@example.com", Secret("pw"))
    assert sasl.choose_mechanism(password, ["login", "PLAIN"], where="h:587") == "PLAIN"
    assert sasl.choose_mechanism(password, ["LOGIN", "XOAUTH2"], where="h:587") == "LOGIN"
    token = sasl.OAuth2Auth("u@example.com", Secret("t"), mechanism="OAUTHBEARER")
    assert sasl.choose_mechanism(token, ["XOAUTH2", "OAUTHBEARER"], where="h:587") == "OAUTHBEARER"
    for auth, offered in (
        (password, ["XOAUTH2"]),
        (password, []),
        (sasl.PasswordAuth("u@example.com", Secret("pw"), mechanism="PLAIN"), ["LOGIN"]),
        (token, ["XOAUTH2"]),
    ):
        with pytest.raises(AuthMechanismUnsupportedError) as info:
            sasl.choose_mechanism(auth, offered, where="h:587")
        assert info.value.message.startswith("h:587: the server does not offer AUTH ")
        assert "pw" not in info.value.message
