"""What every request must satisfy, checked in one place: text, one-line text, email
addresses and URLs.

Why one module: the same kind of field was checked differently per feature, and the gaps
showed: NUL in an OAuth client id reached PostgreSQL (a 500), CR/LF in a connect link's
``return_url`` passed ``urlsplit`` (which silently drops them), U+2028 in a from-name passed a
check that knew only ASCII controls, and detection refused ``.test`` addresses that mailbox
creation accepted.

* :class:`RequestModel` is the base of every request body: no unknown fields, no input echoed
  in errors, and no string anywhere in it (secrets included) with NUL or a lone surrogate,
  which no database stores. A unit test checks that every body model of the API inherits it.
* :func:`clean_line` is for one-line text (names, labels, hosts, folders, ids): no control
  characters (C0, C1 such as U+0085), no Unicode line or paragraph separators, no bidi
  embedding/override/isolate controls. Such text ends up in mail headers, IMAP commands and
  pages, where a line break injects and a bidi override disguises.
* :func:`parse_email` is the single rule for an email address (detection, checks, mailboxes,
  connect links, OAuth, the wizard): email-validator's syntax (no DNS), ``.test`` allowed for
  test beds; :func:`email_key` is the form two addresses are compared in.
* :func:`check_http_url` is the single rule for an absolute http(s) URL a client gives us.

Functions raise ``ValueError`` with a message fit for a person (pydantic turns it into the 422
body); :func:`parse_email` raises :class:`~mailport.errors.InvalidEmailError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from mailport.errors import InvalidEmailError

MAX_EMAIL_LENGTH = 320
MAX_URL_LENGTH = 2000

# C0 and C1 controls (U+0085 NEXT LINE among them), DEL, LINE and PARAGRAPH SEPARATOR, and the
# bidi embeddings, overrides and isolates (U+202A-202E, U+2066-2069).
_NOT_IN_A_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def check_text(value: str) -> str:
    """Text every database can store: valid Unicode (no lone surrogate) and no NUL."""
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("the text is not valid Unicode (lone surrogate)") from exc
    return value


def clean_line(value: str) -> str:
    """One line of text, trimmed of blanks: no control characters, line separators or bidi
    controls, not even at the ends (``str.strip`` would quietly drop U+0085 and U+2028)."""
    if _NOT_IN_A_LINE.search(check_text(value)):
        raise ValueError(
            "control characters, line breaks (including U+0085, U+2028, U+2029) and "
            "bidi controls are not allowed"
        )
    return value.strip()


def clean_required_line(value: str) -> str:
    """:func:`clean_line` that must not come out blank."""
    value = clean_line(value)
    if not value:
        raise ValueError("a non-blank value is required")
    return value


# --------------------------------------------------------------------------- email addresses


@dataclass(frozen=True, slots=True)
class EmailAddress:
    """A valid address: ``email`` as stored and shown, ``domain`` in its ASCII (IDNA) form."""

    email: str
    local_part: str
    domain: str
    unicode_domain: str

    @property
    def key(self) -> str:
        """The form two addresses are compared in: ``DUP@Example.COM`` and ``dup@example.com``
        are one mailbox. The domain is case-insensitive by definition; the local part is in
        practice (no provider hands out addresses differing only by case)."""
        return f"{self.local_part.lower()}@{self.domain}"


def parse_email(value: str) -> EmailAddress:
    """The one rule for an email address; raises :class:`InvalidEmailError`.

    ``"  Støtte@Bücher.example "`` -> ``EmailAddress(email="Støtte@bücher.example",
    domain="xn--bcher-kva.example", …)``. Syntax only (no DNS); special-use domains are refused
    except ``.test``, which test beds use.
    """
    if not isinstance(value, str):
        raise InvalidEmailError("not a valid email address")
    text = value.strip()
    if not text or len(text) > MAX_EMAIL_LENGTH:
        raise InvalidEmailError(f"not a valid email address (1 to {MAX_EMAIL_LENGTH} characters)")
    try:
        check_text(text)
        checked = validate_email(text, check_deliverability=False, test_environment=True)
    except (ValueError, EmailNotValidError) as exc:
        raise InvalidEmailError(f"not a valid email address: {exc}") from exc
    return EmailAddress(
        email=str(checked.normalized),
        local_part=str(checked.local_part),
        domain=str(checked.ascii_domain or checked.domain).lower().rstrip("."),
        unicode_domain=str(checked.domain).lower(),
    )


def normalize_email(value: str) -> str:
    """:func:`parse_email` for schemas: the normalized address, or ``ValueError``."""
    try:
        return parse_email(value).email
    except InvalidEmailError as exc:
        raise ValueError(exc.message) from None


def email_key(email: str) -> str:
    """The comparison form of a stored address (:attr:`EmailAddress.key`); an address that no
    longer validates (stored by an older version) falls back to lower case."""
    try:
        return parse_email(email).key
    except InvalidEmailError:
        return email.strip().lower()


# --------------------------------------------------------------------------- URLs


def check_http_url(value: str) -> str:
    """An absolute ``http``/``https`` URL with a host, of one line and no blanks.

    Checked on the text as given: ``urlsplit`` silently drops tabs and line breaks, so a URL
    carrying them would pass a parse-only check and later reach a ``Location`` header.
    """
    check_text(value)
    if not value or len(value) > MAX_URL_LENGTH:
        raise ValueError(f"a URL has 1 to {MAX_URL_LENGTH} characters")
    if _NOT_IN_A_LINE.search(value) or any(ch.isspace() for ch in value):
        raise ValueError("a URL contains no spaces, line breaks or control characters")
    try:
        parts = urlsplit(value)
        host, _ = parts.hostname, parts.port  # .port raises for a port out of range
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("an absolute http(s) URL is required, such as https://app.example.com/done")
    return value


# --------------------------------------------------------------------------- schema types

Email = Annotated[str, StringConstraints(max_length=MAX_EMAIL_LENGTH), AfterValidator(normalize_email)]
HttpUrl = Annotated[str, StringConstraints(max_length=MAX_URL_LENGTH), AfterValidator(check_http_url)]


def _bad_text(value: Any) -> str | None:
    """Why a string somewhere in ``value`` is unstorable, or None. Lists are walked without
    recursion (a JSON body may nest deeply); objects are request models checking themselves."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                check_text(item)
            except ValueError as exc:
                return str(exc)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


class RequestModel(BaseModel):
    """The base of every request body (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    @field_validator("*", mode="before")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        problem = _bad_text(value)
        if problem is not None:
            raise PydanticCustomError("text_invalid", problem)
        return value
