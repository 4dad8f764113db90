"""``MAILPORT_EVENT_LOOP``: which loop ``mailport worker`` runs on (:mod:`mailport.event_loop`)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from mailport.config import Settings
from mailport.event_loop import LoopFactory, loop_name, worker_loop


def _run_on(factory: LoopFactory | None) -> str:
    async def name() -> str:
        return loop_name(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(name())


def test_a_delivery_only_worker_runs_on_uvloop_by_default() -> None:
    factory = worker_loop("auto", ["delivery"])
    assert factory is not None
    assert _run_on(factory) == "uvloop"


@pytest.mark.parametrize("parts", [["watchers"], ["watchers", "delivery"], ["delivery", "sending"]])
def test_a_worker_with_mail_clients_stays_on_asyncios_loop(parts: list[str]) -> None:
    assert worker_loop("auto", parts) is None
    assert _run_on(worker_loop("auto", parts)) == "asyncio"


def test_asyncio_forces_asyncios_loop() -> None:
    assert worker_loop("asyncio", ["delivery"]) is None


def test_the_setting_takes_auto_or_asyncio_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPORT_EVENT_LOOP", "asyncio")
    assert Settings(_env_file=None).event_loop == "asyncio"  # type: ignore[call-arg]
    monkeypatch.setenv("MAILPORT_EVENT_LOOP", "trio")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]
