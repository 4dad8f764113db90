"""The live mailbox routes refuse what they cannot use before any server is asked: another
tenant's mailbox is 404 on every route, bad refs, folders, cursors, search fields, flags and
oversized bulk requests are 422 with a code and the offending field, an import over the
message limit is 413 ``message_too_large``; and the OpenAPI lists every code's status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from mailport.api import create_app
from mailport.config import Settings
from mailport.connectors.base import MessageRef
from mailport.mailboxes.mail_schemas import MAX_BULK
from tests.fixtures.api import NewTenantClient
from tests.integration.api.helpers import mailbox_body
from tests.mailstack.dovecot import free_port

REF = MessageRef("INBOX", "1", "7").encode()
MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"
RFC822 = {"content-type": "message/rfc822"}

# (method, path under the mailbox, JSON body or raw bytes): every live route, with valid input
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/folders", None),
    ("POST", "/folders", {"name": "Projects"}),
    ("PATCH", "/folders/Projects", {"name": "Done"}),
    ("DELETE", "/folders/Projects", None),
    ("GET", "/messages?folder=INBOX&limit=5", None),
    ("POST", "/messages/search", {"from": "a@example.com"}),
    ("GET", f"/messages/{REF}", None),
    ("GET", f"/messages/{REF}/raw", None),
    ("GET", f"/messages/{REF}/attachments/0", None),
    ("POST", f"/messages/{REF}/flags", {"add": ["seen"]}),
    ("POST", f"/messages/{REF}/move", {"folder": "Archive"}),
    ("DELETE", f"/messages/{REF}", None),
    ("POST", "/messages/flags", {"refs": [REF], "add": ["flagged"]}),
    ("POST", "/messages/move", {"refs": [REF], "folder": "Archive"}),
    ("POST", "/messages/delete", {"refs": [REF], "permanent": True}),
    ("POST", "/messages/import?folder=INBOX&flags=seen", MESSAGE),
]


async def call(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return await client.request(method, path, content=body, headers=RFC822)
    return await client.request(method, path, json=body)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "allowed_hosts": ["127.0.0.1"],
            "max_message_bytes": 256 * 1024,
            "max_request_bytes": 128 * 1024,
        }
    )


@pytest.fixture
async def mailbox_id(tenant_client: httpx.AsyncClient) -> str:
    """A mailbox whose server is not there: whatever reaches it answers 503."""
    imap = {"host": "127.0.0.1", "port": free_port(), "security": "none", "username": "u"}
    made = await tenant_client.post("/v1/mailboxes", json=mailbox_body(imap=imap, smtp=None))
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def test_another_tenants_mailbox_is_404_on_every_route(
    tenant_client: httpx.AsyncClient, new_tenant_client: NewTenantClient, mailbox_id: str
) -> None:
    _other, intruder = await new_tenant_client()
    for method, path, body in ROUTES:
        answer = await call(intruder, method, f"/v1/mailboxes/{mailbox_id}{path}", body)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"] == "not_found", (method, path, answer.text)
    for method, path, body in ROUTES:  # a mailbox that does not exist at all: the same answer
        answer = await call(tenant_client, method, f"/v1/mailboxes/mbx_nonexistent{path}", body)
        assert answer.status_code == 404, (method, path, answer.text)


def assert_refused(answer: httpx.Response, field: str, code: str = "invalid_input") -> None:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert (body["error"], body.get("field")) == (code, field), body
    assert body["detail"] and body["hint"]


async def test_bad_refs_are_422_with_the_field(tenant_client: httpx.AsyncClient, mailbox_id: str) -> None:
    base = f"/v1/mailboxes/{mailbox_id}/messages"
    for bad in ("ref_%21%21", "ref_bm90LWpzb24", "ref_WyJhIiwiYiJd"):  # not base64, not JSON, a pair
        for method, path, body in [
            ("GET", f"{base}/{bad}", None),
            ("GET", f"{base}/{bad}/raw", None),
            ("GET", f"{base}/{bad}/attachments/0", None),
            ("POST", f"{base}/{bad}/flags", {"add": ["seen"]}),
            ("POST", f"{base}/{bad}/move", {"folder": "Archive"}),
            ("DELETE", f"{base}/{bad}", None),
        ]:
            assert_refused(await call(tenant_client, method, path, body), "ref")
    for path, body in [
        ("flags", {"refs": [REF, "ref_x!"], "add": ["seen"]}),
        ("move", {"refs": [REF, "nope"], "folder": "Archive"}),
        ("delete", {"refs": [REF, "ref_WyJhIiwiYiJd"]}),
    ]:
        assert_refused(await tenant_client.post(f"{base}/{path}", json=body), "refs.1")


async def test_bulk_requests_take_one_to_a_thousand_refs(
    tenant_client: httpx.AsyncClient, mailbox_id: str
) -> None:
    base = f"/v1/mailboxes/{mailbox_id}/messages"
    too_many = [MessageRef("INBOX", "1", str(n)).encode() for n in range(MAX_BULK + 1)]
    for path, extra in [("flags", {"add": ["seen"]}), ("move", {"folder": "A"}), ("delete", {})]:
        assert_refused(await tenant_client.post(f"{base}/{path}", json={"refs": too_many, **extra}), "refs")
        assert_refused(await tenant_client.post(f"{base}/{path}", json={"refs": [], **extra}), "refs")


async def test_bad_folders_cursors_and_limits(tenant_client: httpx.AsyncClient, mailbox_id: str) -> None:
    base = f"/v1/mailboxes/{mailbox_id}"
    for folder in ("In*", "a%b", "a\r\nb", ""):
        assert_refused(await tenant_client.get(f"{base}/messages", params={"folder": folder}), "folder")
        answer = await tenant_client.post(f"{base}/messages/search", json={"folder": folder})
        assert_refused(answer, "folder")
        answer = await tenant_client.post(f"{base}/messages/{REF}/move", json={"folder": folder})
        assert_refused(answer, "folder")
        answer = await tenant_client.post(f"{base}/folders", json={"name": "x", "parent": folder})
        assert_refused(answer, "parent")
    assert_refused(await tenant_client.get(f"{base}/messages", params={"cursor": "a\nb"}), "cursor")
    for limit in ("0", "501", "x"):
        assert_refused(await tenant_client.get(f"{base}/messages", params={"limit": limit}), "limit")
    assert_refused(await tenant_client.get(f"{base}/messages", params={"since": "yesterday"}), "since")
    assert_refused(await tenant_client.post(f"{base}/folders", json={"name": " "}), "name")
    assert_refused(await tenant_client.patch(f"{base}/folders/A", json={"name": "a\u2028b"}), "name")
    assert_refused(await tenant_client.delete(f"{base}/folders/A%2A"), "path")


async def test_search_refuses_unknown_fields_and_injections(
    tenant_client: httpx.AsyncClient, mailbox_id: str
) -> None:
    url = f"/v1/mailboxes/{mailbox_id}/messages/search"
    assert_refused(await tenant_client.post(url, json={"sender": "a"}), "sender", "unknown_field")
    assert_refused(await tenant_client.post(url, json={"from_": "a"}), "from_", "unknown_field")
    for field in ("from", "to", "subject", "text", "native", "message_id"):
        assert_refused(await tenant_client.post(url, json={field: "x\r\nA1 LOGOUT"}), field)
    assert_refused(await tenant_client.post(url, json={"headers": {"X-A:b": "v"}}), "headers.X-A:b.[key]")
    assert_refused(await tenant_client.post(url, json={"larger": -1}), "larger")
    assert_refused(await tenant_client.post(url, json={"seen": "maybe"}), "seen")


async def test_flag_changes_are_checked(tenant_client: httpx.AsyncClient, mailbox_id: str) -> None:
    url = f"/v1/mailboxes/{mailbox_id}/messages/{REF}/flags"
    assert_refused(await tenant_client.post(url, json={}), "body")
    assert_refused(await tenant_client.post(url, json={"add": ["seen"], "remove": ["seen"]}), "body")
    for bad in ("\\Seen", "two words", "a(b", "x\r\n"):
        assert_refused(await tenant_client.post(url, json={"add": [bad]}), "add.0")
    assert_refused(
        await tenant_client.post(url, json={"add": ["seen"], "mark": ["x"]}), "mark", "unknown_field"
    )


async def test_message_query_options_are_checked(tenant_client: httpx.AsyncClient, mailbox_id: str) -> None:
    url = f"/v1/mailboxes/{mailbox_id}/messages/{REF}"
    assert_refused(await tenant_client.get(url, params={"html": "raw"}), "html")
    assert_refused(await tenant_client.get(url, params={"remote_images": "perhaps"}), "remote_images")
    assert_refused(await tenant_client.delete(url, params={"permanent": "perhaps"}), "permanent")


async def test_imports_are_checked_before_the_server(
    tenant_client: httpx.AsyncClient, mailbox_id: str
) -> None:
    url = f"/v1/mailboxes/{mailbox_id}/messages/import"
    assert_refused(await tenant_client.post(url, content=MESSAGE), "content-type")
    assert_refused(
        await tenant_client.post(url, content=MESSAGE, headers={"content-type": "text/plain"}), "content-type"
    )
    assert_refused(await tenant_client.post(url, content=b"not a message", headers=RFC822), "body")
    assert_refused(await tenant_client.post(url, content=b"", headers=RFC822), "body")
    assert_refused(
        await tenant_client.post(url, params={"flags": "seen,a b"}, content=MESSAGE, headers=RFC822), "flags"
    )
    assert_refused(
        await tenant_client.post(url, params={"folder": "*"}, content=MESSAGE, headers=RFC822), "folder"
    )


async def test_an_import_over_the_message_limit_is_413(
    tenant_client: httpx.AsyncClient, mailbox_id: str
) -> None:
    url = f"/v1/mailboxes/{mailbox_id}/messages/import"
    big = MESSAGE + b"x" * (256 * 1024)
    answer = await tenant_client.post(url, content=big, headers=RFC822)
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"] == "message_too_large"

    async def chunks() -> Any:  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"x" * 8192

    answer = await tenant_client.post(url, content=chunks(), headers=RFC822)
    assert answer.status_code == 413 and answer.json()["error"] == "message_too_large"
    # over the JSON limit (128 KiB) but within the message limit: reaches the route (and the server)
    fits = MESSAGE + b"y" * (160 * 1024)
    answer = await tenant_client.post(url, content=fits, headers=RFC822)
    assert answer.status_code == 503 and answer.json()["error"] == "mailbox_unreachable", answer.text
    # everywhere else the request limit still holds
    other = await tenant_client.post(
        f"/v1/mailboxes/{mailbox_id}/messages/search", content=b"{" + b" " * 140_000 + b"}"
    )
    assert other.status_code == 413 and other.json()["error"] == "request_too_large"


def test_the_openapi_lists_every_code_of_the_live_routes() -> None:
    spec = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    paths = spec["paths"]
    prefix = "/v1/mailboxes/{mailbox_id}"
    expected = {
        ("/folders", "get"): {"401", "403", "404", "422", "503"},
        ("/folders", "post"): {"401", "403", "404", "409", "422", "503"},
        ("/folders/{path}", "patch"): {"401", "403", "404", "409", "422", "503"},
        ("/folders/{path}", "delete"): {"401", "403", "404", "422", "503"},
        ("/messages", "get"): {"401", "403", "404", "410", "422", "503"},
        ("/messages/search", "post"): {"401", "403", "404", "410", "422", "503"},
        ("/messages/{ref}", "get"): {"401", "403", "404", "422", "503"},
        ("/messages/{ref}", "delete"): {"401", "403", "404", "422", "503"},
        ("/messages/{message_id}/raw", "get"): {"401", "403", "404", "410", "413", "422", "503"},
        ("/messages/{message_id}/attachments/{n}", "get"): {"401", "403", "404", "410", "413", "422", "503"},
        ("/messages/{ref}/flags", "post"): {"401", "403", "404", "422", "503"},
        ("/messages/{ref}/move", "post"): {"401", "403", "404", "422", "503"},
        ("/messages/flags", "post"): {"401", "403", "404", "422", "503"},
        ("/messages/move", "post"): {"401", "403", "404", "422", "503"},
        ("/messages/delete", "post"): {"401", "403", "404", "422", "503"},
        ("/messages/import", "post"): {"401", "403", "404", "413", "422", "503"},
    }
    for (path, method), statuses in expected.items():
        responses = paths[prefix + path][method]["responses"]
        assert statuses <= set(responses), (path, method, sorted(responses))
        assert "Retry-After" in responses["503"].get("headers", {}), (path, method)
        for status in statuses:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert set(schema["required"]) == {"error", "detail", "hint"}
    described = " ".join(
        response.get("description", "")
        for item in paths.values()
        for op in item.values()
        for response in op["responses"].values()
    )
    codes = ["message_not_found", "folder_not_found", "folder_exists", "cursor_expired", "mailbox_busy",
             "mailbox_unreachable", "message_too_large", "unsupported_feature", "unknown_field"]  # fmt: skip
    for code in codes:
        assert f"`{code}`" in described, code
    body = paths[prefix + "/messages/import"]["post"]["requestBody"]
    assert "message/rfc822" in body["content"]
    item = spec["components"]["schemas"]["MessageItem"]["properties"]
    assert {"ref", "from", "thread_key", "preview", "has_attachments", "labels"} <= set(item)


def test_search_takes_from_by_its_json_name(app: FastAPI) -> None:
    schema = app.openapi()["components"]["schemas"]["SearchRequest"]
    assert "from" in schema["properties"] and "from_" not in schema["properties"]
    assert schema.get("additionalProperties") is False
