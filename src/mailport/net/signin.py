"""Opening a mail client in one call: connect, then sign in, and close it if either fails.

The IMAP, POP3 and SMTP clients each have their own ``connect`` (TLS, STARTTLS/STLS, greeting,
capabilities) and ``authenticate``; what they share is this order and the rule that a client
that failed half-way is closed before the error leaves, so no socket outlives a failed open."""

from __future__ import annotations

from typing import Protocol, TypeVar

from mailport import sasl


class SigningIn(Protocol):
    async def connect(self) -> object: ...

    async def authenticate(self, auth: sasl.Credentials) -> None: ...

    def close(self) -> None: ...


Client = TypeVar("Client", bound=SigningIn)


async def signed_in(client: Client, auth: sasl.Credentials | None) -> Client:
    """``client`` connected and, with ``auth``, authenticated; closed if any step fails."""
    try:
        await client.connect()
        if auth is not None:
            await client.authenticate(auth)
    except BaseException:
        client.close()
        raise
    return client
