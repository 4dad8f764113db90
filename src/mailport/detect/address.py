"""Validate an email address and derive the ASCII (IDNA) domain every lookup uses.

email-validator does the RFC 5322/6531 syntax and IDNA 2008 work; we only translate its
error into :class:`~mailport.errors.InvalidEmailError` at this boundary.
"""

from __future__ import annotations

import email_validator

from mailport.detect.model import Address
from mailport.errors import InvalidEmailError

MAX_LENGTH = 320


def parse_address(email: str) -> Address:
    """``"Støtte@Bücher.example"`` -> Address(domain="xn--bcher-kva.example", …).

    Raises :class:`InvalidEmailError` for anything that is not a complete address.
    """
    if not isinstance(email, str) or not email.strip() or len(email) > MAX_LENGTH:
        raise InvalidEmailError("not a valid email address")
    try:
        checked = email_validator.validate_email(email.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise InvalidEmailError(f"not a valid email address: {exc}") from exc
    ascii_domain = (checked.ascii_domain or checked.domain).lower().rstrip(".")
    return Address(
        email=checked.normalized,
        local_part=checked.local_part,
        domain=ascii_domain,
        unicode_domain=checked.domain.lower(),
    )
