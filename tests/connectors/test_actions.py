"""Contract: after-processing actions do what they say when the connector supports them, and
raise ``unsupported_feature`` when it does not (never silently nothing)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import pytest

from mailport.connectors.base import Connector, Feature
from mailport.errors import UnsupportedFeatureError
from tests.connectors.conftest import SCOPE, Harness

Act = Callable[[Connector, Sequence[str]], Awaitable[None]]
ACTIONS: list[tuple[Feature, Act]] = [
    (Feature.FLAGS, lambda c, items: c.mark_read(items)),
    (Feature.MOVE, lambda c, items: c.move(items, "Done")),
    (Feature.DELETE, lambda c, items: c.delete(items)),
]


@pytest.mark.parametrize(("feature", "act"), ACTIONS, ids=[f.value for f, _ in ACTIONS])
async def test_an_action_runs_when_supported_and_is_refused_otherwise(
    harness: Harness, feature: Feature, act: Act
) -> None:
    await harness.deliver("keep", "act on me")
    state = await harness.connector.open(SCOPE)
    start = await harness.connector.restart(state)
    keep, target = [m.item for batch in await harness.fetch(start) for m in batch.messages]
    if not harness.connector.supports(feature):
        with pytest.raises(UnsupportedFeatureError) as refused:
            await act(harness.connector, [target])
        assert refused.value.code == "unsupported_feature" and refused.value.http_status == 422
        assert len([m for b in await harness.fetch(start) for m in b.messages]) == 2
        return
    await act(harness.connector, [target])
    state = await harness.connector.open(SCOPE)  # IMAP: EXPUNGE is seen at the next SELECT
    after = {m.item: m for batch in await harness.fetch(start) for m in batch.messages}
    if feature is Feature.FLAGS:
        assert "\\Seen" in after[target].flags and "\\Seen" not in after[keep].flags
    else:
        assert set(after) == {keep}


async def test_declared_capabilities_cover_what_supports_answers(harness: Harness) -> None:
    for feature in Feature:
        if harness.connector.supports(feature):
            assert feature in harness.connector.capabilities
