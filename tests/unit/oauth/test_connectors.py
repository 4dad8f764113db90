"""Which connector a sign-in is for (mailport.oauth.connectors): the scopes asked for and checked,
the refusals, and the connector judged from a grant's scopes (a device flow resumed elsewhere)."""

from __future__ import annotations

import pytest

from mailport.errors import InputError
from mailport.oauth import ProviderRegistry
from mailport.oauth.connectors import (
    api_connectors,
    check_connector,
    granted_connector,
    mail_scopes,
    missing_mail_scopes,
)

REGISTRY = ProviderRegistry.load()
GOOGLE, MICROSOFT = REGISTRY.get("google"), REGISTRY.get("microsoft")


def test_each_api_belongs_to_its_provider():
    assert api_connectors(REGISTRY) == {"gmail_api": "google", "graph": "microsoft"}
    assert check_connector(REGISTRY, "google", "gmail_api") == "gmail_api"
    assert check_connector(REGISTRY, "microsoft", "imap") == "imap"
    with pytest.raises(InputError, match="^connector: graph needs provider microsoft$") as refused:
        check_connector(REGISTRY, "google", "graph")
    assert refused.value.details["field"] == "connector"
    with pytest.raises(InputError, match="unknown connector 'pop3'") as unknown:
        check_connector(REGISTRY, "google", "pop3")
    assert "imap, gmail_api, graph" in unknown.value.hint


def test_the_mail_scopes_follow_the_connector():
    assert mail_scopes(GOOGLE, "imap") == ["https://mail.google.com/"]
    assert mail_scopes(GOOGLE, "gmail_api") == ["https://www.googleapis.com/auth/gmail.modify"]
    assert mail_scopes(MICROSOFT, "graph") == [
        "https://graph.microsoft.com/Mail.ReadWrite",
        "https://graph.microsoft.com/Mail.Send",
    ]
    # Microsoft answers with short names; an IMAP grant is not a Graph grant
    assert missing_mail_scopes(MICROSOFT, "Mail.ReadWrite Mail.Send openid", "graph") == []
    assert missing_mail_scopes(MICROSOFT, "Mail.ReadWrite openid", "graph") == [
        "https://graph.microsoft.com/Mail.Send"
    ]
    assert missing_mail_scopes(GOOGLE, "https://mail.google.com/ openid", "gmail_api") == [
        "https://www.googleapis.com/auth/gmail.modify"
    ]
    assert missing_mail_scopes(GOOGLE, None, "gmail_api") == []  # omitted: as requested (RFC 6749)


def test_a_grant_tells_its_connector():
    assert granted_connector(MICROSOFT, "Mail.ReadWrite Mail.Send offline_access openid") == "graph"
    imap = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send"
    assert granted_connector(MICROSOFT, imap) == "imap"
    assert granted_connector(GOOGLE, "https://www.googleapis.com/auth/gmail.modify email") == "gmail_api"
    assert granted_connector(GOOGLE, None) == "imap"
