"""Providers as data: built-ins, the operator file, instance apps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailport.config import Settings
from mailport.errors import (
    ConfigurationError,
    OAuthNotConfiguredError,
    OAuthProvidersFileError,
    OAuthProviderUnknownError,
)
from mailport.oauth import ProviderRegistry, configured_providers


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "providers.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_builtin_google_and_microsoft():
    registry = ProviderRegistry.load()
    google, microsoft = registry.get("google"), registry.get("microsoft")
    assert google.scopes == ["https://mail.google.com/", "openid", "email"]
    assert (google.imap.host, google.imap.port, google.imap.security) == ("imap.gmail.com", 993, "ssl")
    assert google.smtp is not None and google.smtp.host == "smtp.gmail.com"
    assert not google.refresh_token_rotates and not google.device_flow_allows_mail
    assert google.authorize_params == {"access_type": "offline", "prompt": "consent"}
    assert google.revocation_endpoint == "https://oauth2.googleapis.com/revoke"
    assert microsoft.scopes == [
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
        "openid",
        "email",
    ]
    assert microsoft.imap.host == "outlook.office365.com"
    assert microsoft.smtp is not None
    assert (microsoft.smtp.host, microsoft.smtp.port, microsoft.smtp.security) == (
        "smtp.office365.com",
        587,
        "starttls",
    )
    assert microsoft.refresh_token_rotates and microsoft.device_flow_allows_mail
    assert microsoft.revocation_endpoint is None
    assert microsoft.url(microsoft.token_endpoint) == (
        "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    )
    tenant = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490"
    assert f"/{tenant}/oauth2/v2.0/devicecode" in microsoft.url(
        microsoft.device_authorization_endpoint or "", tenant
    )


def test_a_bad_tenant_cannot_reach_into_the_url():
    microsoft = ProviderRegistry.load().get("microsoft")
    with pytest.raises(ConfigurationError):
        microsoft.url(microsoft.token_endpoint, "evil/../x?")


def test_overrides_merge_nested_fields_and_add_providers(tmp_path):
    path = write(
        tmp_path,
        {
            "google": {"imap": {"port": 10993}, "authorize_params": {"prompt": None, "hd": "example.com"}},
            "yahoo": {
                "name": "Yahoo",
                "authorization_endpoint": "https://api.login.yahoo.com/oauth2/request_auth",
                "token_endpoint": "https://api.login.yahoo.com/oauth2/get_token",
                "scopes": ["mail-w"],
                "token_auth_method": "client_secret_basic",
                "imap": {"host": "imap.mail.yahoo.com", "port": 993},
            },
        },
    )
    registry = ProviderRegistry.load(path)
    google = registry.get("google")
    assert google.imap.host == "imap.gmail.com" and google.imap.port == 10993
    assert google.authorize_params == {"access_type": "offline", "hd": "example.com"}
    assert google.scopes[0] == "https://mail.google.com/"  # untouched fields stay
    yahoo = registry.get("yahoo")
    assert yahoo.token_auth_method == "client_secret_basic" and yahoo.imap.security == "ssl"
    assert registry.keys() == ["google", "microsoft", "yahoo"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
        ({"google": {"imap": {"port": 99999}}}, "'google'"),
        ({"google": {"scope": ["typo"]}}, "scope"),
        ({"google": {"token_endpoint": "ftp://x"}}, "token_endpoint"),
        ({"Bad Name": {"name": "x"}}, "'Bad Name'"),
        ({"fastmail": {"name": "Fastmail"}}, "authorization_endpoint"),
        ({"microsoft": {"default_tenant": "a/b"}}, "default_tenant"),
    ],
)
def test_a_bad_file_is_a_clear_configuration_error(tmp_path, content, expected):
    with pytest.raises(OAuthProvidersFileError) as caught:
        ProviderRegistry.load(write(tmp_path, content))
    assert expected in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(OAuthProvidersFileError, match="does not exist"):
        ProviderRegistry.load(tmp_path / "nope.json")


def test_configured_providers_and_instance_apps(tmp_path):
    assert configured_providers(settings()) == set()
    s = settings(
        google_client_id="g-id",
        google_client_secret="g-secret",
        microsoft_client_id="m-id",
        microsoft_tenant="organizations",
    )
    registry = ProviderRegistry.from_settings(s)
    assert configured_providers(s, registry) == {"google", "microsoft"}
    google = registry.require_instance_app("google", s)
    assert google.client_id == "g-id" and google.client_secret is not None
    assert "g-secret" not in repr(google)
    microsoft = registry.require_instance_app("microsoft", s)
    assert microsoft.tenant == "organizations" and microsoft.client_secret is None


def test_unknown_and_unconfigured_providers():
    registry = ProviderRegistry.load()
    with pytest.raises(OAuthProviderUnknownError) as unknown:
        registry.get("aol")
    assert unknown.value.http_status == 404 and "google" in str(unknown.value)
    with pytest.raises(OAuthNotConfiguredError):
        registry.require_instance_app("google", settings())
    with pytest.raises(ConfigurationError):
        registry.instance_app("microsoft", settings(microsoft_client_id="m", microsoft_tenant="x y"))


def test_mail_apis_give_their_own_scopes_and_merge_key_by_key(tmp_path):
    builtin = ProviderRegistry.load()
    google, microsoft = builtin.get("google"), builtin.get("microsoft")
    assert google.scopes_for("gmail_api")[0] == "https://www.googleapis.com/auth/gmail.modify"
    assert google.scopes_for("imap") == google.scopes  # no API: IMAP/SMTP's scopes
    assert "https://graph.microsoft.com/Mail.Send" in microsoft.scopes_for("graph")
    assert "offline_access" in microsoft.scopes_for("graph")

    registry = ProviderRegistry.load(
        write(tmp_path, {"google": {"apis": {"gmail_api": {"base_url": "http://127.0.0.1:9100/"}}}})
    )
    api = registry.get("google").apis["gmail_api"]
    assert api.base_url == "http://127.0.0.1:9100"  # only the URL changed: scopes and Pub/Sub stay
    assert api.scopes == google.apis["gmail_api"].scopes
    assert api.pubsub_url == "https://pubsub.googleapis.com"
    with pytest.raises(OAuthProvidersFileError, match="apis"):
        ProviderRegistry.load(write(tmp_path, {"google": {"apis": {"gmail_api": {"base_url": "ftp://x"}}}}))
