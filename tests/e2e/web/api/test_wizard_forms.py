"""The wizard's step forms and the dashboard's buttons over HTTP (ASGI): what a missing, expired
or foreign draft and an unknown mailbox are answered with, and in which order checks apply."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.fixtures.api import BASE_URL


async def test_a_step_without_a_draft_is_invalid_input(operator: httpx.AsyncClient) -> None:
    response = await operator.post("/connect/test", data={})
    assert response.status_code == 422
    assert "invalid_input" in response.text and "draft" in response.text


async def test_an_expired_or_forged_draft_sends_the_visitor_back_to_the_start(
    operator: httpx.AsyncClient,
) -> None:
    for path in ("/connect/test", "/connect/manual", "/connect/settings"):
        response = await operator.post(path, data={"draft": "not-a-sealed-draft"})
        assert response.status_code == 422, path
        assert "this wizard page expired" in response.text, path


async def test_an_invalid_field_is_reported_before_the_draft_is_opened(operator: httpx.AsyncClient) -> None:
    response = await operator.post("/connect/password", data={"draft": "forged", "password": "p" * 1025})
    assert response.status_code == 422
    assert "password" in response.text and "this wizard page expired" not in response.text


async def test_the_dashboard_buttons_refuse_an_unknown_mailbox(operator: httpx.AsyncClient) -> None:
    for action in ("test", "disable", "enable", "reconnect"):
        response = await operator.post(f"/mailboxes/mbx_00000000000000000000000000/{action}")
        assert response.status_code == 404, (action, response.text[:300])
        assert "not_found" in response.text or "mailbox_not_found" in response.text, action


async def test_the_wizard_needs_a_signed_in_visitor(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as anonymous:
        response = await anonymous.post("/connect/test", data={"draft": "x"})
    assert response.status_code in (303, 403)
