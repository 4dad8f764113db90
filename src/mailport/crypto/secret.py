"""A string that never shows itself: ``repr`` and ``str`` are ``***``.

Secrets stay in this wrapper from the moment they are decrypted (or received) until the
moment of use, where ``reveal()`` makes the intent explicit and greppable.
"""

from __future__ import annotations

from typing import Any


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plaintext, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, format_spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return other.reveal() == self.reveal()

    def __hash__(self) -> int:
        return hash(self.reveal())

    def __bool__(self) -> bool:
        return bool(self.reveal())

    def __reduce__(self) -> Any:
        raise TypeError("Secret values are not picklable")
