"""The delivery tests' API client: the module's ``tenant`` fixture, signed in with its key.

``test_http1.py`` runs on asyncio's loop and on uvloop's: the webhook client runs in serve's
delivery child, on uvloop (mailport.event_loop), and in every other process, on asyncio's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from mailport.api import create_app
from mailport.bootstrap import Services
from tests.fixtures.api import BASE_URL, TenantHandle
from tests.fixtures.loops import LoopFactories, asyncio_loop, both_loops


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> LoopFactories:
    return both_loops() if item.path.name == "test_http1.py" else asyncio_loop()


@pytest.fixture
async def api(delivery_services: Services, tenant: TenantHandle) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=delivery_services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    ) as client:
        yield client
