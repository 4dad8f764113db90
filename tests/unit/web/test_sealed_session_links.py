"""Sealed values, the session cookie, CSRF, drafts and connect links (no network, no browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request
from starlette.responses import Response

from mailport.config import Settings
from mailport.crypto import KeyRing, generate_key
from mailport.errors import (
    ConnectLinkExpiredError,
    ConnectLinkInvalidError,
    ConnectLinkUsedError,
    CSRFError,
    InputError,
)
from mailport.web.charts import hourly_chart
from mailport.web.drafts import Draft, Server, open_draft, seal
from mailport.web.links import ConnectLinks
from mailport.web.sealed import Sealer
from mailport.web.session import COOKIE, LinkGrant, SessionCodec, check_csrf, new_session
from tests.unit.fakes import MemoryStateStore, SettableClock


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def sealer(clock: SettableClock) -> Sealer:
    return Sealer(KeyRing.from_keys([generate_key()], source="test"), clock=clock)


def settings(public_url: str = "") -> Settings:
    return Settings(_env_file=None, public_url=public_url)  # type: ignore[call-arg]


def request_with(cookie: str | None) -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""})


def test_sealed_values_are_kind_bound_tamper_proof_and_expire(sealer: Sealer, clock: SettableClock):
    token = sealer.seal("a", {"x": 1}, ttl_seconds=60)
    assert sealer.open("a", token) == {"x": 1}
    assert sealer.open("b", token) is None  # a draft is not a session
    assert sealer.open("a", token[:-4] + "AAAA") is None
    assert sealer.open("a", "ünicode") is None and sealer.open("a", None) is None
    clock.now += timedelta(seconds=61)
    assert sealer.open("a", token) is None
    other = Sealer(KeyRing.from_keys([generate_key()], source="test"), clock=clock)
    assert other.open("a", sealer.seal("a", {}, ttl_seconds=60)) is None


def test_session_cookie_round_trip_and_flags(sealer: Sealer):
    codec = SessionCodec(sealer, settings())
    session = new_session(
        "link", tenant_id="t1", tenant_name="acme", link=LinkGrant("cl_1", purpose="booking")
    )
    response = Response()
    codec.write(response, session)
    header = response.headers["set-cookie"]
    assert "HttpOnly" in header and "samesite=lax" in header.lower() and "Secure" not in header
    value = header.split(";")[0].split("=", 1)[1]
    read = codec.read(request_with(value))
    assert read == session and read.link is not None and read.link.purpose == "booking"
    assert codec.read(request_with("garbage")) is None


def test_secure_cookie_when_the_public_url_is_https(sealer: Sealer):
    response = Response()
    SessionCodec(sealer, settings("https://mail.example.com")).write(response, new_session())
    assert "Secure" in response.headers["set-cookie"]


def test_csrf_needs_the_session_token():
    session = new_session()
    check_csrf(session, session.csrf)
    for sent in (None, "", "forged", session.csrf + "x"):
        with pytest.raises(CSRFError):
            check_csrf(session, sent)
    with pytest.raises(CSRFError):
        check_csrf(None, session.csrf)


def test_a_draft_keeps_the_password_sealed_and_belongs_to_one_tenant(sealer: Sealer):
    draft = Draft(
        tenant_id="t1",
        email="a@example.com",
        imap=Server("imap.example.com", 993, "ssl", ""),
        password="hunter2-secret",
        hints=({"code": "x", "text": "y"},),
    )
    token = seal(sealer, draft)
    assert "hunter2" not in token and "hunter2" not in repr(draft)
    assert open_draft(sealer, token, "t1") == draft
    assert open_draft(sealer, token, "t2") is None


async def test_connect_links_work_once(sealer: Sealer, clock: SettableClock):
    links = ConnectLinks(sealer, MemoryStateStore(), public_url="https://mail.example.com/")
    issued = links.issue("t1", purpose="booking", email="a@example.com", return_url="https://app.example/x")
    assert issued.url.startswith("https://mail.example.com/link/")
    token = issued.url.rsplit("/", 1)[1]
    link = await links.consume(token)
    assert (link.tenant_id, link.purpose, link.return_url) == ("t1", "booking", "https://app.example/x")
    assert link.expires_at == clock.now + timedelta(hours=1)
    with pytest.raises(ConnectLinkUsedError):
        await links.consume(token)
    with pytest.raises(ConnectLinkInvalidError):
        await links.consume(token[:-5] + "AAAAA")


async def test_connect_links_expire_and_validate_their_input(sealer: Sealer, clock: SettableClock):
    links = ConnectLinks(sealer, MemoryStateStore(), public_url="https://mail.example.com")
    token = links.issue("t1", expires_in=60).url.rsplit("/", 1)[1]
    clock.now += timedelta(seconds=61)
    with pytest.raises(ConnectLinkExpiredError):
        await links.consume(token)
    for bad in ("javascript:alert(1)", "/relative", "ftp://x.example/"):
        with pytest.raises(InputError):
            links.issue("t1", return_url=bad)
    with pytest.raises(InputError):
        links.issue("t1", expires_in=10)


def test_hourly_chart_is_accessible_svg():
    end = datetime(2026, 1, 1, 12, tzinfo=UTC)
    svg = hourly_chart([0] * 22 + [3, 1], failed=[0] * 23 + [1], end=end, label="Mail for <a@b>")
    assert svg.startswith("<svg") and 'role="img"' in svg
    assert "Mail for &lt;a@b&gt;: 4 messages in the last 24 hours" in svg
    assert "10:00–11:00 UTC: 3 processed" in svg and "11:00–12:00 UTC: 1 processed, 1 failed" in svg
    assert svg.count('class="bar-empty"') == 22
