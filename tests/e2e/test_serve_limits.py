"""`mailport serve` as a subprocess on loopback, against hostile and careless clients: oversized
bodies, slow (half-open) clients beyond the connection limit and the open-file limit, a busy port,
and the start-up warning printed once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve import start_serve
from tests.fixtures.process import clean_environment, start_mailport, stop, wait_healthy
from tests.mailstack.dovecot import free_port

ADMIN = "admin-key-for-limits-0123456789abcdef"
MiB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    """The status and JSON body of the answer on a raw connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), data[:200]
    assert b"application/json" in head, data[:500]
    return int(head.split()[1]), json.loads(body)


# `mailport serve` with the open-file limit lowered (soft and hard: it cannot raise it back) and,
# once it listens, all but `free` descriptors taken, as other components of a busy service would
HOGGED_SERVE = """
import os, resource, sys
from mailport.api.server import run
from mailport.config import load_settings
from mailport.logs import configure_logging

nofile, free = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
taken = []

def listening(url):
    print("listening on", url, file=sys.stderr, flush=True)
    if free:
        try:
            while True:
                taken.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            for fd in taken[:free]:
                os.close(fd)

settings = load_settings()
configure_logging(settings.log_level)
run(settings, on_listening=listening)
"""


@contextmanager
def serving(
    tmp_path: Path, *, nofile: int | None = None, free: int = 0, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    log_path = tmp_path / "serve.log"
    environment = clean_environment()
    environment.update(
        {
            "MAILPORT_PORT": str(port),
            "MAILPORT_DATA_DIR": str(tmp_path / "var"),
            "MAILPORT_ADMIN_KEY": ADMIN,
            **env,
        }
    )
    argv = [sys.executable, "-m", "mailport", "serve"]
    if nofile is not None:
        argv = [sys.executable, "-c", HOGGED_SERVE, str(nofile), str(free)]
    proc = start_mailport(argv, cwd=tmp_path, env=environment, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, log_path)
        yield proc, url, log_path
    finally:
        stop(proc)


def open_slow_clients(url: str, count: int) -> list[socket.socket]:
    """Connections that send half a request and then nothing."""
    clients = []
    for _ in range(count):
        sock = connect(url)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
        clients.append(sock)
    return clients


def is_closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        return sock.recv(1024) == b"" or True  # EOF, or an error answer before the close
    except TimeoutError:
        return False
    except OSError:
        return True


def timed_healthz(url: str, timeout: float) -> float:
    started = time.monotonic()
    response = httpx.get(f"{url}/healthz", timeout=timeout)
    assert response.status_code == 200, response.text
    return time.monotonic() - started


# --------------------------------------------------------------------------- bodies


def test_oversized_bodies_are_refused_before_they_are_read(tmp_path: Path):
    with serving(tmp_path) as (proc, url, _log):
        before = rss_bytes(proc.pid)

        # a declared 300 MB, with and without a key: 413 on the headers alone
        for auth in (f"Authorization: Bearer {ADMIN}\r\n", ""):
            sock = connect(url)
            sock.sendall(
                f"POST /v1/tenants HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: application/json\r\n"
                f"Content-Length: {300 * MiB}\r\n\r\n{{".encode()
            )
            status, body = read_response(sock)
            assert (status, body["error"]) == (413, "request_too_large"), body
            sock.close()

        # 300 MB streamed (chunked) with the admin key: cut off at the limit, the connection closed
        sock = connect(url)
        sock.sendall(
            f"POST /v1/tenants HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
        sent = 0
        try:
            while sent < 300 * MiB:
                sock.sendall(chunk)
                sent += 0x10000
        except OSError:
            pass  # the server closed the connection after its 413
        assert sent < 64 * MiB, f"the server read {sent} bytes of an oversized body"
        sock.close()

        # the same without a key: refused before a byte of the body is read
        sock = connect(url)
        sock.sendall(
            b"POST /v1/tenants HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunk
        )
        status, body = read_response(sock)
        assert (status, body["error"]) == (401, "unauthorized")
        sock.close()

        assert rss_bytes(proc.pid) - before < 64 * MiB, (before, rss_bytes(proc.pid))
        assert timed_healthz(url, 5) < 5


# --------------------------------------------------------------------------- slow clients


@pytest.mark.serial
def test_slow_clients_beyond_the_connection_limit_do_not_lock_out_healthz(tmp_path: Path):
    header_timeout = 2.0
    with serving(tmp_path, MAILPORT_MAX_CONNECTIONS="100", MAILPORT_HEADER_TIMEOUT=str(header_timeout)) as (
        _proc,
        url,
        log_path,
    ):
        slow = open_slow_clients(url, 300)
        try:
            # the oldest waiting connections make room: a quick client is served at once
            assert timed_healthz(url, 5) < 1.5
            time.sleep(header_timeout + 1)
            still_open = [s for s in slow if not is_closed_by_server(s)]
            assert not still_open, f"{len(still_open)} slow connections outlived the header timeout"
            # a keep-alive connection that starts a request and stalls is closed too
            with httpx.Client(base_url=url) as client:
                assert client.get("/healthz").status_code == 200
        finally:
            for sock in slow:
                sock.close()
        assert log_path.stat().st_size < 20_000, log_path.read_text()[-2000:]
        assert "Traceback" not in log_path.read_text()


@pytest.mark.serial
def test_the_connection_limit_leaves_descriptors_for_the_rest_of_the_service(tmp_path: Path):
    with serving(tmp_path, nofile=160, MAILPORT_HEADER_TIMEOUT="3") as (_proc, url, log_path):
        warning = "the open-file limit allows 60 HTTP connections, not MAILPORT_MAX_CONNECTIONS=1000"
        assert warning in log_path.read_text()
        slow = open_slow_clients(url, 400)  # far beyond 160 descriptors
        try:
            assert timed_healthz(url, 5) < 1.5
            assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200  # the database still opens
        finally:
            for sock in slow:
                sock.close()
        log = log_path.read_text()
        assert "cannot accept connections" not in log and "Traceback" not in log, log[-3000:]


def test_accept_out_of_descriptors_is_logged_once_per_interval_and_healthz_recovers(tmp_path: Path):
    header_timeout = 2.0
    with serving(
        tmp_path, nofile=400, free=60, MAILPORT_WATCHERS="false", MAILPORT_HEADER_TIMEOUT=str(header_timeout)
    ) as (_proc, url, log_path):
        slow = open_slow_clients(url, 120)  # about the 61st accept() fails: EMFILE
        try:
            time.sleep(1)
            assert timed_healthz(url, header_timeout + 6) < header_timeout + 6
        finally:
            for sock in slow:
                sock.close()
        time.sleep(1)
        log = log_path.read_text()
        assert "cannot accept connections: Too many open files" in log, log[-2000:]
        assert log.count("cannot accept connections") <= 3, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        assert log_path.stat().st_size < 20_000
        assert timed_healthz(url, 5) < 5


# --------------------------------------------------------------------------- start-up


def test_serve_on_a_busy_port_fails_at_once_in_one_line(tmp_path: Path):
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        proc, _url, log_path = start_serve(tmp_path, MAILPORT_PORT=str(port))
        assert proc.wait(30) == 1
    finally:
        taken.close()
    output = log_path.read_text()
    lines = [line for line in output.splitlines() if "error [" in line]
    assert lines == [lines[0]] and lines[0].startswith("error [address_in_use]: "), output
    assert f"127.0.0.1:{port} is already in use by pid {os.getpid()}" in lines[0]
    assert "MAILPORT_PORT" in lines[0]
    assert "listening" not in output and "Traceback" not in output


def test_serve_prints_the_key_warning_once(tmp_path: Path):
    for expected in ("generated an encryption key", "using the key file"):  # first start, then a restart
        with serving(tmp_path) as (_proc, _url, log_path):
            output = log_path.read_text()
        assert output.count("MAILPORT_SECRET_KEYS is not set") == 1, output
        assert expected in output
        assert output.count("listening on") == 1


@pytest.mark.serial
def test_a_stalled_body_and_endless_headers_are_cut_off(tmp_path: Path):
    with serving(tmp_path, MAILPORT_BODY_TIMEOUT="2") as (_proc, url, log_path):
        bloated = connect(url)
        bloated.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        sent = 0
        try:
            while sent < 100 * MiB:  # httptools alone would take them all
                bloated.sendall(b"X-Padding: " + b"p" * 1000 + b"\r\n")
                sent += 1013
        except OSError:
            pass  # answered and closed
        assert sent < 16 * MiB
        status, body = read_response(bloated)
        assert (status, body["error"]) == (431, "request_headers_too_large")

        stalled = connect(url)
        stalled.sendall(
            f"POST /v1/tenants HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        started = time.monotonic()
        stalled.settimeout(10)
        try:
            while stalled.recv(65536):
                pass
        except ConnectionResetError:
            pass
        assert 1.5 < time.monotonic() - started < 5  # closed by the body deadline
        assert timed_healthz(url, 5) < 5
        assert "Traceback" not in log_path.read_text()


def test_worker_prints_the_key_warning_once_and_a_bad_key_in_one_line(tmp_path: Path):
    environment = clean_environment()
    environment["MAILPORT_DATA_DIR"] = str(tmp_path / "var")
    log_path = tmp_path / "worker.log"
    proc = start_mailport("worker", cwd=tmp_path, env=environment, log_path=log_path)
    try:
        deadline = time.monotonic() + 60
        while "mailport worker: watching" not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        stop(proc)
    assert log_path.read_text().count("MAILPORT_SECRET_KEYS is not set") == 1, log_path.read_text()

    environment["MAILPORT_SECRET_KEYS"] = "not-a-key"
    bad = subprocess.run(
        [sys.executable, "-m", "mailport", "worker"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stderr.decode().startswith("error [secret_key_invalid]") and b"Traceback" not in bad.stderr
