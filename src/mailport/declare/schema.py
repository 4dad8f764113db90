"""The accounts file's JSON Schema, as published in ``docs/accounts.schema.json``.

Generated from :class:`~mailport.declare.model.AccountsFile`, so editors can check a file while
it is written; ``python -m mailport.declare.schema > docs/accounts.schema.json`` writes it, and
a unit test fails when the published copy drifts from the model.
"""

from __future__ import annotations

import json
from typing import Any

from mailport.declare.model import AccountsFile


def json_schema() -> dict[str, Any]:
    schema = AccountsFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def render() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
