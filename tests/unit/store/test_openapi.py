"""The OpenAPI document is complete: every /v1 operation documents its errors with the one
error body, and no response schema has a field that could carry a secret."""

from __future__ import annotations

from typing import Any

from mailport.api import create_app
from mailport.config import Settings

# Opened by a user's browser, not an API client: authorized by the signed OAuth state instead.
BROWSER_ROUTES = {("/v1/oauth/{provider}/callback", "get"), ("/v1/oauth/{provider}/start", "get")}


def spec() -> dict[str, Any]:
    return create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]


def test_every_v1_operation_documents_error_responses():
    document = spec()
    operations = [
        (path, method, op) for path, item in document["paths"].items() if path.startswith("/v1/")
        for method, op in item.items()
    ]  # fmt: skip
    assert len(operations) >= 12
    for path, method, op in operations:
        for status in ("401", "403", "422"):
            content = op["responses"][status]["content"]["application/json"]["schema"]
            assert set(content["required"]) == {"error", "detail", "hint"}, (path, method, status)
        if "{" in path:
            assert "404" in op["responses"], (path, method)
        if (path, method) not in BROWSER_ROUTES:
            assert op.get("security"), (path, method)  # bearer auth shown in /docs


def test_mailbox_responses_carry_no_secret_fields():
    schemas = spec()["components"]["schemas"]
    for name in ("MailboxRead", "MailboxPage", "OAuthOut", "ServerOut", "SettingsOut"):
        fields = set(schemas[name]["properties"])
        assert not fields & {"password", "access_token", "refresh_token", "token", "secret"}, name
    assert {"has_password", "oauth"} <= set(schemas["MailboxRead"]["properties"])
    assert set(schemas["OAuthOut"]["properties"]) == {"provider", "connected_email", "scopes", "expires_at"}
    for name in ("MailboxCreate", "MailboxUpdate", "ServerIn", "SettingsIn", "TenantCreate"):
        assert schemas[name].get("additionalProperties") is False, name
