"""The wizard's save step refuses a private host like the API (the sealed draft of a refused test
cannot be saved as a mailbox either)."""

from __future__ import annotations

import re

import httpx
import pytest

from mailport.bootstrap import Services
from tests.e2e.web.polling import finished
from tests.fixtures.api import TenantHandle

DRAFT = re.compile(r'name="draft" value="([^"]+)"')


@pytest.mark.parametrize("host", ["127.0.0.1", "169.254.169.254", "localhost"])
async def test_the_wizard_cannot_save_a_mailbox_on_a_private_host(
    operator: httpx.AsyncClient, services: Services, tenant: TenantHandle, host: str
) -> None:
    method = await operator.post("/connect/method", data={"email": "desk@acme.test"})
    assert method.status_code == 200, method.text
    sealed = DRAFT.search(method.text)
    assert sealed is not None
    manual = await operator.post(
        "/connect/manual/save",
        data={
            "draft": sealed.group(1),
            "imap_host": host,
            "imap_port": "143",
            "imap_security": "none",
            "password": "pw",
        },
    )
    assert manual.status_code == 200, manual.text  # the test step starts (and is refused)
    steps = await finished(operator, manual.text, tries=100)  # the refused test ends at once
    assert "host_not_allowed" in steps
    untested = DRAFT.search(steps)  # its page offers the untested draft
    assert untested is not None, steps

    saved = await operator.post(
        "/connect/save", data={"draft": untested.group(1), "after_processing": "none"}
    )

    assert saved.status_code == 422, saved.text[:500]
    assert "host_not_allowed" in saved.text
    assert (await services.mailboxes.list(tenant.id)).items == []
