"""Two mailport API instances behind a load balancer without sticky sessions, over ASGI.

Each instance is its own service graph and app (``create_app``) on the SAME database, as two
processes behind a load balancer would be; one browser (one cookie jar) talks to them through
:class:`Balancer`, which sends each request to the next instance in turn (round robin) unless
the test sends it to one (``with balancer.via("b"): …``). ``served`` says who answered what.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from fastapi import FastAPI


class Balancer(httpx.AsyncBaseTransport):
    def __init__(self, apps: dict[str, FastAPI]) -> None:
        self._transports = {name: httpx.ASGITransport(app=app) for name, app in apps.items()}
        self._order = list(apps)
        self._turn = 0
        self._forced: str | None = None
        self.served: list[tuple[str, str, str]] = []  # (instance, method, path)

    @contextmanager
    def via(self, name: str) -> Iterator[None]:
        """Send every request of the block to instance ``name``."""
        self._forced = name
        try:
            yield
        finally:
            self._forced = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        name = self._forced or self._order[self._turn % len(self._order)]
        if self._forced is None:
            self._turn += 1
        self.served.append((name, request.method, request.url.path))
        return await self._transports[name].handle_async_request(request)

    def instances(self, path_prefix: str) -> set[str]:
        """The instances that answered a request whose path starts with ``path_prefix``."""
        return {name for name, _method, path in self.served if path.startswith(path_prefix)}
