"""The device sign-in: start a flow, and poll the provider in the background until the user
has entered the code (or the code expired, or they said no).

Polling honours the provider's ``interval`` and ``slow_down``. A polling lease on the flow's row
keeps it to one poller across workers (a device code is redeemed once); an abandoned lease
(a crashed worker) runs out and is taken over, and a status request resumes polling after a
restart. A completed sign-in is kept like a browser one (:mod:`mailport.oauth.accounts`).

The connector asked for (``imap``, ``graph``) is stored on the flow's row, so whichever process
completes the flow creates the mailbox the flow was started for; only a row written before the
column existed (migration 0020) has none, and its connector is judged from the scopes the
provider granted (:func:`mailport.oauth.connectors.granted_connector`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta

from mailport.clock import Clock, utc_now
from mailport.errors import DeviceCodeExpiredError, MailportError, OAuthDeniedError
from mailport.failures import is_temporary
from mailport.oauth.accounts import AccountKeeper
from mailport.oauth.apps import AppResolver
from mailport.oauth.connectors import IMAP
from mailport.oauth.device import SLOW_DOWN_STEP, DeviceAuthorization
from mailport.oauth.repository import DeviceFlowRecord, DeviceFlowRepository
from mailport.oauth.service import OAuthServices
from mailport.store.ids import new_id

log = logging.getLogger(__name__)

POLL_LEASE_MARGIN = 10  # seconds beyond two intervals before another worker may take over


def expires_in(expires_at: datetime, now: datetime) -> int:
    return max(0, int((expires_at - now).total_seconds()))


@dataclass(eq=False, repr=False)
class DevicePoller:
    oauth: OAuthServices
    _: KW_ONLY
    flows: DeviceFlowRepository
    apps: AppResolver
    accounts: AccountKeeper
    clock: Clock = utc_now
    _pollers: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)

    async def aclose(self) -> None:
        """Stop this process's pollers (another worker takes over when their leases run out)."""
        for task in list(self._pollers.values()):
            task.cancel()
        for task in list(self._pollers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def start_device(
        self,
        tenant_id: str,
        provider: str,
        *,
        email: str | None = None,
        purpose: str | None = None,
        connector: str = IMAP,
        owner: str | None = None,
    ) -> DeviceFlowRecord:
        """Start a device sign-in whose mailbox is created for ``owner`` (None: the tenant)."""
        auth = await self.oauth.device_flow.start(provider, tenant_id=tenant_id, connector=connector)
        record = DeviceFlowRecord(
            id=new_id("dev"),
            tenant_id=tenant_id,
            provider=provider,
            email=email,
            purpose=purpose,
            device_code=auth.device_code,
            user_code=auth.user_code,
            verification_uri=auth.verification_uri,
            verification_uri_complete=auth.verification_uri_complete,
            interval=auth.interval,
            expires_at=auth.expires_at,
            status="pending",
            mailbox_id=None,
            error=None,
            connector=connector,
            owner=owner,
        )
        await self.flows.create(record, now=self.clock())
        self._ensure_poller(tenant_id, record.id)
        return record

    async def device_status(
        self, tenant_id: str, flow_id: str, *, owner: str | None = None
    ) -> DeviceFlowRecord:
        """The flow's state; with ``owner`` (a user's token), only that user's flows exist."""
        record = await self.flows.get(tenant_id, flow_id, owner=owner)
        if record.status == "pending":
            if self.clock() >= record.expires_at:
                await self.flows.finish(flow_id, status="expired", now=self.clock())
                return await self.flows.get(tenant_id, flow_id, owner=owner)
            self._ensure_poller(tenant_id, flow_id)
        return record

    @property
    def polling(self) -> set[str]:
        """Device flows this process is polling right now."""
        return {flow_id for flow_id, task in self._pollers.items() if not task.done()}

    def _ensure_poller(self, tenant_id: str, flow_id: str) -> None:
        task = self._pollers.get(flow_id)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._poll(tenant_id, flow_id))
            self._pollers[flow_id] = task
            task.add_done_callback(lambda _t: self._pollers.pop(flow_id, None))

    def _poll_lease(self, interval: int) -> datetime:
        return self.clock() + timedelta(seconds=2 * interval + POLL_LEASE_MARGIN)

    async def _poll(self, tenant_id: str, flow_id: str) -> None:
        record = await self.flows.get(tenant_id, flow_id)
        if record.status != "pending" or record.device_code is None:
            return
        # One poller per flow across workers (a device code is redeemed once): the others only
        # read the flow's state; an abandoned lease (crashed worker) runs out and is taken over.
        lease = await self.flows.claim_polling(
            flow_id, until=self._poll_lease(record.interval), now=self.clock()
        )
        if lease is None:
            return
        app = await self.apps.resolve(record.provider, tenant_id)
        auth = DeviceAuthorization(
            provider=record.provider,
            app=app,
            device_code=record.device_code,
            user_code=record.user_code,
            verification_uri=record.verification_uri,
            verification_uri_complete=record.verification_uri_complete,
            expires_at=record.expires_at,
            interval=record.interval,
            connector=record.connector,  # None (a row from before 0020): judged by the scopes
        )
        interval = record.interval
        sleep = self.oauth.device_flow.sleep
        while True:
            if not await self.flows.renew_polling(lease, until=self._poll_lease(interval)):
                return  # another worker polls it now
            await sleep(interval)
            now = self.clock()
            try:
                result = await self.oauth.device_flow.poll(auth, email=record.email)
                if result.status == "slow_down":
                    interval += SLOW_DOWN_STEP
                    await self.flows.set_interval(flow_id, interval, now=now)
                    continue
                if result.status == "pending":
                    continue
                assert result.account is not None
                mailbox, _ = await self.accounts.keep_or_revoke(
                    tenant_id, result.account, mailbox_id=None, purpose=record.purpose, owner=record.owner
                )
                await self.flows.finish(flow_id, status="complete", mailbox_id=mailbox.id, now=now)
                return
            except OAuthDeniedError as exc:
                await self.flows.finish(flow_id, status="denied", error=exc.message, now=now)
                return
            except DeviceCodeExpiredError as exc:
                await self.flows.finish(flow_id, status="expired", error=exc.message, now=now)
                return
            except MailportError as exc:
                if is_temporary(exc):
                    continue  # network trouble, provider 5xx: keep polling until the code expires
                log.warning("device sign-in %s failed: %s", flow_id, exc.code)
                await self.flows.finish(flow_id, status="error", error=f"{exc.code}: {exc.message}", now=now)
                return
