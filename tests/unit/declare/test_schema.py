"""docs/accounts.schema.json is the model's schema (regenerate: python -m mailport.declare.schema)."""

from __future__ import annotations

import json
from pathlib import Path

from mailport.declare.schema import json_schema

PUBLISHED = Path(__file__).resolve().parents[3] / "docs" / "accounts.schema.json"


def test_the_published_schema_is_the_models():
    assert json.loads(PUBLISHED.read_text()) == json_schema(), (
        "docs/accounts.schema.json drifted from mailport.declare.model: "
        "run `python -m mailport.declare.schema > docs/accounts.schema.json`"
    )


def test_a_secret_field_is_a_reference_in_the_schema():
    mailbox = json_schema()["$defs"]["MailboxSpec"]
    assert mailbox["additionalProperties"] is False
    reference = mailbox["properties"]["password"]["anyOf"][0]
    assert reference["type"] == "string" and reference["pattern"].startswith("^(env:")
