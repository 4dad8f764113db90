"""The wizard's step forms and the dashboard's buttons over HTTP (ASGI): what a missing, expired
or foreign draft and an unknown mailbox are answered with, and in which order checks apply."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from tests.e2e.web.polling import finished
from tests.fixtures.api import BASE_URL, TenantHandle


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


DRAFT = re.compile(r'name="draft" value="([^"]+)"')
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _draft(page: httpx.Response) -> str:
    found = DRAFT.search(page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def _post_only_wizard_paths() -> list[str]:
    from mailport.web.wizard import router

    methods: dict[str, set[str]] = {}
    for route in router.routes:
        path, allowed = getattr(route, "path", ""), getattr(route, "methods", None) or set()
        if path.startswith("/connect") and "{" not in path:
            methods.setdefault(path, set()).update(allowed)
    return sorted(path for path, allowed in methods.items() if "GET" not in allowed)


async def test_opening_a_wizard_step_url_again_sends_the_visitor_to_the_wizard_not_to_json(
    operator: httpx.AsyncClient,
) -> None:
    paths = _post_only_wizard_paths()
    assert {"/connect/method", "/connect/manual", "/connect/test", "/connect/save"} <= set(paths)
    for path in paths:
        response = await operator.get(path, headers=HTML)
        assert response.status_code == 303, (path, response.text[:200])
        page = await operator.get(response.headers["location"], headers=HTML)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), path
        assert "cannot be opened again" in page.text and "nothing was saved" in page.text, path
        assert 'id="email"' in page.text  # the first step, ready to start again


async def test_other_web_pages_answer_a_browser_with_a_page(operator: httpx.AsyncClient) -> None:
    # A POST-only dashboard URL opened in the address bar: back to the dashboard.
    response = await operator.get("/mailboxes/mbx_00000000000000000000000000/test", headers=HTML)
    assert response.status_code == 303 and response.headers["location"] == "/"
    missing = await operator.get("/no-such-page", headers=HTML)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "not_found" in missing.text and "{" not in missing.text.partition("<body")[2][:50]
    # The API keeps its JSON, whoever asks.
    api = await operator.get("/v1/no-such-route", headers=HTML)
    assert api.status_code == 404 and api.json()["error"] == "not_found"
    assert (await operator.get("/connect/save")).status_code == 303  # any client: the wizard


async def _manual_page(
    operator: httpx.AsyncClient, email: str = "someone@dyn.example.test"
) -> httpx.Response:
    method = await operator.post("/connect/method", data={"email": email})
    assert method.status_code == 200, method.text[:300]
    manual = await operator.post("/connect/manual", data={"draft": _draft(method)})
    assert manual.status_code == 200 and 'id="imap_host"' in manual.text
    return manual


def _servers(port: str = "993") -> dict[str, str]:
    return {"imap_host": "127.0.0.1", "imap_port": port, "imap_security": "ssl", "imap_username": ""}


async def test_the_final_settings_preselect_the_api_default_leave_the_message_alone(
    operator: httpx.AsyncClient,
) -> None:
    from mailport.mailboxes.schemas import SettingsIn

    assert SettingsIn().after_processing == "none"
    manual = await _manual_page(operator)
    settings = await operator.post("/connect/settings", data={"draft": _draft(manual)})
    assert settings.status_code == 200
    checked = re.findall(r'name="after_processing" value="([^"]+)"\s+checked', settings.text)
    assert checked == ["none"]


async def test_a_typed_password_survives_an_invalid_form_and_edit_the_settings(
    operator: httpx.AsyncClient, secret_watch: object
) -> None:
    password = "typed-secret-pw-4711"
    manual = await _manual_page(operator)
    # An invalid port: the form comes back, the password is kept (sealed), never echoed.
    invalid = await operator.post(
        "/connect/manual/save", data={"draft": _draft(manual), "password": password, **_servers("99999")}
    )
    assert invalid.status_code == 422 and "65535" in invalid.text
    assert password not in invalid.text
    assert 'placeholder="unchanged"' in invalid.text  # the person sees that it is kept
    # Corrected without typing the password again: the connection test starts.
    tested = await operator.post("/connect/manual/save", data={"draft": _draft(invalid), **_servers("1")})
    assert tested.status_code == 200, tested.text[:500]
    assert 'data-testid="check"' in tested.text and password not in tested.text
    progress = await finished(operator, tested.text)
    assert 'data-ok="false"' in progress and "Edit the settings" in progress
    retry = re.search(r'action="/connect/manual">.*?name="draft" value="([^"]+)"', progress, re.S)
    assert retry is not None
    # "Edit the settings": the password field says it is kept, and saving without it keeps it.
    edit = await operator.post("/connect/manual", data={"draft": retry.group(1)})
    assert 'placeholder="unchanged"' in edit.text and password not in edit.text
    again = await operator.post("/connect/manual/save", data={"draft": _draft(edit), **_servers("2")})
    assert again.status_code == 200 and 'data-testid="check"' in again.text


@pytest.mark.parametrize(
    ("email", "name", "variable"),
    [
        ("someone@gmail.com", "Google", "MAILPORT_GOOGLE_CLIENT_ID"),
        ("someone@outlook.com", "Microsoft", "MAILPORT_MICROSOFT_CLIENT_ID"),
    ],
)
async def test_an_unconfigured_oauth_provider_is_shown_disabled_with_what_to_set(
    operator: httpx.AsyncClient, tenant: TenantHandle, email: str, name: str, variable: str
) -> None:
    page = await operator.post("/connect/method", data={"email": email})
    assert page.status_code == 200
    unavailable = page.text.partition('data-testid="oauth-unavailable"')[2].partition("</div>\n  </div>")[0]
    assert re.search(rf"<button[^>]*disabled[^>]*>Connect with {name}</button>", unavailable), unavailable
    assert variable in unavailable and "/v1/oauth-apps/" in unavailable
    assert re.search(r'<a href="https://[^"]+"', unavailable)  # where to register the app
    assert 'action="/connect/oauth"' not in page.text

    # Once the tenant has its own app, the button works and the explanation is gone.
    provider = name.lower()
    async with httpx.AsyncClient(
        transport=operator._transport,
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    ) as api:
        put = await api.put(
            f"/v1/oauth-apps/{provider}", json={"client_id": "tenant-app", "client_secret": "s"}
        )
        assert put.status_code in (200, 201), put.text
    page = await operator.post("/connect/method", data={"email": email})
    assert 'data-testid="oauth-unavailable"' not in page.text
    assert 'action="/connect/oauth"' in page.text


async def test_reconnecting_a_mailbox_shows_its_own_settings_not_the_defaults(
    operator: httpx.AsyncClient, tenant: TenantHandle, app: FastAPI
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    ) as api:
        made = await api.post(
            "/v1/mailboxes",
            json={
                "email": "kept@example.com",
                "auth_method": "password",
                "password": "pw",
                "purpose": "booking",
                "imap": {"host": "imap.example.com", "port": 993, "security": "ssl"},
                "settings": {
                    "from_name": "Acme Bookings",
                    "check_interval": 120,
                    "after_processing": "move:Done",
                },
            },
        )
    assert made.status_code == 201, made.text
    reconnect = await operator.post(f"/mailboxes/{made.json()['id']}/reconnect")
    assert reconnect.status_code == 200 and 'id="imap_host"' in reconnect.text
    settings = await operator.post("/connect/settings", data={"draft": _draft(reconnect)})
    checked = re.findall(r'name="after_processing" value="([^"]+)"\s+checked', settings.text)
    assert checked == ["move"]
    assert 'name="move_folder" value="Done"' in settings.text
    assert 'value="Acme Bookings"' in settings.text and 'value="booking"' in settings.text
    assert re.search(r'<option value="120"\s+selected', settings.text)  # not a usual choice: kept


async def test_a_final_settings_form_that_comes_back_never_fails_on_its_interval(
    operator: httpx.AsyncClient,
) -> None:
    manual = await _manual_page(operator)
    for interval in ("²", "١٢٠", "45"):
        response = await operator.post(
            "/connect/save",
            data={"draft": _draft(manual), "check_interval": interval, "after_processing": "delete"},
        )
        assert response.status_code == 422, (interval, response.text[:300])  # delete unconfirmed
        assert "confirm" in response.text


async def test_the_final_settings_offer_to_deliver_sent_mail_too(
    operator: httpx.AsyncClient, tenant: TenantHandle, app: FastAPI
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    ) as api:
        made = await api.post(
            "/v1/mailboxes",
            json={
                "email": "crm@example.com",
                "auth_method": "password",
                "password": "pw",
                "imap": {"host": "imap.example.com", "port": 993, "security": "ssl"},
                "settings": {"folders": ["INBOX", "role:sent", "Archive"]},
            },
        )
        assert made.status_code == 201, made.text
        url = f"/v1/mailboxes/{made.json()['id']}"
        reconnect = await operator.post(f"{url.removeprefix('/v1')}/reconnect")
        settings = await operator.post("/connect/settings", data={"draft": _draft(reconnect)})
        assert re.search(r'name="watch_sent" value="on"\s+checked', settings.text)
        # unticked: Sent is no longer watched, the folder set through the API stays
        saved = await operator.post(
            "/connect/save",
            data={"draft": _draft(settings), "check_interval": "60", "after_processing": "none"},
        )
        assert saved.status_code == 200, saved.text[:500]
        assert (await api.get(url)).json()["settings"]["folders"] == ["INBOX", "Archive"]
        # ticked again: Sent is watched again
        reconnect = await operator.post(f"{url.removeprefix('/v1')}/reconnect")
        settings = await operator.post("/connect/settings", data={"draft": _draft(reconnect)})
        assert not re.search(r'name="watch_sent" value="on"\s+checked', settings.text)
        saved = await operator.post(
            "/connect/save",
            data={
                "draft": _draft(settings),
                "check_interval": "60",
                "after_processing": "none",
                "watch_sent": "on",
            },
        )
        assert saved.status_code == 200, saved.text[:500]
        assert (await api.get(url)).json()["settings"]["folders"] == ["INBOX", "Archive", "role:sent"]
