"""`mailport serve` as a real process: POST /v1/check reaches the bed only through the operator's
allow list, refuses the rest with host_not_allowed, rate-limits per tenant with Retry-After, and
never writes the password to its log."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.test_serve import start_serve, stop, wait_healthy
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer

ADMIN = "admin-key-for-check-e2e-0123456789"


def test_check_over_http(
    tmp_path: Path, dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    proc, url, log_path = start_serve(
        tmp_path,
        MAILPORT_ADMIN_KEY=ADMIN,
        MAILPORT_ALLOWED_HOSTS="127.0.0.1",
        MAILPORT_CHECK_BURST="3",
        MAILPORT_CHECK_RATE_PER_MINUTE="1",
        MAILPORT_LOG_LEVEL="DEBUG",
    )
    try:
        wait_healthy(proc, url, log_path)
        tenant = httpx.post(
            f"{url}/v1/tenants", json={"name": "acme"}, headers={"Authorization": f"Bearer {ADMIN}"}
        )
        key = {"Authorization": f"Bearer {tenant.json()['api_key']}"}
        body = {
            "email": user,
            "imap": {"host": "127.0.0.1", "port": dovecot.imaps_port, "security": "ssl"},
            "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "starttls"},
            "password": password,
            "ca_pem": Path(dovecot.ca_file).read_text(),
        }
        ok = httpx.post(f"{url}/v1/check", json=body, headers=key, timeout=30)
        assert ok.status_code == 200, ok.text + log_path.read_text()[-3000:]
        assert ok.json()["ok"] is True
        assert all(step["ms"] > 0 for step in ok.json()["imap"]["steps"][1:])  # measured, not made up
        for host in ("127.0.0.2", "::1"):  # loopback, but not on the list
            refused = httpx.post(
                f"{url}/v1/check", json={**body, "imap": {**body["imap"], "host": host}}, headers=key
            )
            assert refused.status_code == 422 and refused.json()["error"] == "host_not_allowed", refused.text
        limited = httpx.post(f"{url}/v1/check", json=body, headers=key)
        assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert password not in ok.text + limited.text
    finally:
        stop(proc)
    assert password not in log_path.read_text()
