"""The IMAP simulator (``python -m tests.imapsim``) as a child process, for the benchmarks that
watch thousands of mailboxes (``fleet.py``, ``watchers.py``): its own process, so that its
memory and CPU are not counted as the client's, and a control connection to deliver mail."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from tests.imapsim.control import Control  # noqa: E402


def raise_nofile_to_hard() -> None:
    """``preexec_fn`` of the children: the open-files soft limit at the hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Simulator:
    """``python -m tests.imapsim`` as a child process, and its control connection. With
    ``tls=(cert, key)`` it also listens with implicit TLS on :attr:`tls_port`."""

    def __init__(self, *, tls: tuple[Path, Path] | None = None) -> None:
        command = [sys.executable, "-m", "tests.imapsim"]
        if tls is not None:
            command += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            preexec_fn=raise_nofile_to_hard,
        )
        assert self.proc.stdout is not None
        ready = json.loads(self.proc.stdout.readline())
        self.port: int = ready["imap_port"]
        self.tls_port: int = ready.get("imaps_port", 0)
        self.control = Control(ready["control_port"])
        self.lock = threading.Lock()

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            return self.control.call(op, **fields)

    def idle_users(self) -> int:
        return int(self.call("stats")["idle_users"])

    def stop(self) -> None:
        self.control.close()
        self.proc.terminate()
        self.proc.wait(10)
