"""Reading the accounts file: YAML or JSON, with the line of the first problem.

PyYAML reads both (JSON is YAML's flow style): the file is composed into nodes once, which
keep their line numbers, and turned into plain data; a validation error's location
(``tenants[0].mailboxes[1].imap``) is walked back through the nodes to its line. A ``.json``
file is also read with :mod:`json`, so it must be strict JSON. A refused value is never repeated
in the message (it may be a secret written where a reference belongs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mailport.declare.model import AccountsFile
from mailport.errors import DeclarationInvalidError, InlineSecretError

MAX_FILE_BYTES = 4 * 1024 * 1024


def load_file(path: Path) -> AccountsFile:
    """The accounts file at ``path``, validated; DeclarationInvalidError otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DeclarationInvalidError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise DeclarationInvalidError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DeclarationInvalidError(f"{path} is not UTF-8 text") from None
    return parse_text(text, name=str(path), strict_json=path.suffix.lower() == ".json")


def parse_text(text: str, *, name: str, strict_json: bool = False) -> AccountsFile:
    if strict_json:
        data = _json(text, name)
        try:  # only for the lines of a validation error
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            node = None
    else:
        node = _compose(text, name)
        data = _construct(node)
    try:
        return AccountsFile.model_validate(data)
    except ValidationError as exc:
        raise _refusal(exc, node, name) from None


def _json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeclarationInvalidError(f"{name}:{exc.lineno}: not valid JSON: {exc.msg}") from None


def _compose(text: str, name: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}" if mark else name
        raise DeclarationInvalidError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise DeclarationInvalidError(f"{name}: not valid YAML ({type(exc).__name__})") from None


def _construct(node: yaml.Node | None) -> Any:
    if node is None:
        return None
    try:
        return yaml.SafeLoader("").construct_document(node)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f":{line + 1}" if line is not None else ""
        raise DeclarationInvalidError(f"file{where}: not valid YAML ({type(exc).__name__})") from None


def _refusal(exc: ValidationError, root: yaml.Node | None, name: str) -> DeclarationInvalidError:
    """The first problem, as ``name:line: path: message`` (the input never shown)."""
    error = exc.errors(include_input=False, include_url=False)[0]
    loc = [part for part in error["loc"] if not _is_model_tag(part)]
    path = _path_text(loc)
    line = _line_of(root, loc)
    where = f"{name}:{line}" if line else name
    message = error["msg"].removeprefix("Value error, ")
    text = f"{where}: {path}: {message}" if path else f"{where}: {message}"
    more = len(exc.errors()) - 1
    if more:
        text += f" (and {more} more problem{'s' if more > 1 else ''})"
    cls = InlineSecretError if error["type"] == "inline_secret" else DeclarationInvalidError
    return cls(text, field=path or None)


def _is_model_tag(part: int | str) -> bool:
    """pydantic names the branch of a union or a validator in the location; not a field."""
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)


def _path_text(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the deepest node ``loc`` reaches."""
    if node is None:
        return None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((value for key, value in node.value if getattr(key, "value", None) == part), None)
            if child is None:  # a missing field: the mapping that lacks it
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
    return node.start_mark.line + 1
