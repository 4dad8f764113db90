"""A signed-in wizard visitor over ASGI, shared by the wizard form tests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.api import BASE_URL, TenantHandle

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def operator(app: FastAPI, tenant: TenantHandle) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in with the tenant's key, sending its CSRF token on every request."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as browser:
        token = CSRF.search((await browser.get("/signin")).text)
        assert token is not None
        signed = await browser.post("/signin", data={"csrf": token.group(1), "api_key": tenant.api_key})
        assert signed.status_code == 303, signed.text
        token = CSRF.search((await browser.get("/connect")).text)  # the signed-in session's own
        assert token is not None
        browser.headers["X-CSRF-Token"] = token.group(1)
        yield browser
