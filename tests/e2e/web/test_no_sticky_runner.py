"""A connection test whose runner dies (``kill -9`` of a real ``mailport serve``) mid-check: the
other instance (a service graph in this process, on the same PostgreSQL database) shows the
steps the dead one had published, then "the test stopped", with Retry — never a spinner that
turns forever."""

from __future__ import annotations

import asyncio
import html
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from mailport.bootstrap import Services
from mailport.config import Settings
from tests.e2e.web.polling import run_of
from tests.fixtures.api import ADMIN_KEY, BASE_URL, TenantHandle, make_settings
from tests.fixtures.process import clean_environment, start_mailport, stop, wait_until_healthy
from tests.mailstack.dovecot import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
DRAFT = re.compile(r'name="draft" value="([^"]+)"')


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


@pytest.fixture
def settings(fresh_database_url: str, tmp_path: Path, secret_key: str) -> Settings:
    built = make_settings(fresh_database_url, tmp_path / "var", secret_key)
    built.allow_private_hosts = True
    return built


@pytest.fixture
async def silent_imap() -> AsyncIterator[int]:
    """An "IMAP server" that accepts connections and never greets: the check waits at the greeting."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()


@pytest.fixture
def serve(
    settings: Settings, services: Services, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Instance A: ``mailport serve`` on the same database and keys (``services`` migrated it)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_environment()
    assert settings.secret_keys is not None
    env.update(
        {
            "MAILPORT_PORT": str(port),
            "MAILPORT_DATA_DIR": str(tmp_path / "serve"),
            "MAILPORT_DATABASE_URL": settings.effective_database_url,
            "MAILPORT_SECRET_KEYS": settings.secret_keys.get_secret_value(),
            "MAILPORT_ADMIN_KEY": ADMIN_KEY,
            "MAILPORT_PUBLIC_URL": url,
            "MAILPORT_ALLOW_PRIVATE_HOSTS": "true",
            "MAILPORT_WATCHERS": "false",
            "MAILPORT_CHECK_TIMEOUT": "60",
        }
    )
    log = tmp_path / "serve.log"
    proc = start_mailport("serve", cwd=tmp_path, env=env, log_path=log)
    try:
        wait_until_healthy(proc, url, log)
        yield url, proc
    finally:
        if proc.poll() is None:
            stop(proc)


async def test_the_runner_dies_mid_check_and_the_other_instance_says_so(
    serve: tuple[str, subprocess.Popen[bytes]],
    app: FastAPI,
    services: Services,
    tenant: TenantHandle,
    silent_imap: int,
) -> None:
    url, proc = serve
    async with httpx.AsyncClient(base_url=url, timeout=10) as on_a:
        token = CSRF.search((await on_a.get("/signin")).text)
        assert token is not None
        signed = await on_a.post("/signin", data={"csrf": token.group(1), "api_key": tenant.api_key})
        assert signed.status_code == 303, signed.text
        token = CSRF.search((await on_a.get("/connect")).text)
        assert token is not None
        on_a.headers["X-CSRF-Token"] = token.group(1)
        method = await on_a.post("/connect/method", data={"email": "quiet@example.test"})
        draft = DRAFT.search(method.text)
        assert draft is not None, method.text[:500]
        page = await on_a.post(
            "/connect/manual/save",
            data={
                "draft": html.unescape(draft.group(1)),
                "password": "pw-quiet-4711",
                "imap_host": "127.0.0.1",
                "imap_port": str(silent_imap),
                "imap_security": "none",
            },
        )
        assert page.status_code == 200, page.text[:500]
        cookie = on_a.cookies["mailport_session"]
        csrf = on_a.headers["X-CSRF-Token"]
    run, values = run_of(page.text)

    # Instance B: the same browser (its cookie and CSRF token), another process's run.
    headers = {"Cookie": f"mailport_session={cookie}", "X-CSRF-Token": csrf}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=headers
    ) as on_b:
        deadline = time.monotonic() + 10
        while True:  # A publishes DNS and the connection; the greeting never comes
            fragment = (await on_b.post(f"/connect/test/{run}", data=values)).text
            if 'data-step="imap-tcp_connect"' in fragment:
                break
            assert time.monotonic() < deadline, fragment
            await asyncio.sleep(0.1)
        assert 'data-done="false"' in fragment and "Working…" in fragment

        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        stopped = (await on_b.post(f"/connect/test/{run}", data=values)).text
        noticed = time.monotonic() - killed
    # A process of this host that no longer exists: noticed at once, not after 30 s.
    print(f"the dead runner was noticed {noticed:.3f} s after the kill")
    assert 'data-done="true"' in stopped and 'data-ok="false"' in stopped, stopped
    assert "The test stopped before it finished" in stopped and "check_interrupted" in stopped
    assert 'data-step="imap-tcp_connect"' in stopped  # what it had done is still shown
    assert 'action="/connect/test"' in stopped and "Retry" in stopped  # the way to run it again
    assert "hx-post" not in stopped
    assert noticed < 2
    record = await app.state.web.runs.store.get(tenant.id, run)
    assert record is not None and record.state == "failed"
