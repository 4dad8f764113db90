"""`mailport serve` as a newcomer starts it: a subprocess on the embedded default."""

from __future__ import annotations

import stat
import statistics
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.process import clean_environment, start_mailport, stop, wait_healthy
from tests.mailstack.dovecot import free_port


def start_serve(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log_path = tmp_path / "serve.log"
    environment = clean_environment()
    environment.update({"MAILPORT_PORT": str(port), "MAILPORT_DATA_DIR": str(tmp_path / "var"), **env})
    proc = start_mailport("serve", cwd=tmp_path, env=environment, log_path=log_path)
    return proc, f"http://127.0.0.1:{port}", log_path


def test_serve_answers_healthz_and_generates_a_private_key(tmp_path: Path):
    proc, url, log_path = start_serve(tmp_path)
    try:
        assert wait_healthy(proc, url, log_path).json()["status"] == "ok"
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert httpx.get(f"{url}/openapi.json").json()["info"]["title"] == "mailport"
        assert httpx.get(f"{url}/docs").status_code == 200
        missing = httpx.get(f"{url}/no-such-page")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    finally:
        stop(proc)
    key_file = tmp_path / "var" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "MAILPORT_SECRET_KEYS is not set" in log_path.read_text()


def test_serve_refuses_a_malformed_secret_key_in_one_line(tmp_path: Path):
    proc, _url, log_path = start_serve(tmp_path, MAILPORT_SECRET_KEYS="not-a-key")
    assert proc.wait(30) == 1
    output = log_path.read_text()
    assert "error [secret_key_invalid]" in output
    assert "Traceback" not in output


@pytest.mark.serial
def test_kept_alive_requests_are_answered_without_waiting_for_delayed_acks(tmp_path: Path):
    """uvicorn writes a response's head and body apart; without TCP_NODELAY the body waited for
    the client's delayed ACK (~40 ms on Linux) on every request of a kept-alive connection."""
    proc, url, log_path = start_serve(tmp_path)
    try:
        wait_healthy(proc, url, log_path)
        with httpx.Client(base_url=url) as client:
            client.get("/healthz")
            took = []
            for _ in range(15):
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                took.append(time.perf_counter() - started)
        assert statistics.median(took) < 0.030, f"median {statistics.median(took) * 1000:.1f} ms"
    finally:
        stop(proc)
