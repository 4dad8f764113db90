"""Settings, the key ring, the secret type and the error tree."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from mailport.config import Settings, load_settings
from mailport.crypto import KeyRing, Secret, generate_key, load_key_ring
from mailport.errors import (
    AuthenticationError,
    ConfigurationError,
    MailportError,
    MailTimeoutError,
    SecretKeyError,
    all_error_classes,
)


def test_settings_read_the_mailport_prefix(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MAILPORT_PORT", "9000")
    monkeypatch.setenv("MAILPORT_DNS_NAMESERVERS", "127.0.0.1:5353, 10.0.0.1")
    settings = Settings(_env_file=None)
    assert settings.port == 9000
    assert settings.dns_nameservers == ["127.0.0.1:5353", "10.0.0.1"]
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")


def test_a_worker_runs_the_parts_it_is_given(monkeypatch: pytest.MonkeyPatch):
    from mailport.runtime import Runtime

    assert Settings(_env_file=None).worker_parts == ["watchers", "delivery", "janitor", "sending", "contacts"]
    monkeypatch.setenv("MAILPORT_WORKER_PARTS", " delivery , janitor")
    settings = Settings(_env_file=None)
    assert settings.worker_parts == ["delivery", "janitor"]
    runtime = Runtime.for_worker(SimpleNamespace(settings=settings))  # type: ignore[arg-type]
    wanted = (runtime.wants_watchers, runtime.wants_delivery, runtime.wants_janitor)
    assert wanted == (False, True, True)
    assert (runtime.wants_sending, runtime.wants_contacts) == (False, False)
    assert runtime.readiness() == {"delivery": False}  # not started yet
    for bad in ("deliveries", ""):
        monkeypatch.setenv("MAILPORT_WORKER_PARTS", bad)
        with pytest.raises(ConfigurationError, match="MAILPORT_WORKER_PARTS"):
            load_settings()


def test_secret_never_shows_itself():
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret) and "hunter2" not in f"{secret}"
    assert secret.reveal() == "hunter2"


def test_key_ring_encrypts_with_the_first_and_decrypts_with_any(tmp_path: Path):
    old, new = generate_key(), generate_key()
    token = KeyRing.from_keys([old], source="t").encrypt("s3cret")
    both = KeyRing.from_keys([new, old], source="t")
    assert both.decrypt(token) == "s3cret"
    assert not both.is_current(token)
    rotated = both.rotate(token)
    assert both.is_current(rotated)
    assert KeyRing.from_keys([new], source="t").decrypt(rotated) == "s3cret"
    with pytest.raises(SecretKeyError):
        KeyRing.from_keys([generate_key()], source="t").decrypt(token)
    assert old not in repr(both) and new not in repr(both)


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path):
    ring = load_key_ring(None, tmp_path / "var")
    key_file = tmp_path / "var" / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_key_ring(None, tmp_path / "var").decrypt(ring.encrypt("x")) == "x"


def test_a_malformed_key_is_a_clear_error():
    with pytest.raises(SecretKeyError, match="not a valid Fernet key"):
        load_key_ring("nope", Path("/nonexistent"))


def test_error_tree_has_unique_codes_and_hints():
    codes = [cls.code for cls in all_error_classes()]
    assert len(codes) == len(set(codes))
    assert all(cls.hint for cls in all_error_classes())
    assert isinstance(MailTimeoutError("x"), TimeoutError)
    err = AuthenticationError("login refused", server_said="NO [AUTHENTICATIONFAILED] Authentication failed.")
    assert err.to_dict()["error"] == "auth_failed"
    assert err.to_dict()["server_said"].startswith("NO")
    assert isinstance(err, MailportError)
