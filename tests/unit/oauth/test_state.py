"""The sealed, expiring OAuth state and PKCE."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailport.crypto import KeyRing, Secret, generate_key
from mailport.errors import OAuthStateExpiredError, OAuthStateInvalidError, OAuthStateReplayedError
from mailport.oauth import StateCodec
from mailport.oauth.state import s256_challenge
from tests.unit.fakes import NOW, MemoryStateStore, SettableClock


def ring() -> KeyRing:
    return KeyRing.from_keys([generate_key()], source="test")


def test_rfc7636_s256_vector():
    verifier = Secret("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_round_trip_binds_everything_and_hides_the_verifier():
    codec = StateCodec(ring(), clock=SettableClock())
    token, issued = codec.issue(
        "microsoft",
        tenant_id="t1",
        mailbox_id="mbx_state_test_mailbox",
        purpose="support",
        return_url="https://app/done",
    )
    opened = codec.open(token, provider="microsoft")
    assert opened == issued
    assert (opened.tenant_id, opened.mailbox_id, opened.purpose, opened.return_url) == (
        "t1",
        "mbx_state_test_mailbox",
        "support",
        "https://app/done",
    )
    assert opened.expires_at == NOW + timedelta(minutes=10)
    assert 43 <= len(opened.verifier.reveal()) <= 128
    assert opened.verifier.reveal() not in token and "mbx_state_test_mailbox" not in token


def test_tampered_foreign_and_misrouted_states_are_invalid():
    codec = StateCodec(ring(), clock=SettableClock())
    token, _ = codec.issue("google", tenant_id="t1")
    for bad in (token[:-2] + "xx", token[:40], "", "not-a-state", "é" * 10):
        with pytest.raises(OAuthStateInvalidError):
            codec.open(bad)
    with pytest.raises(OAuthStateInvalidError):
        StateCodec(ring(), clock=SettableClock()).open(token)  # another instance's key
    with pytest.raises(OAuthStateInvalidError, match="issued for 'google'"):
        codec.open(token, provider="microsoft")


def test_expiry_after_ten_minutes():
    clock = SettableClock()
    codec = StateCodec(ring(), clock=clock)
    token, _ = codec.issue("google", tenant_id=None)
    clock.now = NOW + timedelta(minutes=9, seconds=59)
    assert codec.open(token).provider == "google"
    clock.now = NOW + timedelta(minutes=10)
    with pytest.raises(OAuthStateExpiredError) as caught:
        codec.open(token)
    assert caught.value.http_status == 400


def test_key_rotation_keeps_open_states_valid():
    old = generate_key()
    token, _ = StateCodec(KeyRing.from_keys([old], source="t"), clock=SettableClock()).issue(
        "google", tenant_id=None
    )
    rotated = KeyRing.from_keys([generate_key(), old], source="t")
    assert StateCodec(rotated, clock=SettableClock()).open(token).provider == "google"


async def test_consume_is_single_use():
    codec = StateCodec(ring(), clock=SettableClock())
    store = MemoryStateStore()
    token, _ = codec.issue("google", tenant_id="t1")
    assert (await codec.consume(token, store)).tenant_id == "t1"
    with pytest.raises(OAuthStateReplayedError):
        await codec.consume(token, store)
