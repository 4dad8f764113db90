"""The neutral connector core without I/O: message references, the feature an action needs,
the registry's answer for an unknown key, and the polling ``watch`` a connector inherits."""

from __future__ import annotations

import asyncio

import pytest

from mailport.connectors import registry
from mailport.connectors.base import ChangeKind, Feature, MessageRef, PollingConnector, action_feature
from mailport.errors import InputError, UnsupportedFeatureError


@pytest.mark.parametrize(
    "ref",
    [
        MessageRef("INBOX", "1700000000", "42"),
        MessageRef("Ärger/Entwürfe ✉", "", "AAMkAGI2TG93AAA="),
        MessageRef("", "123456789", "https://graph.microsoft.com/v1.0/me/messages/AAMk?x=1&y=2"),
    ],
)
def test_a_ref_round_trips_and_is_url_safe(ref: MessageRef) -> None:
    encoded = ref.encode()
    assert MessageRef.decode(encoded) == ref
    assert encoded.startswith("ref_") and encoded.isascii()
    assert all(c.isalnum() or c in "-_" for c in encoded)


@pytest.mark.parametrize("bad", ["", "ref_", "ref_!!!", "msg_abc", "ref_WyJhIiwiYiJd", "ref_eyJhIjogMX0"])
def test_anything_else_is_not_a_ref(bad: str) -> None:
    with pytest.raises(InputError) as refused:
        MessageRef.decode(bad)
    assert refused.value.http_status == 422 and refused.value.hint


def test_each_action_needs_its_feature() -> None:
    assert action_feature("mark_read") is Feature.FLAGS
    assert action_feature("move:Done/2026") is Feature.MOVE
    assert action_feature("delete") is Feature.DELETE
    assert action_feature("none") is None


def test_an_unknown_connector_is_unsupported_and_names_the_known_ones() -> None:
    with pytest.raises(UnsupportedFeatureError) as refused:
        registry.capabilities("carrier_pigeon")
    assert "imap" in (refused.value.hint or "")
    assert Feature.MOVE in registry.capabilities("imap")


class Poller(PollingConnector):
    key = "poller"

    def __init__(self) -> None:
        self.alive = 0

    async def keepalive(self) -> None:
        self.alive += 1


async def test_a_polling_connector_ticks_every_interval_and_at_once_when_woken() -> None:
    poller = Poller()
    changes = aiter(poller.watch(interval=0.05))
    first = await asyncio.wait_for(anext(changes), 1)  # the interval passed
    assert first.kind is ChangeKind.TICK and poller.alive == 1
    slow = aiter(Poller().watch(interval=60))
    waiting = asyncio.ensure_future(anext(slow))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    poller2 = Poller()
    slow2 = aiter(poller2.watch(interval=60))
    poller2.wake()  # a wake before the wait is not lost
    assert (await asyncio.wait_for(anext(slow2), 1)).kind is ChangeKind.TICK
    waiting.cancel()
    assert not poller2.supports(Feature.PUSH)
    with pytest.raises(UnsupportedFeatureError):
        await poller2.move(["1"], "Done")


async def test_a_connector_lists_no_folders_unless_it_fills_the_hook() -> None:
    with pytest.raises(UnsupportedFeatureError) as refused:
        await Poller().list_folders()
    assert refused.value.http_status == 422 and "folders" in refused.value.message
