"""Which owner a request acts for (issue 19): a JWT caller always acts for its own user.

``Caller.owner`` is None for a tenant API key (every owner's mailboxes and books) and the
user's id for a host application's token. The path guard in :mod:`mailport.api.deps` keeps a
JWT caller out of other users' ``/v1/mailboxes/{mailbox_id}/…``; the helpers here settle the
``owner`` a body or a query names, the same way on every route: left out, it is the caller's
user; another user is 403 ``owner_forbidden`` (asking for another book reveals nothing about
it, so this is not a 404)."""

from __future__ import annotations

from mailport.api.deps import Caller
from mailport.errors import OwnerForbiddenError
from mailport.services import Services


def acting_owner(caller: Caller, requested: str | None, *, field: str = "owner") -> str | None:
    """The owner a request acts for: ``requested`` for a tenant key; the caller's user for a
    JWT caller, which may name only itself."""
    if caller.owner is None:
        return requested
    if requested is not None and requested != caller.owner:
        raise OwnerForbiddenError(
            f"{field}: a user's token acts only for its own user",
            field=field,
            hint="Leave `owner` out (it is the token's user), or use the tenant's API key.",
        )
    return caller.owner


async def reach_mailbox(services: Services, caller: Caller, mailbox_id: str | None) -> None:
    """A mailbox named outside the path (a query or a body) is checked like the path's: for a
    JWT caller, another user's mailbox is ``not_found``."""
    if caller.owner is not None and mailbox_id is not None:
        assert caller.tenant_id is not None
        await services.mailboxes.get(caller.tenant_id, mailbox_id, owner=caller.owner)
