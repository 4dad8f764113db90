"""`mailport serve` on the embedded default migrates its SQLite database itself and serves /v1."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.test_serve import start_serve, stop, wait_healthy


def test_serve_migrates_and_serves_tenants_and_mailboxes(tmp_path: Path):
    proc, url, log_path = start_serve(tmp_path, MAILPORT_ADMIN_KEY="admin-key-for-e2e-0123456789")
    try:
        wait_healthy(proc, url, log_path)
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["checks"] == {"key_ring": True, "database": True, "watchers": True}
        admin = {"Authorization": "Bearer admin-key-for-e2e-0123456789"}
        tenant = httpx.post(f"{url}/v1/tenants", json={"name": "acme"}, headers=admin)
        assert tenant.status_code == 201, tenant.text
        key = {"Authorization": f"Bearer {tenant.json()['api_key']}"}
        body = {
            "email": "support@example.com",
            "purpose": "support",
            "auth_method": "app_password",
            "password": "app-password-e2e",
            "imap": {"host": "imap.example.com", "port": 993, "security": "ssl"},
        }
        created = httpx.post(f"{url}/v1/mailboxes", json=body, headers=key)
        assert created.status_code == 201 and created.json()["has_password"] is True
        assert "app-password-e2e" not in created.text
        listed = httpx.get(f"{url}/v1/mailboxes", headers=key).json()
        assert [m["email"] for m in listed["items"]] == ["support@example.com"]
        spec = httpx.get(f"{url}/openapi.json").json()
        assert "/v1/mailboxes/{mailbox_id}" in spec["paths"]
    finally:
        stop(proc)
    assert (tmp_path / "var" / "mailport.db").exists()
    assert b"app-password-e2e" not in b"".join(
        p.read_bytes() for p in (tmp_path / "var").glob("mailport.db*")
    )
    assert "app-password-e2e" not in log_path.read_text()


def test_serve_with_the_wrong_key_refuses_to_start_in_one_line(tmp_path: Path):
    from mailport.crypto import generate_key

    proc, url, log_path = start_serve(tmp_path)  # generates var/secret.key and the key check
    try:
        wait_healthy(proc, url, log_path)
    finally:
        stop(proc)
    proc, _url, log_path = start_serve(tmp_path, MAILPORT_SECRET_KEYS=generate_key())
    assert proc.wait(30) == 1
    output = log_path.read_text()
    assert (
        "error [secret_key_invalid]: the configured secret keys (MAILPORT_SECRET_KEYS) cannot decrypt"
        in output
    )
    assert "Traceback" not in output
