"""Reading the accounts file: the line and path of a problem, never the refused value."""

from __future__ import annotations

import pytest

from mailport.declare.load import parse_text
from mailport.declare.secrets import SecretRef
from mailport.errors import DeclarationInvalidError, InlineSecretError

GOOD = """\
version: 1
tenants:
  - name: acme
    webhooks:
      - url: HTTPS://Hooks.Example.com/mail
        secret: env:HOOK_SECRET
    mailboxes:
      - email: Support@Example.com
        auth: password
        password: file:secrets/support.pw
        imap: {host: imap.example.com, port: 993, security: ssl}
"""


def test_a_good_file():
    file = parse_text(GOOD, name="a.yaml")
    acme = file.tenants[0]
    assert acme.webhooks[0].url == "https://hooks.example.com/mail"  # compared as the service stores it
    assert acme.webhooks[0].secret == SecretRef("env", "HOOK_SECRET")
    assert acme.mailboxes[0].password == SecretRef("file", "secrets/support.pw")
    assert acme.mailboxes[0].settings.check_interval == 60


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("port: 993", "port: 0", "a.yaml:11: tenants[0].mailboxes[0].imap.port:"),
        ("auth: password", "auth: secret", "a.yaml:9: tenants[0].mailboxes[0].auth:"),
        (
            "        auth: password\n",
            "        auth: password\n        colour: blue\n",
            "a.yaml:10: tenants[0].mailboxes[0].colour:",
        ),
        ("version: 1", "version: 2", "a.yaml:1: version:"),
        (
            "  - name: acme\n",
            "  - name: acme\n  - name: acme\n",
            "a.yaml:1: tenants: name 'acme' is listed twice",
        ),
    ],
)
def test_a_problem_names_its_line_and_path(old: str, new: str, where: str):
    with pytest.raises(DeclarationInvalidError) as caught:
        parse_text(GOOD.replace(old, new), name="a.yaml")
    assert caught.value.message.startswith(where), caught.value.message


@pytest.mark.parametrize(
    "inline", ["hunter2", "'env:'", "env:1X", "whsec_c2VjcmV0c2VjcmV0c2VjcmV0", "'file:'", "'stored '"]
)
def test_an_inline_secret_is_refused_without_repeating_it(inline: str):
    with pytest.raises(InlineSecretError) as caught:
        parse_text(GOOD.replace("env:HOOK_SECRET", inline), name="a.yaml")
    assert caught.value.code == "inline_secret"
    assert caught.value.message == (  # the same words whatever was written: nothing of it repeated
        "a.yaml:6: tenants[0].webhooks[0].secret: an inline secret is refused: "
        "give env:NAME, file:PATH or stored"
    )


def test_yaml_and_json_syntax_errors_have_a_line():
    with pytest.raises(DeclarationInvalidError, match=r"^a\.yaml:4: not valid YAML"):
        parse_text("version: 1\ntenants:\n  - name: [acme\n", name="a.yaml")
    with pytest.raises(DeclarationInvalidError, match=r"^a\.json:2: not valid JSON"):
        parse_text('{"version": 1,\n "tenants": [,]}', name="a.json", strict_json=True)
    assert parse_text('{"version": 1}', name="a.json", strict_json=True).tenants == []
