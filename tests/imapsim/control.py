"""The simulator's control port: one JSON object per line each way, for a benchmark in another
process (``python -m tests.imapsim``). A small line protocol instead of HTTP: nothing to install,
and a pipelined ``deliver`` costs one write.

Requests (answers are one JSON line each, in order):

* ``{"op": "stats"}`` -> :meth:`ImapSim.stats`;
* ``{"op": "deliver", "users": ["u1", ...]}`` -> ``{"uids": [...], "monotonic": t, "wall": t}``
  (one message each; the times are just after the deliveries);
* ``{"op": "notifications", "after": k}`` -> ``{"next": n, "items": [[user, uid, mono, wall, idle], ...]}``
  (recorded notifications from index ``k``);
* ``{"op": "idle_users"}`` -> ``{"users": [...]}`` (users with an IDLE session now).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

from tests.imapsim.server import ImapSim


def answer(sim: ImapSim, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "stats":
        return sim.stats()
    if op == "deliver":
        uids = [sim.deliver(str(user)) for user in request.get("users", [])]
        return {"uids": uids, "monotonic": time.monotonic(), "wall": time.time()}
    if op == "notifications":
        after = int(request.get("after", 0))
        items = [[n.user, n.uid, n.monotonic, n.wall, n.idle] for n in sim.notifications[after:]]
        return {"next": after + len(items), "items": items}
    if op == "idle_users":
        return {"users": sorted({s.user for s in sim.sessions if s.idle_tag is not None and s.user})}
    return {"error": f"unknown op {op!r}"}


async def serve_control(sim: ImapSim, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    reply = answer(sim, json.loads(line))
                except (ValueError, TypeError) as exc:
                    reply = {"error": str(exc)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(client, host, port, limit=16 * 1024 * 1024)


class Control:
    """A blocking client of the control port (benchmarks call it from their own threads)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port))
        self.file = self.sock.makefile("rwb")

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        self.file.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        self.file.flush()
        reply: dict[str, Any] = json.loads(self.file.readline())
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def close(self) -> None:
        self.file.close()
        self.sock.close()
