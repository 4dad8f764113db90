"""The committed client is exactly what ``scripts/gen_client.py`` makes from the live app's
OpenAPI document, and every ``/v1`` operation has one method on both clients."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mailport.client import AsyncClient, Client
from mailport.client.resources import OPERATIONS

pytestmark = pytest.mark.xdist_group("client-generator")

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "gen_client.py"


@functools.cache
def generator() -> ModuleType:
    """``scripts/gen_client.py`` as a module (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location("gen_client", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_committed_client_is_what_the_generator_makes_from_the_live_document():
    gen = generator()
    stale = [
        str(path.relative_to(gen.ROOT))
        for path, text in gen.generate().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, (
        f"the client drifted from the OpenAPI document ({', '.join(stale)}): "
        "run `python scripts/gen_client.py`"
    )


def test_every_v1_operation_maps_to_one_method_of_both_clients():
    document = generator().openapi()
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        if path.startswith("/v1/")
        for method in item
    }
    assert set(OPERATIONS) == operations, "run `python scripts/gen_client.py`"
    assert len(set(OPERATIONS.values())) == len(OPERATIONS)  # one method per operation
    for name in OPERATIONS.values():
        group, method = name.split(".")
        for client in (AsyncClient("http://127.0.0.1:1"), Client("http://127.0.0.1:1")):
            assert callable(getattr(getattr(client, group), method)), (type(client).__name__, name)
    async_list = AsyncClient("http://127.0.0.1:1").mailboxes.list
    assert inspect.iscoroutinefunction(async_list)


def test_the_naming_rule():
    gen = generator()
    assert gen.method_name("mailboxes", "list_mailboxes") == "list"
    assert gen.method_name("webhooks", "replay_webhook") == "replay"
    assert gen.method_name("push", "create_push_channel") == "create_channel"
    assert gen.method_name("connect_links", "create_connect_link") == "create"
    assert gen.method_name("messages", "import_message") == "import_message"  # not a keyword
    assert gen.method_name("check", "check") == "check"  # nothing would be left
    assert gen.function_name("/v1/mailboxes", "get", {"operationId": "list_mailboxes_v1_mailboxes_get"}) == (
        "list_mailboxes"
    )
