"""The delivery tests' API client: the module's ``tenant`` fixture, signed in with its key.

``test_http1.py`` runs on asyncio's loop and on uvloop's: the webhook client runs in serve's
delivery child, on uvloop (mailport.event_loop), and in every other process, on asyncio's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

import httpx
import pytest

from mailport.api import create_app
from mailport.bootstrap import Services
from tests.fixtures.api import BASE_URL, TenantHandle


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    if item.path.name != "test_http1.py":
        return {"asyncio": asyncio.new_event_loop}
    import uvloop

    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
async def api(delivery_services: Services, tenant: TenantHandle) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=delivery_services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    ) as client:
        yield client
