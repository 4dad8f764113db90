"""The worker's HTTP port in-process (mailport.api.worker_http) on a free loopback port: readiness
follows the watchers and the database, a failing ping is a 503 and never a 500, and responses are
not held back by Nagle's algorithm (a kept-alive probe answers in milliseconds, not ~40 ms)."""

from __future__ import annotations

import socket
import time

import httpx

from mailport.api.worker_http import start_worker_http


async def test_readiness_follows_the_watchers_and_the_database() -> None:
    state = {"ready": False, "db": True}

    async def ping() -> bool:
        if state["db"] is None:
            raise OSError("database gone")
        return bool(state["db"])

    http = await start_worker_http(
        "127.0.0.1", 0, ready=lambda: {"watchers": bool(state["ready"])}, ping=ping
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            starting = await client.get("/readyz")
            assert starting.status_code == 503
            assert starting.json() == {
                "status": "unavailable",
                "checks": {"watchers": False, "database": True},
            }
            state["ready"] = True
            assert (await client.get("/readyz")).status_code == 200
            state["db"] = None  # the ping raises: still an answer, 503
            gone = await client.get("/readyz")
            assert gone.status_code == 503 and gone.json()["checks"] == {"watchers": True, "database": False}
            assert (await client.head("/healthz")).status_code == 200
    finally:
        await http.stop()


async def test_kept_alive_requests_are_not_delayed() -> None:
    async def ping() -> bool:
        return True

    http = await start_worker_http("127.0.0.1", 0, ready=lambda: {"watchers": True}, ping=ping)
    try:
        assert http._sock.proto == socket.IPPROTO_TCP  # so asyncio sets TCP_NODELAY per connection
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}") as client:
            await client.get("/healthz")
            started = time.perf_counter()
            for _ in range(20):
                assert (await client.get("/healthz")).status_code == 200
            # 20 delayed ACKs would take 800 ms; generous for a loaded machine
            assert time.perf_counter() - started < 0.6
    finally:
        await http.stop()
