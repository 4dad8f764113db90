"""``POST /v1/connect-links`` over HTTP (ASGI) on SQLite and PostgreSQL, and the link landing."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.fixtures.api import BASE_URL


async def test_create_a_link_and_use_it_once(tenant_client: httpx.AsyncClient, app: FastAPI):
    response = await tenant_client.post(
        "/v1/connect-links",
        json={"purpose": "booking", "email": "Guest@Example.com", "return_url": "https://app.example/back"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["purpose"] == "booking" and body["email"] == "Guest@example.com"
    assert body["id"].startswith("cl_") and "/link/" in body["url"]
    path = body["url"].split("/link/", 1)[1]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as browser:
        first = await browser.get(f"/link/{path}")
        assert first.status_code == 303 and first.headers["location"] == "/connect"
        assert "mailport_session" in first.cookies
        wizard = await browser.get("/connect")
        assert wizard.status_code == 200 and 'value="Guest@example.com"' in wizard.text
        again = await browser.get(f"/link/{path}")
        assert again.status_code == 410 and "connect_link_used" in again.text
        assert "text/html" in again.headers["content-type"]


async def test_link_input_is_validated(tenant_client: httpx.AsyncClient):
    for body, field in (
        ({"return_url": "javascript:alert(1)"}, "return_url"),
        ({"return_url": "/relative"}, "return_url"),
        ({"expires_in": 5}, "expires_in"),
        ({"expires_in": 10**9}, "expires_in"),
        ({"email": "not an address"}, "email"),
        ({"colour": "red"}, "colour"),
    ):
        response = await tenant_client.post("/v1/connect-links", json=body)
        assert response.status_code == 422, body
        assert response.json()["field"] == field
    assert (await tenant_client.post("/v1/connect-links", json={})).status_code == 201


async def test_links_need_a_tenant_key(app: FastAPI, admin_client: httpx.AsyncClient):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as anonymous:
        response = await anonymous.post("/v1/connect-links", json={})
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert (await admin_client.post("/v1/connect-links", json={})).status_code == 403


async def test_web_pages_answer_html_errors_never_500(app: FastAPI):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as browser:
        assert (await browser.get("/")).headers["location"] == "/signin"
        signin = await browser.get("/signin")
        assert signin.status_code == 200 and 'name="csrf"' in signin.text
        assert "HttpOnly" in signin.headers["set-cookie"]
        bad = await browser.get("/link/not-a-link")
        assert bad.status_code == 400 and "connect_link_invalid" in bad.text
        forged = await browser.post("/connect/method", data={"email": "a@example.com"})
        assert forged.status_code == 303 or forged.status_code == 403
        static = await browser.get("/static/htmx.min.js")
        assert static.status_code == 200 and "htmx" in static.text[:2000]


async def test_a_link_visitor_is_told_google_is_not_set_up_without_operator_details(
    tenant_client: httpx.AsyncClient, app: FastAPI
):
    import re

    link = (await tenant_client.post("/v1/connect-links", json={"email": "guest@gmail.com"})).json()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as browser:
        opened = await browser.get("/link/" + link["url"].split("/link/", 1)[1])
        assert opened.status_code == 303
        page = await browser.get("/connect")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        method = await browser.post(
            "/connect/method", data={"email": "guest@gmail.com", "csrf": csrf.group(1)}
        )
    assert method.status_code == 200, method.text[:300]
    assert 'data-testid="oauth-unavailable"' in method.text
    assert "not set up on this service yet" in method.text
    assert "MAILPORT_GOOGLE_CLIENT_ID" not in method.text  # the operator's business, not the visitor's
