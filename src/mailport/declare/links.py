"""Connect links for the declared OAuth mailboxes that wait for sign-in.

A mailbox declared with ``auth: oauth2`` is created without tokens; someone who owns the
account must sign in. ``mailport apply`` prints, for each such mailbox of the file, a connect
link made exactly as ``POST /v1/connect-links`` makes one (:class:`~mailport.web.links.ConnectLinks`,
on the same sealer and nonce store as the web UI): the hosted wizard, pre-filled with the
address and the connector, whose sign-in fills the existing mailbox of that address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailport.declare.model import AccountsFile
from mailport.declare.state import all_mailboxes
from mailport.mailboxes.models import AuthMethod, Mailbox
from mailport.oauth.repository import DatabaseStateStore
from mailport.services import Services
from mailport.validation import email_key
from mailport.web.links import ConnectLinks
from mailport.web.sealed import Sealer


@dataclass(frozen=True)
class WaitingMailbox:
    tenant: str
    email: str
    mailbox_id: str
    url: str
    expires_at: datetime


def waits_for_sign_in(mailbox: Mailbox) -> bool:
    return mailbox.auth_method is AuthMethod.OAUTH2 and (
        mailbox.oauth is None or mailbox.oauth.access_token is None
    )


async def connect_links(
    services: Services, file: AccountsFile, tenant_ids: dict[str, str], *, expires_in: int
) -> list[WaitingMailbox]:
    """A link for each OAuth mailbox of ``file`` that has no tokens yet, in the file's order."""
    links = ConnectLinks(
        Sealer(services.key_ring, clock=services.oauth.now),
        DatabaseStateStore(services.database),
        public_url=services.settings.effective_public_url,
    )
    out: list[WaitingMailbox] = []
    for tenant in file.tenants:
        declared = [m.key for m in tenant.mailboxes if m.auth is AuthMethod.OAUTH2]
        tenant_id = tenant_ids.get(tenant.name)
        if not declared or tenant_id is None:
            continue
        found = {email_key(m.email): m for m in await all_mailboxes(services, tenant_id)}
        for key in declared:
            mailbox = found.get(key)
            if mailbox is None or not waits_for_sign_in(mailbox):
                continue
            issued = links.issue(
                tenant_id,
                purpose=mailbox.purpose,
                email=mailbox.email,
                connector=mailbox.connector,
                expires_in=expires_in,
                owner=mailbox.owner,
            )
            out.append(
                WaitingMailbox(tenant.name, mailbox.email, mailbox.id, issued.url, issued.link.expires_at)
            )
    return out
