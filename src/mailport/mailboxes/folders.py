"""Listing a mailbox's folders live from its server, for ``GET /v1/mailboxes/{id}/folders``.

Each request opens its own short-lived connection through the same connector factory the
watchers use (``Services.connector``) and never touches the watcher's connection. A failure on
the server's or the network's side becomes :class:`~mailport.errors.MailboxUnreachableError`
(503, retry later); a refused login stays what the connector said (422).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from mailport.connectors import registry
from mailport.connectors.base import Connector, Feature
from mailport.connectors.folders import Folder, Role
from mailport.errors import MailboxUnreachableError, MailportError, UnsupportedFeatureError
from mailport.mailboxes.models import Mailbox
from mailport.mailboxes.service import MailboxService

log = logging.getLogger(__name__)

RETRY_AFTER = 30  # seconds a client waits after mailbox_unreachable
LIST_TIMEOUT = 60.0  # the whole connect + list, so a request never hangs on a silent server


class FolderOut(BaseModel):
    """One folder of a mailbox, as the API shows it."""

    path: str = Field(description="The server's full name; what folder parameters take.")
    delimiter: str | None = Field(description="The hierarchy separator (None: a flat name space).")
    name: str = Field(description="The last level of the path, decoded for display.")
    role: Role | None = Field(description="What the folder is for, from SPECIAL-USE or a well-known name.")
    messages: int | None = Field(description="Messages in the folder (None: not known).")
    unseen: int | None = Field(description="Messages without the seen flag (None: not known).")
    subscribed: bool
    selectable: bool = Field(description="False for a folder that only holds other folders.")

    model_config = ConfigDict(from_attributes=True)  # built from a connector Folder


class FolderList(BaseModel):
    data: list[FolderOut]


async def list_folders(
    mailboxes: MailboxService, connect: Callable[[Mailbox], Connector], tenant_id: str, mailbox_id: str
) -> list[Folder]:
    """The folders of the tenant's mailbox (404 for another tenant's), live from its server."""
    mailbox = await mailboxes.get(tenant_id, mailbox_id)
    if Feature.FOLDERS not in registry.capabilities(mailbox.connector):
        raise UnsupportedFeatureError(
            f"the {mailbox.connector} connector has no folders",
            hint="This mailbox's connector cannot list folders; its messages arrive as events only.",
        )
    connector = connect(mailbox)
    try:
        async with asyncio.timeout(LIST_TIMEOUT):
            await connector.connect()
            return await connector.list_folders()
    except MailportError as exc:
        if exc.http_status < 500 or exc.http_status == 503:  # a refused login, too many connections
            raise
        raise _unreachable(mailbox_id, exc.code) from exc
    except (TimeoutError, OSError) as exc:
        raise _unreachable(mailbox_id, type(exc).__name__) from exc
    finally:
        await connector.disconnect()


def _unreachable(mailbox_id: str, code: str) -> MailboxUnreachableError:
    log.info("mailbox %s: listing folders failed (%s)", mailbox_id, code)
    return MailboxUnreachableError(
        f"could not list the folders of mailbox {mailbox_id}: {code}", retry_after=RETRY_AFTER
    )
