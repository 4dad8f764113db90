"""``mailport mailboxes add --imap-trust-cert F``: the CLI stores a server's trusted certificate
like ``POST /v1/mailboxes`` does, and refuses a file that is not one certificate."""

from __future__ import annotations

import json
from pathlib import Path

from mailport.net.trust import Certificate
from tests.fixtures.tls import make_cert
from tests.integration.store.test_cli import Cli, cli, one_line_error

__all__ = ["cli"]  # the fixture, imported for this module


def test_a_mailbox_added_with_a_trusted_certificate(cli: Cli, tmp_path: Path) -> None:
    pem, _, _ = make_cert(tmp_path, "home", names=["mail.home.test"])
    cli("db", "upgrade")
    cli("tenants", "create", "acme")
    added = json.loads(
        cli(
            "mailboxes", "add", "me@home.test", "-t", "acme", "--imap-host", "mail.home.test",
            "--imap-trust-cert", str(pem.cert), "--password-env", "MP_PW", "--json", MP_PW="pw",
        ).stdout
    )  # fmt: skip
    pinned = added["imap"]["trusted_certificate"]
    assert pinned["sha256"] == Certificate.from_pem(pem.cert.read_text()).sha256
    assert pinned["subject"] == "mail.home.test" and added["smtp"] is None
    one_line_error(
        cli(
            "mailboxes",
            "add",
            "other@home.test",
            "-t",
            "acme",
            "--imap-host",
            "mail.home.test",
            "--imap-trust-cert",
            str(pem.key),
            "--password-env",
            "MP_PW",
            ok=False,
            MP_PW="pw",
        ),  # fmt: skip
        "invalid_input",
    )
