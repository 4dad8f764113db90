"""`mailport serve` as a newcomer starts it: a subprocess on the embedded default."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.mailstack.dovecot import free_port


def start_serve(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log_path = tmp_path / "serve.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAILPORT_")}
    environment.update({"MAILPORT_PORT": str(port), "MAILPORT_DATA_DIR": str(tmp_path / "var"), **env})
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailport", "serve"], cwd=tmp_path, env=environment, stdout=log, stderr=log
        )
    return proc, f"http://127.0.0.1:{port}", log_path


def wait_healthy(
    proc: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float = 60
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()
        try:
            return httpx.get(f"{url}/healthz", timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"no /healthz within {timeout}s\n{log_path.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


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
