"""``async with mailport.open() as mp:``: the library's entry to read and act on mailboxes.

It builds the same service graph ``mailport serve`` and the CLI build (database, keys, the
mailboxes' command pools) from ``settings`` (or the environment), or borrows one the caller
already has, and closes what it built on leaving. Nothing runs in the background: no watchers,
no webhook delivery (``mailport.watch()`` is the in-process event stream).
"""

from __future__ import annotations

from types import TracebackType

from mailport.bootstrap import build
from mailport.config import Settings
from mailport.mailboxes.handle import MailboxHandle
from mailport.services import Services


class Mailport:
    """An open service graph; :meth:`mailbox` hands out per-mailbox handles."""

    def __init__(self, settings: Settings | None = None, *, services: Services | None = None) -> None:
        self._settings = settings
        self._given = services
        self._services: Services | None = services

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("use `async with mailport.open(...) as mp:` before calling mp")
        return self._services

    async def __aenter__(self) -> Mailport:
        if self._services is None:
            self._services = await build(self._settings or Settings())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close what this object built (a borrowed service graph stays open)."""
        if self._services is not None and self._given is None:
            services, self._services = self._services, None
            await services.aclose()

    async def tenant_id(self, tenant: str) -> str:
        """The id of a tenant given by id (``ten_…``) or by name; ``not_found`` otherwise."""
        repository = self.services.tenants.repository
        found = await (
            repository.get(tenant) if tenant.startswith("ten_") else repository.get_by_name(tenant)
        )
        return found.id

    def mailbox(self, tenant_id: str, mailbox_id: str) -> MailboxHandle:
        """The tenant's mailbox ``mailbox_id`` (checked at each call: 404 for another tenant's)."""
        return MailboxHandle(self.services.mail, tenant_id, mailbox_id, self.services.sending)


def open(settings: Settings | None = None, *, services: Services | None = None) -> Mailport:
    """``async with mailport.open(settings) as mp: box = mp.mailbox(tenant_id, mailbox_id)``."""
    return Mailport(settings, services=services)
