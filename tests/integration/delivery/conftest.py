"""The delivery tests' API client: the module's ``tenant`` fixture, signed in with its key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from mailport.api import create_app
from mailport.bootstrap import Services
from tests.fixtures.api import BASE_URL, TenantHandle


@pytest.fixture
async def api(delivery_services: Services, tenant: TenantHandle) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=delivery_services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    ) as client:
        yield client
