"""Poll a wizard test run as the page does (htmx): ``POST /connect/test/{run}`` with the values
the page's ``hx-vals`` carries (the sealed draft under test), until the run is done."""

from __future__ import annotations

import asyncio
import html
import json
import re

import httpx

RUN = re.compile(r'hx-post="/connect/test/([^"?]+)')
VALUES = re.compile(r"hx-vals='([^']*)'")


def run_of(page: str) -> tuple[str, dict[str, str]]:
    """The run a test page polls, and what its poll posts."""
    found = RUN.search(page)
    assert found is not None, page[:2000]
    values = VALUES.search(page)
    return found.group(1), json.loads(html.unescape(values.group(1))) if values else {}


async def finished(client: httpx.AsyncClient, page: str, *, tries: int = 200, pause: float = 0.05) -> str:
    """Poll the run of ``page`` until it is done; its final HTML."""
    run, values = run_of(page)
    for _ in range(tries):
        fragment = (await client.post(f"/connect/test/{run}", data=values)).text
        if 'data-done="true"' in fragment:
            return fragment
        await asyncio.sleep(pause)
    raise AssertionError(f"the test {run} did not finish")
