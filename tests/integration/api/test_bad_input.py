"""Bad input that used to get through: each is a 4xx with a stable code (SQLite and PostgreSQL).

NUL in any request text (was a 500 on PostgreSQL), line breaks in a return URL (header
injection), Unicode line separators and bidi controls in one-line fields, the same address in
another case (two watchers, every message twice), non-UTF-8 or too deeply nested JSON (was an
unlisted 400).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from mailport.connectors.base import MessageRef
from tests.integration.api.helpers import mailbox_body, with_path

JSON = {"content-type": "application/json"}
REF = MessageRef("INBOX", "1", "1").encode()


def raw_json(body: object) -> bytes:
    return json.dumps(body).encode()  # keeps NUL and lone surrogates as \u escapes


async def send(client: httpx.AsyncClient, method: str, path: str, body: object) -> httpx.Response:
    return await client.request(method, path, content=raw_json(body), headers=JSON)


def assert_refused(response: httpx.Response, field: str, code: str = "invalid_input") -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["error"], body["field"]) == (code, field), body
    assert body["detail"] and body["hint"]


async def test_nul_in_an_oauth_app_client_id_is_422(tenant_client: httpx.AsyncClient) -> None:
    for value in ("abc\x00def", "\x00", "abc\u2028def", "abc\r\n"):
        response = await send(tenant_client, "PUT", "/v1/oauth-apps/google", {"client_id": value})
        assert_refused(response, "client_id")
    response = await send(
        tenant_client, "PUT", "/v1/oauth-apps/google", {"client_id": "ok", "client_secret": "s\x00"}
    )
    assert_refused(response, "client_secret")
    assert "s\\u0000" not in response.text
    ok = await send(tenant_client, "PUT", "/v1/oauth-apps/google", {"client_id": " app-1 "})
    assert ok.status_code == 200 and ok.json()["client_id"] == "app-1"


# (method, path, a valid body, the text fields to poison): every request model the API takes
BODIES: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("POST", "/v1/mailboxes", mailbox_body(), ["label", "purpose", "imap.username", "settings.from_name"]),
    ("PUT", "/v1/oauth-apps/microsoft", {"client_id": "a", "client_secret": "b", "tenant": "common"},
     ["client_id", "client_secret", "tenant"]),
    ("POST", "/v1/webhooks", {"url": "https://hooks.example.com/in", "description": "d"},
     ["url", "description"]),
    ("POST", "/v1/connect-links", {"purpose": "p", "email": "a@example.com", "return_url": "https://a.example/"},
     ["purpose", "email", "return_url"]),
    ("POST", "/v1/detect", {"email": "a@example.com"}, ["email"]),
    ("POST", "/v1/check", {"email": "a@example.com", "password": "pw", "ca_pem": "x",
                           "imap": {"host": "imap.example.com", "port": 993, "security": "ssl"}},
     ["email", "password", "ca_pem", "imap.host"]),
    ("POST", "/v1/oauth/google/authorize", {"email": "a@example.com", "return_url": "https://a.example/"},
     ["email", "purpose", "return_url"]),
    ("POST", "/v1/mailboxes/mbx_x/messages/search", {"subject": "s"},
     ["folder", "cursor", "from", "to", "subject", "text", "native", "message_id"]),
    ("POST", "/v1/mailboxes/mbx_x/messages/move", {"refs": [REF], "folder": "Archive"}, ["folder"]),
    ("POST", "/v1/mailboxes/mbx_x/folders", {"name": "New"}, ["name", "parent"]),
    ("PATCH", "/v1/mailboxes/mbx_x/folders/Old", {"name": "New"}, ["name", "parent"]),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "fields"), BODIES, ids=[b[1] for b in BODIES])
async def test_nul_and_lone_surrogates_are_refused_in_every_request_body(
    tenant_client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any], fields: list[str]
) -> None:
    for field in fields:
        for bad in ("a\x00b", "\ud800"):
            response = await send(tenant_client, method, path, with_path(body, field, bad))
            assert response.status_code == 422, (field, response.text)
            assert response.json()["field"] == field, response.text


async def test_the_tenant_name_refuses_nul_too(admin_client: httpx.AsyncClient) -> None:
    assert_refused(await send(admin_client, "POST", "/v1/tenants", {"name": "a\x00b"}), "name")


BAD_URLS = [
    "https://app.example.com/done\r\nSet-Cookie: a=1",
    "https://app.example.com/done\nx",
    "https://app.example.com/\tdone",
    "https://app.example.com/ done",
    "https://app.example.com/\u2028",
    "https://app.example.com/\x85",
    "javascript:alert(1)",
    "https:///no-host",
]


async def test_line_breaks_in_return_urls_are_refused(tenant_client: httpx.AsyncClient) -> None:
    for url in BAD_URLS:
        assert_refused(
            await send(tenant_client, "POST", "/v1/connect-links", {"return_url": url}), "return_url"
        )
        authorize = await send(tenant_client, "POST", "/v1/oauth/google/authorize", {"return_url": url})
        assert_refused(authorize, "return_url")
        webhook = await send(tenant_client, "POST", "/v1/webhooks", {"url": url})
        assert webhook.status_code == 422 and webhook.json()["field"] == "url", (url, webhook.text)
    ok = await send(
        tenant_client, "POST", "/v1/connect-links", {"return_url": "https://app.example.com/d?x=1"}
    )
    assert ok.status_code == 201 and ok.json()["return_url"] == "https://app.example.com/d?x=1"


SEPARATORS = ["\u2028", "\u2029", "\u0085", "\x0b", "\r\n", "\u202e", "\u2066"]


async def test_line_separators_and_bidi_controls_in_from_name_are_refused(
    tenant_client: httpx.AsyncClient,
) -> None:
    created = await send(tenant_client, "POST", "/v1/mailboxes", mailbox_body())
    assert created.status_code == 201, created.text
    for sep in SEPARATORS:
        for value in (f"Acme{sep}Bcc: x@evil.example", f"Acme{sep}"):
            body = with_path(mailbox_body(), "settings.from_name", value)
            assert_refused(await send(tenant_client, "POST", "/v1/mailboxes", body), "settings.from_name")
            patch = {"settings": {"from_name": value}}
            response = await send(tenant_client, "PATCH", f"/v1/mailboxes/{created.json()['id']}", patch)
            assert_refused(response, "settings.from_name")
            label = await send(tenant_client, "POST", "/v1/mailboxes", mailbox_body(label=value))
            assert_refused(label, "label")
    ok = await send(
        tenant_client, "POST", "/v1/mailboxes", with_path(mailbox_body(), "settings.from_name", "Åcme ✓")
    )
    assert ok.status_code == 201 and ok.json()["settings"]["from_name"] == "Åcme ✓"


async def test_the_same_address_in_another_case_is_one_mailbox(
    tenant_client: httpx.AsyncClient, new_tenant_client: Any
) -> None:
    first = await send(tenant_client, "POST", "/v1/mailboxes", mailbox_body(email="dup@example.com"))
    assert first.status_code == 201, first.text
    for other in ("DUP@EXAMPLE.COM", "Dup@Example.com", " dup@example.com "):
        again = await send(tenant_client, "POST", "/v1/mailboxes", mailbox_body(email=other))
        assert again.status_code == 409, again.text
        body = again.json()
        assert (body["error"], body["field"], body["mailbox_id"]) == ("conflict", "email", first.json()["id"])
    # an internationalized domain is the same in its Unicode and its ASCII (IDNA) spelling
    idn = await send(tenant_client, "POST", "/v1/mailboxes", mailbox_body(email="jörg@bücher.example"))
    assert idn.status_code == 201, idn.text
    twin = await send(
        tenant_client, "POST", "/v1/mailboxes", mailbox_body(email="JÖRG@xn--bcher-kva.example")
    )
    assert twin.status_code == 409 and twin.json()["mailbox_id"] == idn.json()["id"]
    listed = (await tenant_client.get("/v1/mailboxes")).json()["items"]
    assert sorted(m["email"] for m in listed) == ["dup@example.com", "jörg@bücher.example"]
    # another tenant has its own addresses
    _, other_client = await new_tenant_client()
    elsewhere = await send(other_client, "POST", "/v1/mailboxes", mailbox_body(email="DUP@example.com"))
    assert elsewhere.status_code == 201, elsewhere.text


ENDPOINTS = [("POST", "/v1/mailboxes"), ("PATCH", "/v1/mailboxes/mbx_x"), ("POST", "/v1/webhooks"),
             ("POST", "/v1/connect-links"), ("PUT", "/v1/oauth-apps/google"), ("POST", "/v1/detect"),
             ("POST", "/v1/check")]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b'{"label": "caf\xe9"}', "not valid UTF-8"),  # Latin-1, not UTF-8
        (b"\xff\xfe\x00\x00", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"label": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ],
    ids=["latin-1", "garbage", "deep-array", "deep-field"],
)
async def test_unreadable_json_is_422_invalid_json_everywhere(
    tenant_client: httpx.AsyncClient, app: FastAPI, content: bytes, detail: str
) -> None:
    for method, path in ENDPOINTS:
        response = await tenant_client.request(method, path, content=content, headers=JSON)
        assert response.status_code == 422, (path, response.status_code, response.text[:200])
        body = response.json()
        assert body["error"] == "invalid_json" and detail in body["detail"] and body["hint"], body
    # what the API answers is what its OpenAPI lists: 422, never 400
    spec = app.openapi()
    for method, path in ENDPOINTS:
        template = path.replace("mbx_x", "{mailbox_id}").replace("google", "{provider}")
        responses = spec["paths"][template][method.lower()]["responses"]
        assert "422" in responses and "400" not in responses, (path, sorted(responses))


async def test_json_nested_deeply_but_parseable_is_422_never_500(tenant_client: httpx.AsyncClient) -> None:
    nested: object = "x\x00"
    for _ in range(500):
        nested = [nested]
    for method, path in ENDPOINTS:
        response = await send(
            tenant_client, method, path, {"label": nested, "events": nested, "email": nested}
        )
        assert response.status_code in (404, 422), (path, response.text[:200])
