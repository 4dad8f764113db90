"""Event payloads are serialized by orjson (issue 21): the stored text must be exactly what
``json.dumps(payload, ensure_ascii=False, separators=(",", ":"))`` gave, for every payload."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailport.events import compact_json
from mailport.messages import parse_message


def stdlib(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


text = st.text(st.characters(codec="utf-8"))  # every scalar value: controls, U+2028, astral
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(text, values, max_size=6))
def test_same_text_as_the_stdlib_on_generated_payloads(payload: dict[str, Any]) -> None:
    assert compact_json(payload) == stdlib(payload)


def test_same_text_on_the_message_corpus() -> None:
    corpus = sorted((Path(__file__).parent / "messages" / "data").rglob("*.eml"))
    assert corpus, "the message corpus is missing"
    for path in corpus:
        payload = parse_message(path.read_bytes(), mailbox_id="mbx_1", folder="INBOX").to_dict()
        assert compact_json(payload) == stdlib(payload), path.name


@pytest.mark.parametrize(
    "payload",
    [
        {"subject": "lone \udc80 surrogate"},  # what orjson refuses goes through the stdlib
        {"n": 2**70, "m": -(2**64)},
        {"deep": json.loads("[" * 300 + "]" * 300)},
        {"1": 1, "k": [1.5, -0.0, 1e300]},
    ],
)
def test_what_orjson_refuses_is_the_stdlib_text(payload: dict[str, Any]) -> None:
    assert compact_json(payload) == stdlib(payload)


def test_what_the_stdlib_refuses_is_still_refused() -> None:
    with pytest.raises(TypeError):
        compact_json({"at": datetime.now(UTC)})
