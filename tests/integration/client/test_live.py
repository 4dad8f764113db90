"""The typed client against a live ``mailport serve``: a tenant made with the admin key, a mailbox
on the test bed's Dovecot, its messages read and paged, errors raised as the server's own
classes, sync and async alike."""

from __future__ import annotations

import uuid
from email.message import EmailMessage

import pytest

from mailport import errors
from mailport.client import AsyncClient, Client, models
from tests.integration.client.conftest import LiveServe, imap_mailbox
from tests.mailstack.dovecot import Dovecot

pytestmark = pytest.mark.xdist_group("client-serve")


def mail(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Alice <alice@example.com>", "support@example.com", subject
    msg.set_content(f"Body of {subject}")
    return msg.as_bytes()


def test_sync_client_reads_a_mailbox_page_by_page(live: LiveServe, dovecot: Dovecot, password_user):
    email, password = password_user
    subjects = [f"Client test {i} {uuid.uuid4().hex[:6]}" for i in range(3)]
    for subject in subjects:
        dovecot.deliver(email, mail(subject))
    _, key = live.tenant()
    with Client(live.url, key) as mp:
        mailbox = mp.mailboxes.create(imap_mailbox(dovecot, email, password))
        assert isinstance(mailbox, models.MailboxRead) and mailbox.email == email
        assert mp.mailboxes.get(mailbox.id).id == mailbox.id

        first = mp.messages.list(mailbox.id, limit=2)
        assert len(first.data) == 2 and first.next_cursor
        every = list(mp.messages.iter(mailbox.id, limit=1))
        assert sorted(m.subject or "" for m in every) == sorted(subjects)

        message = mp.messages.get(mailbox.id, every[0].ref)
        assert isinstance(message, models.MessageOut) and message.subject == every[0].subject
        raw = mp.messages.get_raw(mailbox.id, every[0].ref)
        assert f"Subject: {every[0].subject}".encode() in raw
        assert b"".join(mp.messages.stream_get_raw(mailbox.id, every[0].ref)) == raw

        found = mp.messages.search(mailbox.id, models.SearchRequest(subject=subjects[1]))
        assert [m.subject for m in found.data] == [subjects[1]]
        by_alice = models.SearchRequest(from_="alice@example.com", limit=1)
        searched = mp.messages.iter_search(mailbox.id, by_alice)
        assert sorted(m.subject or "" for m in searched) == sorted(subjects)
        assert len(list(mp.messages.iter_search(mailbox.id, {"subject": "Client test", "limit": 2}))) == 3
        assert "INBOX" in {folder.path for folder in mp.folders.get(mailbox.id).data}


async def test_async_client_pages_through_mailboxes(live: LiveServe, dovecot: Dovecot):
    _, key = live.tenant()
    async with AsyncClient(live.url, key) as mp:
        made = set()
        for _ in range(3):
            email, password = dovecot.dyn_user(f"u{uuid.uuid4().hex[:10]}")
            made.add((await mp.mailboxes.create(imap_mailbox(dovecot, email, password))).id)
        page = await mp.mailboxes.list(limit=1)
        assert len(page.items) == 1 and page.next_cursor
        seen = [mailbox.id async for mailbox in mp.mailboxes.iter(limit=1)]
        assert len(seen) == len(set(seen)) == 3 and set(seen) == made
    with Client(live.url, key) as sync:
        assert {mailbox.id for mailbox in sync.mailboxes.iter(limit=2)} == made


def _assert_error(exc: errors.MailportError, cls: type[errors.MailportError], status: int) -> None:
    assert isinstance(exc, cls), (type(exc), exc)
    assert exc.status == status  # type: ignore[attr-defined]
    assert exc.code and exc.hint and exc.message


def test_sync_errors_are_the_servers_classes(live: LiveServe, dovecot: Dovecot):
    _, key = live.tenant()
    with Client(live.url, key) as mp:
        with pytest.raises(errors.NotFoundError) as missing:
            mp.mailboxes.get("mbx_doesnotexist")
        _assert_error(missing.value, errors.NotFoundError, 404)
        assert missing.value.code == "not_found"

        with pytest.raises(errors.InputError) as invalid:
            mp.mailboxes.create({"email": "not-an-address", "auth_method": "password"})
        _assert_error(invalid.value, errors.InputError, 422)
        assert invalid.value.field == "email"  # type: ignore[attr-defined]

        with pytest.raises(errors.ForbiddenError) as forbidden:
            mp.tenants.list()  # the admin's route
        _assert_error(forbidden.value, errors.ForbiddenError, 403)

    with Client(live.url, "mp_live_wrongkey") as stranger, pytest.raises(errors.UnauthorizedError) as refused:
        stranger.mailboxes.list()
    _assert_error(refused.value, errors.UnauthorizedError, 401)
    assert "wrongkey" not in str(refused.value) + repr(refused.value)


async def test_async_errors_are_the_servers_classes(live: LiveServe, dovecot: Dovecot, password_user):
    email, password = password_user
    _, key = live.tenant()
    async with AsyncClient(live.url, key) as mp:
        mailbox = await mp.mailboxes.create(imap_mailbox(dovecot, email, password))
        with pytest.raises(errors.FolderNotFoundError) as folder:
            await mp.messages.list(mailbox.id, folder="No such folder")
        _assert_error(folder.value, errors.FolderNotFoundError, 404)
        with pytest.raises(errors.NotFoundError) as webhook:
            await mp.webhooks.get("wh_doesnotexist")
        _assert_error(webhook.value, errors.NotFoundError, 404)
        with pytest.raises(errors.InputError) as invalid:
            await mp.messages.list(mailbox.id, limit=0)
        assert invalid.value.field == "limit"  # type: ignore[attr-defined]
    async with AsyncClient(live.url, None) as anonymous:
        with pytest.raises(errors.UnauthorizedError):
            await anonymous.mailboxes.list()


def test_admin_operations_and_answers_without_content(live: LiveServe):
    with Client(live.url, live.admin_key) as admin:
        tenant = admin.tenants.create(models.TenantCreate(name=f"admin-{uuid.uuid4().hex[:8]}"))
        assert admin.tenants.get(tenant.id).name == tenant.name
        key = admin.tenants.create_key(tenant.id)
        assert key.api_key and key.id in {k.id for k in admin.tenants.list_keys(tenant.id).items}
        assert admin.tenants.revoke_key(tenant.id, key.id) is None  # 204
        with Client(live.url, key.api_key) as revoked, pytest.raises(errors.UnauthorizedError):
            revoked.mailboxes.list()
        with Client(live.url, tenant.api_key) as mp:
            assert mp.health.get_tenant().model_dump()  # typed, parsed
        assert admin.tenants.delete(tenant.id) is None
        with pytest.raises(errors.NotFoundError):
            admin.tenants.get(tenant.id)
