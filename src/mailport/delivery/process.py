"""Webhook delivery in a child process of ``mailport serve`` (``MAILPORT_DELIVERY_PROCESS``).

Why: in a backlog both ingestion and webhook delivery are CPU-bound, and one Python process
uses one core. Split by hand (``MAILPORT_WORKER_PARTS=delivery mailport worker`` beside serve,
docs/fleet.md) the two halves each get a core, but the user must run, restart and stop a second
process, and on SQLite the delivery worker only finds the other process's events at its
``PRAGMA data_version`` poll (20 ms: more than the whole delivery overhead allowed by issue 21).

Here ``serve`` runs that worker itself and talks to it through two pipes:

* **wake** (parent → child): a byte per commit that appended events (``a``) or changed what the
  dispatcher reads in a full cycle (``c``: a replay, an endpoint, an acceptance), so the child
  wakes as an in-process dispatcher would, on SQLite and PostgreSQL alike. When the parent dies,
  even by SIGKILL, the child reads end-of-file and stops gracefully (releasing its lease).
* **status** (child → parent): ``r`` once the dispatcher runs, for serve's ``/readyz``.

The child is a plain ``mailport worker`` with the parent's environment and
``MAILPORT_WORKER_PARTS=delivery``, in a session of its own (a terminal's Ctrl-C reaches the
parent, which stops it). A child that exits is started again after 1 s, doubling to 30 s while
it keeps failing. Its deliveries keep the dispatcher's lease, so at-least-once delivery and
per-mailbox order are the dispatcher's as always; a restarted child takes the lease over within
the lease time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from mailport.events import EventLog
from mailport.tasks import cancel_and_wait

log = logging.getLogger(__name__)

PIPES_ENV = "MAILPORT_PARENT_PIPES"  # "<wake read fd>,<status write fd>" in the child's environment
APPENDED = b"a"  # events were appended and committed
CHANGED = b"c"  # something a full cycle reads changed (no new events)
READY = b"r"  # the child's dispatcher runs
RESTART_FIRST = 1.0  # seconds before a child that exited is started again
RESTART_MAX = 30.0
STABLE_AFTER = 60.0  # a child that ran this long restarts after RESTART_FIRST again
STOP_GRACE = 10.0  # SIGTERM, then this long before SIGKILL


class DeliveryProcess:
    """The parent's side: starts, watches and restarts the child; wakes it at each commit."""

    def __init__(
        self,
        event_log: EventLog,
        *,
        worker_port: int | None = None,
        command: list[str] | None = None,
        restart_first: float = RESTART_FIRST,
    ) -> None:
        self._event_log = event_log
        self._worker_port = worker_port
        self._command = command or [sys.executable, "-m", "mailport", "worker"]
        self._restart_first = restart_first
        self._wake: int | None = None  # write end of the current child's wake pipe
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._unhook: Callable[[], None] | None = None
        self.ready = False  # the current child's dispatcher runs
        self.restarts = 0
        self.returncode: int | None = None  # the last child's exit status

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        self._unhook = self._event_log.on_commit(self._committed)
        self._task = asyncio.create_task(self._supervise(), name="delivery-process")

    async def stop(self) -> None:
        """SIGTERM the child (it finishes its sends in flight and releases its lease), SIGKILL
        after :data:`STOP_GRACE` seconds; no restart."""
        self._stopping = True
        if self._unhook is not None:
            self._unhook()
            self._unhook = None
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE)
            except TimeoutError:
                log.warning("the delivery process did not stop within %.0f s; killing it", STOP_GRACE)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=5)
            self._task = None
        self._close_wake()

    def _committed(self, appended: bool) -> None:
        """:meth:`EventLog.on_commit`: wake the child (a full pipe means it has wake-ups to read)."""
        if self._wake is None:
            return
        try:
            os.write(self._wake, APPENDED if appended else CHANGED)
        except (BlockingIOError, BrokenPipeError):
            pass  # already woken, or exiting (a new child reads the database at its start)

    async def _supervise(self) -> None:
        delay = self._restart_first
        while not self._stopping:
            started = time.monotonic()
            try:
                returncode = await self._run_once()
            except OSError:
                log.exception("the delivery process could not be started")
                returncode = None
            if self._stopping:
                return
            if time.monotonic() - started >= STABLE_AFTER:
                delay = self._restart_first
            log.warning(
                "the delivery process exited (status %s); starting it again in %.0f s", returncode, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX)
            self.restarts += 1

    async def _run_once(self) -> int:
        wake_read, wake_write = os.pipe()
        status_read, status_write = os.pipe()
        env = dict(os.environ)
        env["MAILPORT_WORKER_PARTS"] = "delivery"
        env[PIPES_ENV] = f"{wake_read},{status_write}"
        env.pop("MAILPORT_WORKER_PORT", None)
        if self._worker_port is not None:
            env["MAILPORT_WORKER_PORT"] = str(self._worker_port)
        loop = asyncio.get_running_loop()
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self._command,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(wake_read, status_write),
                start_new_session=True,
            )
        except BaseException:
            for fd in (wake_read, wake_write, status_read, status_write):
                os.close(fd)
            raise
        log.info("webhook delivery runs in process %d", self._process.pid)
        os.close(wake_read)
        os.close(status_write)
        os.set_blocking(wake_write, False)
        self._wake = wake_write
        self._committed(True)  # whatever came while no child listened
        loop.add_reader(status_read, self._status, status_read)
        try:
            self.returncode = await self._process.wait()
            return self.returncode
        finally:
            self.ready = False
            loop.remove_reader(status_read)
            os.close(status_read)
            self._close_wake()

    def _status(self, fd: int) -> None:
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            return
        if not data:  # the child closed it: exiting
            asyncio.get_running_loop().remove_reader(fd)
            self.ready = False
        elif READY in data:
            self.ready = True

    def _close_wake(self) -> None:
        if self._wake is not None:
            os.close(self._wake)
            self._wake = None


class ParentLink:
    """The child's side (``mailport worker`` started by :class:`DeliveryProcess`): the parent's
    wake-ups wake this process's dispatcher, and its end-of-file stops the worker."""

    def __init__(self, wake: int, status: int, event_log: EventLog, stop: asyncio.Event) -> None:
        self._wake = wake
        self._status = status
        self._event_log = event_log
        self._stop = stop

    @classmethod
    def from_environment(cls, event_log: EventLog, stop: asyncio.Event) -> ParentLink | None:
        value = os.environ.pop(PIPES_ENV, None)
        if not value:
            return None
        wake, status = (int(part) for part in value.split(","))
        return cls(wake, status, event_log, stop)

    def start(self) -> None:
        os.set_blocking(self._wake, False)
        asyncio.get_running_loop().add_reader(self._wake, self._read)

    def ready(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._status, READY)

    def close(self) -> None:
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_reader(self._wake)
        for fd in (self._wake, self._status):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read(self) -> None:
        try:
            data = os.read(self._wake, 4096)
        except BlockingIOError:
            return
        if not data:
            log.warning("the serving process is gone; the delivery process stops")
            asyncio.get_running_loop().remove_reader(self._wake)
            self._stop.set()
            return
        if APPENDED in data:
            self._event_log.foreign_commit()
        if CHANGED in data:
            self._event_log.changed_elsewhere()


__all__ = ["PIPES_ENV", "DeliveryProcess", "ParentLink"]
