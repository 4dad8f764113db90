"""Input that databases choke on (NUL bytes, lone surrogates, odd ids) is a 4xx, never a 500."""

from __future__ import annotations

import json

import httpx

from tests.fixtures.api import SecretWatch
from tests.integration.api.helpers import mailbox_body, with_path


def _quoted(query: str) -> str:
    from urllib.parse import quote

    name, _, value = query.partition("=")
    if "%" in value:
        return query
    return f"{name}={quote(value.encode('utf-8', 'surrogatepass'))}"


def raw_json(body: object) -> bytes:
    # json.dumps keeps lone surrogates as \\udXXX escapes, which Python's json.loads accepts
    return json.dumps(body).encode()


async def test_nul_bytes_and_lone_surrogates_are_refused(
    tenant_client: httpx.AsyncClient, admin_client: httpx.AsyncClient, secret_watch: SecretWatch
):
    created = (await tenant_client.post("/v1/mailboxes", json=mailbox_body())).json()
    bad_strings = ["a\x00b", "\ud800", "x\udfff"]
    paths = ["label", "purpose", "password", "email", "imap.host", "imap.username", "settings.folder",
             "settings.from_name", "settings.after_processing"]  # fmt: skip
    for value in bad_strings:
        for path in paths:
            candidate = value if path != "settings.after_processing" else f"move:{value}"
            body = with_path(mailbox_body(), path, candidate)
            response = await tenant_client.post(
                "/v1/mailboxes", content=raw_json(body), headers={"content-type": "application/json"}
            )
            assert response.status_code == 422, (path, value, response.text)
            patch = await tenant_client.patch(
                f"/v1/mailboxes/{created['id']}",
                content=raw_json(with_path({"label": "x"}, "label", candidate)),
                headers={"content-type": "application/json"},
            )
            assert patch.status_code == 422, (value, patch.text)
        for query in (f"purpose={value}", f"cursor={value}", "purpose=%00", "cursor=%ED%A0%80"):
            response = await tenant_client.get("/v1/mailboxes?" + _quoted(query))
            # NUL is refused; invalid UTF-8 in a URL is decoded with U+FFFD by the server: harmless
            expected = {422} if ("\x00" in query or "%00" in query) else {200, 422}
            assert response.status_code in expected, (query, response.text)
        tenant = await admin_client.post(
            "/v1/tenants", content=raw_json({"name": value}), headers={"content-type": "application/json"}
        )
        assert tenant.status_code == 422, tenant.text

    for odd_id in ["%00", "mbx_%00x", "a" * 500, "%F0%9F%92%A9", "..%2F..%2Fetc", "%ED%A0%80"]:
        for method in ("GET", "PATCH", "DELETE"):
            response = await tenant_client.request(method, f"/v1/mailboxes/{odd_id}", json={"label": "x"})
            assert response.status_code == 404, (method, odd_id, response.text)
        for path in (f"/v1/tenants/{odd_id}", f"/v1/tenants/{odd_id}/keys", f"/v1/tenants/x/keys/{odd_id}"):
            response = (
                await admin_client.get(path) if "keys/" not in path else await admin_client.delete(path)
            )
            assert response.status_code == 404, (path, response.text)
