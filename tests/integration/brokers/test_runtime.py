"""``MAILPORT_BROKERS`` in a process's runtime: its publishers start with delivery, and a
broker whose extra is missing stops start-up with a clear error."""

from __future__ import annotations

import asyncio
import sys

import pytest
from pydantic import SecretStr

from mailport.config import Settings
from mailport.errors import ConfigurationError
from mailport.events import NewEvent
from mailport.runtime import Runtime
from tests.fixtures.schema import build_migrated
from tests.integration.brokers.conftest import RedisSide

ONLY_DELIVERY = {"watchers": False, "delivery": True, "janitor": False, "sending": False, "contacts": False}


async def test_the_runtime_publishes_to_the_configured_brokers(settings: Settings) -> None:
    side = RedisSide()
    await side.open()
    services = await build_migrated(settings.model_copy(update={"brokers": [SecretStr(side.url(side.port))]}))
    runtime = Runtime(services, **ONLY_DELIVERY)
    try:
        await runtime.start()
        assert [p.target.kind for p in runtime.brokers] == ["redis"]
        tenant, _key = await services.tenants.create_tenant("runtime")
        event = await services.events.append(NewEvent(tenant.id, "mbx_1", "message.received", {}, "rt:1"))
        assert event is not None
        for _ in range(200):
            if [r.id for r in await side.received()] == [event.id]:
                break
            await asyncio.sleep(0.05)
        assert [r.id for r in await side.received()] == [event.id]
    finally:
        await runtime.stop()
        await services.aclose()
        await side.close()
    assert not any(p.running for p in runtime.brokers)


async def test_a_broker_without_its_extra_stops_start_up(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "nats", None)  # as if mailport[nats] were not installed
    url = "nats://127.0.0.1:4222?subject=mailport.never"
    services = await build_migrated(settings.model_copy(update={"brokers": [SecretStr(url)]}))
    runtime = Runtime(services, **ONLY_DELIVERY)
    try:
        with pytest.raises(ConfigurationError, match=r"nats-py is not installed"):
            await runtime.start()
        assert runtime.dispatcher is not None and not runtime.dispatcher.running  # stopped again
    finally:
        await runtime.stop()
        await services.aclose()
