"""Pure parts of delivery: retry policy, signing, URL checks, cursors, the webhook body."""

from __future__ import annotations

import json
import pickle
import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from mailport.delivery.outbox import event_body
from mailport.delivery.retry import RetryPolicy
from mailport.delivery.service import parse_event_cursor
from mailport.delivery.signing import Signer, check_secret, generate_secret, signature_headers
from mailport.delivery.urls import parse_webhook_url
from mailport.errors import InputError, InvalidCursorError
from mailport.events import compact_json

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_backoff_grows_exponentially_to_the_cap_with_jitter_below_the_nominal_delay():
    policy = RetryPolicy(first_delay=5, multiplier=2, max_delay=3600, jitter=0.5)
    assert [policy.delay(n, rand=lambda: 0.0) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert policy.delay(30, rand=lambda: 0.0) == 3600
    assert policy.delay(1000, rand=lambda: 0.0) == 3600  # no overflow
    rng = random.Random(7)
    draws = [policy.delay(3, rand=rng.random) for _ in range(200)]
    assert all(10 <= d <= 20 for d in draws) and len({round(d, 6) for d in draws}) > 150


def test_retries_stop_after_the_window_and_the_default_window_is_a_day():
    policy = RetryPolicy()
    assert policy.give_up_after == 24 * 3600
    assert policy.next_attempt(1, window_started=T0, now=T0 + timedelta(seconds=1)) is not None
    assert policy.next_attempt(40, window_started=T0, now=T0 + timedelta(hours=24)) is None
    # the default schedule makes about thirty attempts in 24 hours, not thousands
    elapsed, attempts = 0.0, 0
    while elapsed < policy.give_up_after:
        attempts += 1
        elapsed += policy.delay(attempts, rand=lambda: 0.0)
    assert 25 <= attempts <= 40


def test_disable_rule_needs_no_success_during_the_dead_letters_window():
    assert RetryPolicy.should_disable(last_success_at=None, dead_window_started=T0)
    assert RetryPolicy.should_disable(last_success_at=T0 - timedelta(seconds=1), dead_window_started=T0)
    assert not RetryPolicy.should_disable(last_success_at=T0 + timedelta(hours=3), dead_window_started=T0)


def test_policy_refuses_nonsense():
    with pytest.raises(ValueError):
        RetryPolicy(first_delay=0)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)


def test_signature_verifies_with_the_standardwebhooks_package():
    secret = generate_secret()
    assert secret.reveal().startswith("whsec_") and repr(secret) == "Secret('***')"
    body = json.dumps({"type": "message.received", "data": {"subject": "héllo"}}).encode()
    now = datetime.now(UTC)
    headers = signature_headers(secret, message_id="evt_1", timestamp=now, body=body)
    assert headers["webhook-id"] == "evt_1" and headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert Webhook(secret.reveal()).verify(body, headers)["data"]["subject"] == "héllo"
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret().reveal()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret.reveal()).verify(body + b" ", headers)


def test_a_signer_decrypts_once_signs_alike_and_never_shows_its_secret():
    secret = generate_secret()
    signer = Signer(secret)
    body, now = b'{"type": "message.received"}', datetime.now(UTC)
    headers = signer.headers(message_id="evt_2", timestamp=now, body=body)
    assert headers == signature_headers(secret, message_id="evt_2", timestamp=now, body=body)
    assert Webhook(secret.reveal()).verify(body, headers)["type"] == "message.received"
    assert secret.reveal() not in repr(signer) and secret.reveal() not in str(signer)
    with pytest.raises(TypeError):
        pickle.dumps(signer)


@pytest.mark.parametrize("bad", ["secret", "whsec_", "whsec_!!!", "whsec_c2hvcnQ=", "whsec_" + "QUFB" * 30])
def test_user_secrets_are_checked(bad: str):
    with pytest.raises(InputError) as caught:
        check_secret(bad)
    assert caught.value.details["field"] == "secret"
    assert bad not in str(caught.value) or bad in ("secret", "whsec_")


def test_a_good_user_secret_is_kept_as_given():
    given = generate_secret().reveal()
    assert check_secret(given).reveal() == given


@pytest.mark.parametrize(
    "bad",
    ["", "example.com/hook", "ftp://example.com/x", "https://", "https://u:p@example.com/", "https://e.com/#x",
     "https://exa mple.com/", "javascript:alert(1)", "https://e.com/" + "a" * 2000],
)  # fmt: skip
def test_bad_webhook_urls(bad: str):
    with pytest.raises(InputError):
        parse_webhook_url(bad)


def test_good_webhook_urls_keep_their_path_and_query():
    url = parse_webhook_url(" https://Hooks.Example.com:8443/in/mail?src=mailport ")
    assert url.host == "hooks.example.com" and url.port == 8443
    assert str(url) == "https://hooks.example.com:8443/in/mail?src=mailport"


def test_event_cursors():
    assert parse_event_cursor(None) == 0 and parse_event_cursor("") == 0 and parse_event_cursor("42") == 42
    for bad in ("-1", "abc", "1.5", "9" * 25):
        with pytest.raises(InvalidCursorError):
            parse_event_cursor(bad)


def _stored_event(idempotency_key: str, payload: str) -> SimpleNamespace:
    """An event row as the outbox reads it (what ``event_body`` takes)."""
    return SimpleNamespace(
        event_id="evt_9",
        event_seq=9,
        type="message.received",
        tenant_id="ten_1",
        mailbox_id="mbx_1",
        idempotency_key=idempotency_key,
        event_created_at=T0,
        payload=payload,
    )


def test_the_body_splices_the_stored_payload_into_the_event_shape():
    payload = json.dumps({"subject": "ça va", "n": [1, 2]}, ensure_ascii=False)
    body = json.loads(event_body(_stored_event("msg:mbx_1:1:9", payload)))
    assert body == {
        "id": "evt_9",
        "seq": 9,
        "type": "message.received",
        "tenant_id": "ten_1",
        "mailbox_id": "mbx_1",
        "idempotency_key": "msg:mbx_1:1:9",
        "created_at": T0.isoformat(),
        "data": {"subject": "ça va", "n": [1, 2]},
    }


@pytest.mark.parametrize(
    "key",
    [
        "msg:mbx_1:1:9",
        'quote " back \\ slash',
        "ünïcödé ✓ \u2028 line separator",
        "control \x00 \x1f \x7f",
    ],
)
def test_the_envelope_is_written_as_the_stdlib_writes_it(key: str) -> None:
    """Receivers verify the signature over these bytes: the fast encoder must give the stdlib's
    text exactly (compact, not ASCII-escaped), whatever the idempotency key holds."""
    row = _stored_event(key, '{"n":1}')
    envelope = {
        "id": "evt_9",
        "seq": 9,
        "type": "message.received",
        "tenant_id": "ten_1",
        "mailbox_id": "mbx_1",
        "idempotency_key": key,
        "created_at": T0.isoformat(),
    }
    expected = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))[:-1] + ',"data":{"n":1}}'
    assert event_body(row) == expected.encode("utf-8")


def test_what_orjson_refuses_goes_through_the_stdlib() -> None:
    fields = {"idempotency_key": "lone \ud800 surrogate", "seq": 2**70}
    assert compact_json(fields) == json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
