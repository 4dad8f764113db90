"""Secrets in the accounts file: references only, resolved before anything is written.

A secret field holds ``env:NAME`` (an environment variable), ``file:PATH`` (a file's content
without its final line break; a relative path is relative to the accounts file's directory) or
``stored`` (keep the secret mailport already has: what ``mailport export`` writes, since it never
writes a secret). Anything else is refused as an inline secret, without repeating it: a file
with passwords in it ends up in version control.

Resolution happens once, for the whole file, before the first write (:func:`resolve`); a missing
variable or file is a clear error naming the field's path in the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

from mailport.crypto import Secret
from mailport.errors import SecretReferenceError

STORED = "stored"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]{0,199}|file:.+|stored)$"
MAX_SECRET_FILE = 64 * 1024


@dataclass(frozen=True)
class SecretRef:
    """Where a secret is: ``kind`` is ``env``, ``file`` or ``stored``."""

    kind: str
    target: str = ""

    def __str__(self) -> str:
        return STORED if self.kind == STORED else f"{self.kind}:{self.target}"

    @property
    def keeps_stored(self) -> bool:
        return self.kind == STORED


def parse_ref(value: Any) -> SecretRef:
    """A reference from the file's text; an inline secret is refused and never repeated."""
    if isinstance(value, SecretRef):
        return value
    if isinstance(value, str):
        if value == STORED:
            return SecretRef(STORED)
        kind, sep, target = value.partition(":")
        if sep and kind == "env" and _ENV_NAME.match(target):
            return SecretRef("env", target)
        if sep and kind == "file" and target and "\x00" not in target:
            return SecretRef("file", target)
    raise PydanticCustomError(
        "inline_secret",
        "an inline secret is refused: give env:NAME, file:PATH or stored",
    )


SecretRefField = Annotated[
    SecretRef,
    BeforeValidator(parse_ref),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": PATTERN}),
]


def resolve(
    ref: SecretRef, *, field: str, base_dir: Path, environ: Mapping[str, str] | None = None
) -> Secret | None:
    """The secret ``ref`` names (None for ``stored``: the stored one is kept)."""
    if ref.kind == STORED:
        return None
    if ref.kind == "env":
        value = (os.environ if environ is None else environ).get(ref.target)
        if value is None:
            raise SecretReferenceError(
                f"{field}: the environment variable {ref.target} is not set",
                hint=f"Set {ref.target} in the environment of the mailport command.",
                field=field,
            )
    else:
        path = Path(ref.target).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_SECRET_FILE + 1)
        except OSError as exc:
            raise SecretReferenceError(
                f"{field}: cannot read {path} ({exc.strerror or type(exc).__name__})",
                hint="file: paths are relative to the accounts file's directory (on the command line, "
                "to the current directory).",
                field=field,
            ) from None
        if len(raw) > MAX_SECRET_FILE:
            raise SecretReferenceError(f"{field}: {path} is larger than {MAX_SECRET_FILE} bytes", field=field)
        try:
            value = raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
        except UnicodeDecodeError:
            raise SecretReferenceError(f"{field}: {path} is not UTF-8 text", field=field) from None
    if not value:
        raise SecretReferenceError(f"{field}: {ref} is empty", field=field)
    return Secret(value)
