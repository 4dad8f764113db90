"""The listening socket of ``mailport serve`` and of a worker's HTTP port, with one clear error
when it cannot be had. A module of its own so that a worker binds its port without importing
the whole API (``mailport.api.server`` loads every router: about 17 MiB per process)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from mailport.errors import AddressInUseError, ConfigurationError


def _listener_of(port: int) -> str:
    """``" by pid N (name)"`` for the local process listening on ``port``, when /proc shows it."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{parts[9]}]")
    for proc in Path("/proc").glob("[0-9]*") if inodes else ():
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                name = (proc / "comm").read_text().strip()
                return f" by pid {proc.name} ({name})"
        except OSError:
            continue
    return ""


def listen(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """The listening socket, or one clear error (port taken, address not local, bad name)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUseError(f"{host}:{port} is already in use{_listener_of(port)}") from None
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="Check MAILPORT_HOST and MAILPORT_PORT (a port below 1024 needs privileges).",
        ) from None
