"""``settings.folders`` through the API: paths and roles accepted and normalized, ``folder`` kept
as the first of them, clear 422s for an empty list, a folder twice, too many folders, an unknown
role and a ``folder`` that contradicts the list; a folder that joins the list of an existing
mailbox is stamped with when it joined, the others keep theirs."""

from __future__ import annotations

import httpx

from mailport.bootstrap import Services
from tests.fixtures.api import SecretWatch
from tests.integration.api.helpers import mailbox_body


async def _create(
    client: httpx.AsyncClient, watch: SecretWatch, settings: dict[str, object]
) -> httpx.Response:
    body = mailbox_body(settings=settings)
    watch.add(body["password"])
    return await client.post("/v1/mailboxes", json=body)


async def test_folders_are_paths_or_roles_and_folder_is_the_first(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch, services: Services
) -> None:
    created = await _create(tenant_client, secret_watch, {"folders": ["inbox", "Role:Sent", "Archiv/2024"]})
    assert created.status_code == 201, created.text
    settings = created.json()["settings"]
    assert settings["folder"] == "INBOX"
    assert settings["folders"] == ["INBOX", "role:sent", "Archiv/2024"]
    url = f"/v1/mailboxes/{created.json()['id']}"
    stored = await services.mailboxes.repository.get_by_id(created.json()["id"])
    assert [f.added_at for f in stored.settings.folders] == [None, None, None]  # there from the start

    # `folder` alone replaces the first and keeps the others
    patched = await tenant_client.patch(url, json={"settings": {"folder": "Support"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"]["folders"] == ["Support", "role:sent", "Archiv/2024"]
    assert patched.json()["settings"]["folder"] == "Support"
    # the whole list: kept entries keep when they joined, a new one is stamped
    patched = await tenant_client.patch(
        url, json={"settings": {"folders": ["Support", "role:drafts", "role:sent"]}}
    )
    assert patched.status_code == 200, patched.text
    stored = await services.mailboxes.repository.get_by_id(created.json()["id"])
    joined = {f.spec: f.added_at for f in stored.settings.folders}
    assert joined["role:sent"] is None and joined["role:drafts"] is not None
    assert joined["Support"] is not None  # it joined with the first PATCH


async def test_a_mailbox_without_folders_watches_its_folder(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch, services: Services
) -> None:
    created = await _create(tenant_client, secret_watch, {"folder": "Bookings"})
    assert created.json()["settings"]["folders"] == ["Bookings"]
    stored = await services.mailboxes.repository.get_by_id(created.json()["id"])
    assert stored.settings.folders == ()  # nothing stored: the folder alone, as before
    patched = await tenant_client.patch(
        f"/v1/mailboxes/{created.json()['id']}", json={"settings": {"folder": "Orders"}}
    )
    assert patched.json()["settings"] | {"from_name": None} == {
        "from_name": None,
        "check_interval": 60,
        "folder": "Orders",
        "after_processing": "none",
        "folders": ["Orders"],
        "sending": {"sent_copy": "auto", "aliases": [], "rate_per_minute": None, "rate_per_day": None},
        "contacts": None,
    }


async def test_bad_folder_lists_are_clear_422s(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
) -> None:
    cases: list[tuple[dict[str, object], str, str]] = [
        ({"folders": []}, "settings.folders", "at least one folder"),
        ({"folders": ["INBOX", "Sent", "INBOX"]}, "settings.folders", "listed twice: INBOX"),
        ({"folders": ["INBOX", "role:inbox"]}, "settings.folders", "listed twice: INBOX and role:inbox"),
        ({"folders": [f"F{n}" for n in range(11)]}, "settings.folders", "at most 10 folders"),
        ({"folders": ["INBOX", "role:outbox"]}, "settings.folders.1", "unknown folder role 'outbox'"),
        ({"folders": ["INBOX", "Work*"]}, "settings.folders.1", "IMAP wildcards"),
        ({"folders": "INBOX"}, "settings.folders", ""),
        ({"folder": "Sent", "folders": ["INBOX", "Sent"]}, "settings", "folder is the first watched folder"),
    ]
    failures = []
    for settings, field, words in cases:
        response = await _create(tenant_client, secret_watch, settings)
        error = response.json()
        if response.status_code != 422 or error.get("field") != field or words not in error.get("detail", ""):
            failures.append((settings, response.status_code, error))
        elif not error.get("hint"):
            failures.append((settings, "no hint", error))
    assert not failures, failures
    assert (await tenant_client.get("/v1/mailboxes")).json()["items"] == []


async def test_bad_folder_patches_are_clear_422s(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
) -> None:
    created = await _create(tenant_client, secret_watch, {"folders": ["INBOX", "role:sent"]})
    url = f"/v1/mailboxes/{created.json()['id']}"
    for patch, field, words in [
        ({"folders": None}, "settings.folders", "cannot be null"),
        ({"folders": []}, "settings.folders", "at least one folder"),
        ({"folder": "role:sent"}, "settings.folder", "listed twice: role:sent"),
        ({"folder": "Other", "folders": ["INBOX"]}, "settings", "folder is the first watched folder"),
    ]:
        response = await tenant_client.patch(url, json={"settings": patch})
        assert response.status_code == 422, (patch, response.text)
        error = response.json()
        assert error["field"] == field and words in error["detail"], (patch, error)
    assert (await tenant_client.get(url)).json() == created.json()
