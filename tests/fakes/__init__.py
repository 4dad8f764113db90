"""Local emulations of the cloud mail APIs mailport talks to (Gmail API + Cloud Pub/Sub in
:mod:`tests.fakes.gmail`, Microsoft Graph in :mod:`tests.fakes.graph`).

Only Google's and Microsoft's clouds are emulated; everything of ours runs for real. Each fake is
an ASGI app served by :class:`AppServer` (uvicorn in a thread, its own event loop, a free
loopback port), with in-memory state the tests drive directly.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


class AppServer:
    """An ASGI app under uvicorn in a background thread on a free loopback port (``.url``)."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1") -> None:
        import uvicorn

        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.host, self.port = self._sock.getsockname()[:2]
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, timeout_keep_alive=30)
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> AppServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the fake server on {self.url} did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self._sock.close()

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
