"""One rule per kind of input (mailport.validation), and every request body built on it."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, ValidationError

from mailport.api import create_app
from mailport.api.routers.connect_links import ConnectLinkIn
from mailport.check.schemas import CheckRequest
from mailport.config import Settings
from mailport.detect.address import parse_address
from mailport.errors import InvalidEmailError
from mailport.mailboxes.schemas import MailboxCreate
from mailport.oauth.schemas import AuthorizeIn, DeviceIn
from mailport.validation import RequestModel, check_http_url, clean_line, email_key, parse_email


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (``X | None``, ``list[X]``, ``Annotated[…]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models(arg))
    return found


def _checked_text(annotation: Any) -> bool:
    """``Annotated[str, …, AfterValidator(check)]``: text a validator of ours looks at."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return False
    base, *metadata = typing.get_args(annotation)
    return base is str and any(isinstance(m, AfterValidator) for m in metadata)


def _loose(annotation: Any) -> bool:
    """A field that would take an object no request model checks (a dict or Any); a dict of
    checked text to checked text (search's ``headers``) is checked."""
    if typing.get_origin(annotation) is dict:
        return not all(_checked_text(arg) for arg in typing.get_args(annotation))
    if annotation is Any or annotation is dict:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_loose(arg) for arg in typing.get_args(annotation))
    return typing.get_origin(annotation) in (list, typing.Annotated) and any(
        _loose(arg) for arg in typing.get_args(annotation)
    )


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, also inside included routers (newer FastAPI wraps those)."""
    found: list[APIRoute] = []
    pending = list(routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            pending.extend(route.original_router.routes)
        elif hasattr(route, "routes"):
            pending.extend(route.routes)
    return found


def request_models() -> set[type[BaseModel]]:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    found: set[type[BaseModel]] = set()
    stack: list[type[BaseModel]] = []
    routes = [r for r in _api_routes(app.routes) if r.path.startswith("/v1/")]  # JSON (web pages: forms)
    assert len(routes) >= 20
    for route in routes:
        if route.body_field is not None:
            stack.extend(_models(route.body_field.field_info.annotation))
    while stack:
        model = stack.pop()
        if model not in found:
            found.add(model)
            for field in model.model_fields.values():
                stack.extend(_models(field.annotation))
    return found


def test_every_request_body_is_a_request_model() -> None:
    models = request_models()
    assert {m.__name__ for m in models} >= {
        "MailboxCreate", "MailboxUpdate", "ServerIn", "SettingsIn", "SettingsPatch", "OAuthAppIn",
        "AuthorizeIn", "DeviceIn", "WebhookCreate", "WebhookUpdate", "ConnectLinkIn", "DetectRequest",
        "CheckRequest", "CheckServer", "TenantCreate",
    }  # fmt: skip
    for model in models:
        assert issubclass(model, RequestModel), (
            f"{model.__name__} must inherit mailport.validation.RequestModel"
        )
        for name, field in model.model_fields.items():
            # RequestModel's check walks strings and lists and leaves objects to nested models
            assert not _loose(field.annotation), f"{model.__name__}.{name} takes an unchecked object"


@pytest.mark.parametrize(
    "value",
    ["a\x00b", "\ud800", "ok\u2028", "\x85x", "a\u2029b", "a\rb", "a\nb", "a\tb", "\x1b[31m", "x\u202e",
     "\u2066x", "\x7f"],
)  # fmt: skip
def test_clean_line_refuses_controls_separators_and_bidi_controls(value: str) -> None:
    with pytest.raises(ValueError):
        clean_line(value)


def test_clean_line_keeps_ordinary_text() -> None:
    assert clean_line("  Åcme Bookings ✓ ") == "Åcme Bookings ✓"
    assert clean_line("مرحبا\u200fAcme") == "مرحبا\u200fAcme"  # a right-to-left mark is no control


@pytest.mark.parametrize(
    "url",
    ["https://a.example/x\r\nSet-Cookie: a", "https://a.example/\n", "https://a.example/ x",
     "https://a.example/\u2028", "ftp://a.example/", "javascript:alert(1)", "https:///x", "/relative",
     "https://a.example:99999/", "", "https://" + "a" * 2000 + ".example/"],
)  # fmt: skip
def test_check_http_url_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        check_http_url(url)


def test_check_http_url_accepts() -> None:
    for url in ("https://app.example.com/done?x=1#top", "http://127.0.0.1:8080/", "https://[::1]/x"):
        assert check_http_url(url) == url


def test_email_key_compares_regardless_of_case_and_idna_spelling() -> None:
    assert email_key("DUP@EXAMPLE.COM") == email_key("dup@example.com") == "dup@example.com"
    assert email_key("JÖRG@bücher.example") == email_key("jörg@xn--bcher-kva.example")
    assert email_key("a+tag@example.com") != email_key("a@example.com")
    assert parse_email(" Dup@Example.COM ").email == "Dup@example.com"  # stored as given, domain lowered


GOOD = ["someone@dyn.example.test", "Jörg@Bücher.example", "a+b@example.com", " trim@example.com "]
BAD = [
    "not-an-address",
    "a@localhost",
    "a@x.local",
    "a b@c.example",
    "a@",
    "a\x00@b.example",
    "x" * 330 + "@b.c",
]


def _schema_accepts(model: type[BaseModel], email: str, **rest: Any) -> bool:
    try:
        model.model_validate({"email": email, **rest})
    except ValidationError as exc:
        assert [e["loc"] for e in exc.errors()] == [("email",)], exc.errors()
        return False
    return True


@pytest.mark.parametrize("email", GOOD + BAD)
def test_one_rule_for_email_addresses_everywhere(email: str) -> None:
    """Detection, the connection check, mailboxes, connect links and OAuth accept the same."""
    try:
        parse_address(email)
        detect = True
    except InvalidEmailError:
        detect = False
    server = {"host": "imap.example.com", "port": 993, "security": "ssl"}
    verdicts = {
        "detect": detect,
        "check": _schema_accepts(CheckRequest, email, password="pw", imap=server),
        "mailbox": _schema_accepts(MailboxCreate, email, auth_method="oauth2", imap=server),
        "connect_link": _schema_accepts(ConnectLinkIn, email),
        "oauth_authorize": _schema_accepts(AuthorizeIn, email),
        "oauth_device": _schema_accepts(DeviceIn, email),
    }
    assert set(verdicts.values()) == {email in GOOD}, verdicts
