"""Request models holding a secret never show it: not in ``repr``, not in a validation error."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from mailport.delivery.schemas import WebhookCreate, WebhookUpdate
from mailport.mailboxes.schemas import MailboxCreate, MailboxUpdate
from mailport.oauth.schemas import OAuthAppIn

SECRET = "s3cret-Zq8WkP4vN1xR7tLm"
IMAP = {"host": "imap.example.com", "port": 993, "security": "ssl"}
MAILBOX = {"email": "a@example.com", "auth_method": "password", "imap": IMAP}


@pytest.mark.parametrize(
    ("model", "fields", "secret_field"),
    [
        (MailboxCreate, MAILBOX, "password"),
        (MailboxUpdate, {}, "password"),
        (OAuthAppIn, {"client_id": "x"}, "client_secret"),
        (WebhookCreate, {"url": "https://hooks.example.com/in"}, "secret"),
        (WebhookUpdate, {}, "secret"),
    ],
)
def test_repr_and_validation_errors_hide_the_secret(
    model: type[BaseModel], fields: dict[str, Any], secret_field: str
) -> None:
    parsed = model.model_validate({**fields, secret_field: SECRET})
    assert SECRET not in repr(parsed) and SECRET not in str(parsed)
    with pytest.raises(ValidationError) as info:
        model.model_validate({**fields, secret_field: SECRET + "\n" + "x" * 2100})
    assert SECRET not in str(info.value)
    assert info.value.errors()[0]["loc"] == (secret_field,)


def test_passwords_and_client_secrets_are_secretstr_but_keep_text_rules() -> None:
    body = MailboxCreate.model_validate({**MAILBOX, "password": SECRET})
    assert isinstance(body.password, SecretStr) and body.password.get_secret_value() == SECRET
    app = OAuthAppIn.model_validate({"client_id": "x", "client_secret": SECRET})
    assert isinstance(app.client_secret, SecretStr) and app.client_secret.get_secret_value() == SECRET
    for bad, message in (
        ("", "String should have at least 1 character"),
        ("x" * 1025, "String should have at most 1024 characters"),
        ("line\nbreak", "Value error, a password cannot contain NUL or line breaks"),
        (1234, "Input should be a valid string"),
    ):
        with pytest.raises(ValidationError) as info:
            MailboxUpdate.model_validate({"password": bad})
        assert info.value.errors()[0]["msg"] == message, bad
    # a SecretStr handed in by code is held to the same rules
    with pytest.raises(ValidationError):
        MailboxUpdate(password=SecretStr("x" * 1025))
