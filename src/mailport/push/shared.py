"""A tenant's shared push channels: the endpoint a tenant gives its own Pub/Sub push subscription.

Gmail's notifications go to a Pub/Sub topic, and a push subscription of that topic calls one
URL for every mailbox that publishes there. So a tenant that brings its own Google Cloud topic
creates one channel (``POST /v1/push-channels/gmail_api {"topic": …}``): mailport stores the
topic (its mailboxes' ``users.watch`` then publishes there) and answers, once, the push endpoint
with the channel's secret as the ``token`` query parameter — to paste into the Pub/Sub push
subscription. Listing never shows a secret; deleting stops the push (the mailboxes fall back to
the operator's topic, or to polling, within a minute).

Graph has no such channel: its connector makes one per mailbox when it subscribes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import select

from mailport.clock import Clock, utc_now
from mailport.errors import ConflictError, InputError, NotFoundError, UnsupportedFeatureError
from mailport.push.channels import ChannelRepository
from mailport.store.ids import plausible_id
from mailport.store.tables import push_channels

SHARED_CONNECTORS = frozenset({"gmail_api"})
# projects/<project id>/topics/<topic>: Google's own rules for both names
TOPIC = re.compile(r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/[A-Za-z][A-Za-z0-9._~+%-]{2,254}\Z")


@dataclass(frozen=True)
class SharedChannel:
    id: str
    connector: str
    topic: str | None
    created_at: datetime


@dataclass(frozen=True)
class CreatedChannel:
    channel: SharedChannel
    push_endpoint: str  # carries the secret: shown once


class SharedChannels:
    def __init__(self, channels: ChannelRepository, *, public_url: str, clock: Clock = utc_now) -> None:
        self.channels = channels
        self.public_url = public_url.rstrip("/")
        self.clock = clock

    async def create(self, tenant_id: str, connector: str, *, topic: str) -> CreatedChannel:
        if connector not in SHARED_CONNECTORS:
            raise UnsupportedFeatureError(
                f"the {connector[:40]} connector has no tenant-wide push channel",
                hint="Only gmail_api takes one (Pub/Sub push); Graph subscribes per mailbox by itself.",
            )
        topic = topic.strip()
        if not TOPIC.match(topic):
            raise InputError(
                f"not a Pub/Sub topic name: {topic[:80]!r}",
                field="topic",
                hint="Give the topic's full name, projects/<project>/topics/<topic>, as the Google "
                "Cloud console shows it (grant gmail-api-push@system.gserviceaccount.com the "
                "Pub/Sub Publisher role on it).",
            )
        if await self.list(tenant_id, connector=connector):
            raise ConflictError(
                f"the tenant has a {connector} push channel already",
                hint="A tenant has one Gmail push channel: DELETE /v1/push-channels/{id} first to "
                "make a new one (its endpoint and token change).",
            )
        now = self.clock()
        new = await self.channels.create(tenant_id, connector, now=now, config={"topic": topic})
        token = quote(new.secret.reveal(), safe="")
        endpoint = f"{self.public_url}/v1/push/{connector}/{new.id}?token={token}"
        return CreatedChannel(SharedChannel(new.id, connector, topic, now), endpoint)

    async def list(self, tenant_id: str, *, connector: str | None = None) -> list[SharedChannel]:
        query = (
            select(
                push_channels.c.id,
                push_channels.c.connector,
                push_channels.c.config,
                push_channels.c.created_at,
            )
            .where(push_channels.c.tenant_id == tenant_id, push_channels.c.mailbox_id.is_(None))
            .order_by(push_channels.c.created_at, push_channels.c.id)
        )
        if connector is not None:
            query = query.where(push_channels.c.connector == connector)
        async with self.channels.database.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [SharedChannel(r.id, r.connector, _topic(r.config), r.created_at) for r in rows]

    async def delete(self, tenant_id: str, channel_id: str) -> None:
        found = (
            [c for c in await self.list(tenant_id) if c.id == channel_id] if plausible_id(channel_id) else []
        )
        if not found:
            raise NotFoundError(
                f"no push channel {channel_id[:40]!r}",
                hint="List the tenant's push channels with GET /v1/push-channels.",
            )
        await self.channels.delete(channel_id)


def _topic(config: str | None) -> str | None:
    try:
        value = json.loads(config).get("topic") if config else None
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
