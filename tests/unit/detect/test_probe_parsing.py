"""The prober's parsing of IMAP capabilities and EHLO keywords (pure)."""

from __future__ import annotations

from mailport.detect.probe import ehlo_auth_mechanisms, imap_auth_mechanisms, imap_capabilities


def test_capabilities_from_greeting_code_or_untagged_response() -> None:
    greeting = "* OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS LOGINDISABLED AUTH=PLAIN] Dovecot ready."
    assert imap_capabilities([greeting]) == (
        "IMAP4rev1",
        "SASL-IR",
        "STARTTLS",
        "LOGINDISABLED",
        "AUTH=PLAIN",
    )
    untagged = ["* CAPABILITY IMAP4rev1 IDLE AUTH=PLAIN AUTH=XOAUTH2 auth=oauthbearer"]
    caps = imap_capabilities(untagged)
    assert imap_auth_mechanisms(caps) == ("PLAIN", "XOAUTH2", "OAUTHBEARER")
    assert imap_capabilities(["* OK ready"]) == ()


def test_ehlo_auth_keywords_old_and_new_syntax() -> None:
    assert ehlo_auth_mechanisms(["PIPELINING", "AUTH PLAIN LOGIN XOAUTH2", "STARTTLS"]) == (
        "PLAIN",
        "LOGIN",
        "XOAUTH2",
    )
    assert ehlo_auth_mechanisms(["AUTH=LOGIN PLAIN"]) == ("LOGIN", "PLAIN")
    assert ehlo_auth_mechanisms(["SIZE 1000"]) == ()
