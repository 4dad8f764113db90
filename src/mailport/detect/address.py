"""The address detection works on, from the one rule for email addresses
(:func:`mailport.validation.parse_email`: the same addresses as mailbox creation, the
connection check, connect links and the wizard, ``.test`` included).
"""

from __future__ import annotations

from mailport.detect.model import Address
from mailport.validation import parse_email


def parse_address(email: str) -> Address:
    """``"Støtte@Bücher.example"`` -> Address(domain="xn--bcher-kva.example", …).

    Raises :class:`~mailport.errors.InvalidEmailError` for anything that is not a complete address.
    """
    checked = parse_email(email)
    return Address(
        email=checked.email,
        local_part=checked.local_part,
        domain=checked.domain,
        unicode_domain=checked.unicode_domain,
    )
