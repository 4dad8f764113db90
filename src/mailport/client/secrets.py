"""Secrets in the client: the bearer credential and the write-only fields of request bodies.

The credential is a :class:`mailport.crypto.Secret` (``repr`` ``***``) from the moment the client
receives it; only the ``Authorization`` header sees its value. Request fields the API documents
as write-only (``format: password``: a mailbox password, an OAuth client secret …) are pydantic
``SecretStr`` so that a model's ``repr`` hides them, and are revealed only when the body is
serialized to JSON for the wire.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import PlainSerializer, SecretStr

from mailport.crypto.secret import Secret

WriteOnlySecret = Annotated[
    SecretStr, PlainSerializer(lambda value: value.get_secret_value(), return_type=str, when_used="json")
]
"""A request field that is sent, never shown (``repr`` ``**********``)."""


def as_secret(credential: str | Secret) -> Secret:
    """The credential as a :class:`Secret`, whichever form the caller had it in."""
    return credential if isinstance(credential, Secret) else Secret(credential)


__all__ = ["Secret", "WriteOnlySecret", "as_secret"]
