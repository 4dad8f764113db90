"""Microsoft's machine-readable description of Graph v1.0, for checking the fake and the client.

The OpenAPI YAML of msgraph-metadata is not obtainable here, so this reads Microsoft's own
generated output of it: the ``msgraph-sdk`` 1.65.0 wheel from PyPI, downloaded once into
``.cache/specs/`` (gitignored) with ``pip download --no-deps`` and **never installed or
imported**. With :mod:`ast` it reads, straight from the zip:

* request builders: ``url_template`` (path and query parameter names, e.g.
  ``{+baseurl}/users/{user%2Did}/mailFolders/{mailFolder%2Did}/messages/delta(){?%24filter,…}``),
  the HTTP methods they define and those methods' body and response types;
* models: ``get_field_deserializers`` (JSON property → ``get_str_value``, ``get_bool_value``,
  ``get_object_value(X)``, ``get_collection_of_object_values(X)``, enums …), following base
  classes, and enum members.

Only the modules of the mail endpoints are parsed (users/item/{mail_folders,messages,send_mail},
subscriptions), models on demand; the result is cached as JSON beside the wheel and per process.
``$batch`` (served by Graph's core, not described by the SDK's generated code) and change
notifications (not among the SDK's models) are checked against the shapes Microsoft's JSON
batching and change-notification pages document, written out below.
"""

from __future__ import annotations

import ast
import base64
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
SPEC_DIR = ROOT / ".cache" / "specs"
SDK = "msgraph-sdk==1.65.0"
WHEEL = SPEC_DIR / "msgraph_sdk-1.65.0-py3-none-any.whl"
PARSED = SPEC_DIR / "msgraph-sdk-1.65.0.mail.json"
PREFIX = "msgraph/generated/"
BUILDER_ROOTS = (
    "users/item/user_item_request_builder.py",
    "users/item/mail_folders/",
    "users/item/messages/",
    "users/item/send_mail/",
    "subscriptions/",
)
# OData annotations every payload may carry, and delta's removal marker.
ANNOTATIONS = {"@odata.context", "@odata.etag", "@odata.type", "@odata.id", "@removed"}
# Server-driven paging: opaque tokens inside Graph's own next/delta links.
PAGING_QUERY = {"$skiptoken", "$deltatoken"}
PRIMITIVES = {
    "get_str_value": "str",
    "get_bool_value": "bool",
    "get_int_value": "int",
    "get_float_value": "float",
    "get_datetime_value": "datetime",
    "get_date_value": "date",
    "get_time_value": "time",
    "get_timedelta_value": "duration",
    "get_bytes_value": "bytes",
    "get_uuid_value": "uuid",
}


def ensure_wheel() -> Path:
    """The wheel, downloaded once (atomically: parallel workers may race)."""
    if WHEEL.exists():
        return WHEEL
    SPEC_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=SPEC_DIR) as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--disable-pip-version-check",
                SDK,
                "-d",
                tmp,
            ],
            check=True,
            timeout=600,
        )
        os.replace(Path(tmp) / WHEEL.name, WHEEL)
    return WHEEL


def _module_of(current: str, level: int, module: str | None) -> str:
    """A relative import's module path (``models/message``) from the importing module's path."""
    parts = current.split("/")[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return "/".join(parts + (module.split(".") if module else []))


def _imports(tree: ast.AST, current: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = _module_of(current, node.level, node.module)
            for alias in node.names:
                names[alias.asname or alias.name] = base
    return names


def _annotation_name(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Subscript):  # Optional[X]
        return _annotation_name(node.slice)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


class _Reader:
    def __init__(self, wheel: Path) -> None:
        self.zip = zipfile.ZipFile(wheel)
        self.names = set(self.zip.namelist())
        self.models: dict[str, Any] = {}

    def tree(self, module: str) -> ast.Module:
        return ast.parse(self.zip.read(PREFIX + module + ".py"))

    def builders(self) -> list[dict[str, Any]]:
        found = []
        for name in sorted(self.names):
            rel = name.removeprefix(PREFIX)
            if not name.startswith(PREFIX) or not name.endswith("_request_builder.py"):
                continue
            if not any(
                rel == root or (root.endswith("/") and rel.startswith(root)) for root in BUILDER_ROOTS
            ):
                continue
            found.append(self.builder(rel.removesuffix(".py")))
        return found

    def builder(self, module: str) -> dict[str, Any]:
        tree = self.tree(module)
        imports = _imports(tree, module)
        template, methods = "", {}
        for cls in tree.body:
            if not isinstance(cls, ast.ClassDef) or not cls.name.endswith("RequestBuilder"):
                continue
            for node in cls.body:
                if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                    for call in ast.walk(node):
                        if (
                            isinstance(call, ast.Call)
                            and len(call.args) >= 2
                            and isinstance(call.args[1], ast.Constant)
                        ):
                            template = str(call.args[1].value)
                if isinstance(node, ast.AsyncFunctionDef) and node.name in (
                    "get",
                    "post",
                    "patch",
                    "put",
                    "delete",
                ):
                    body = next((a for a in node.args.args if a.arg == "body"), None)
                    body_type = _annotation_name(body.annotation) if body else None
                    response = _annotation_name(node.returns)
                    methods[node.name] = {
                        "body": self.model_ref(body_type, imports),
                        "response": self.model_ref(response, imports),
                    }
        path, _, query = template.removeprefix("{+baseurl}").partition("{?")
        return {
            "module": module,
            "template": path,
            "query": [q.replace("%24", "$").rstrip("*") for q in query.rstrip("}").split(",") if q],
            "methods": methods,
        }

    def model_ref(self, name: str | None, imports: dict[str, str]) -> str | None:
        """A type name as a model module (``models/message``), a primitive, or None."""
        if name is None or name == "None":
            return None
        if name in ("bytes", "int", "str", "bool", "float"):
            return name
        module = imports.get(name)
        if module is None:
            return None
        self.model(module)
        return module

    def model(self, module: str) -> dict[str, Any]:
        """Fields of a model (``{"fields": {json: kind}}``) or an enum (``{"enum": [values]}``)."""
        if module in self.models:
            return self.models[module]
        self.models[module] = {"fields": {}}  # a cycle's placeholder
        tree = self.tree(module)
        imports = _imports(tree, module)
        result: dict[str, Any] = {"fields": {}}
        for cls in tree.body:
            if not isinstance(cls, ast.ClassDef):
                continue
            bases = [b.id for b in cls.bases if isinstance(b, ast.Name)]
            if "Enum" in bases:
                values = []
                for node in cls.body:
                    if isinstance(node, ast.Assign):
                        value = node.value.elts[0] if isinstance(node.value, ast.Tuple) else node.value
                        if isinstance(value, ast.Constant):
                            values.append(value.value)
                result = {"enum": values}
                break
            fields: dict[str, Any] = {}
            for node in ast.walk(cls):
                if isinstance(node, ast.FunctionDef) and node.name == "get_field_deserializers":
                    for item in ast.walk(node):
                        if isinstance(item, ast.Dict):
                            for key, value in zip(item.keys, item.values, strict=True):
                                if isinstance(key, ast.Constant) and isinstance(value, ast.Lambda):
                                    fields[str(key.value)] = self.kind(value.body, imports)
            for base in bases:
                if base in imports:
                    fields = {**self.model(imports[base]).get("fields", {}), **fields}
            result = {"fields": fields}
            break
        self.models[module] = result
        return result

    def kind(self, node: ast.expr, imports: dict[str, str]) -> dict[str, Any]:
        call = node.args[2] if isinstance(node, ast.Call) and len(node.args) == 3 else node
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
            return {"type": "any"}
        method = call.func.attr
        arg = call.args[0] if call.args else None
        arg_name = arg.id if isinstance(arg, ast.Name) else None
        if method in PRIMITIVES:
            return {"type": PRIMITIVES[method]}
        if method in ("get_object_value", "get_enum_value") and arg_name in imports:
            module = imports[arg_name]
            self.model(module)
            return {"type": "object" if method == "get_object_value" else "enum", "model": module}
        if (
            method in ("get_collection_of_object_values", "get_collection_of_enum_values")
            and arg_name in imports
        ):
            module = imports[arg_name]
            self.model(module)
            inner = "object" if method == "get_collection_of_object_values" else "enum"
            return {"type": "list", "of": {"type": inner, "model": module}}
        if method == "get_collection_of_primitive_values":
            primitive = {"str": "str", "int": "int", "bool": "bool", "float": "float"}.get(
                arg_name or "", "any"
            )
            return {"type": "list", "of": {"type": primitive}}
        return {"type": "any"}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@functools.lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    """The parsed description (cached on disk beside the wheel and in this process)."""
    if PARSED.exists():
        return json.loads(PARSED.read_text())
    reader = _Reader(ensure_wheel())
    builders = reader.builders()
    # Models a check may meet through ``@odata.type`` (derived types) are read on demand too.
    for extra in ("file_attachment", "o_data_errors/o_data_error", "user", "subscription", "mail_folder"):
        reader.model("models/" + extra)
    spec = {"builders": builders, "models": reader.models}
    tmp = PARSED.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(spec))
    os.replace(tmp, PARSED)
    return spec


# --------------------------------------------------------------------------- checking


def _segments(template: str) -> list[str]:
    return [s for s in template.split("/") if s]


def match_endpoint(spec: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The request builder whose template matches ``path`` (``/v1.0/me/…``), the most literal."""
    rest = path.removeprefix("/v1.0")
    rest = re.sub(r"^/me(?=/|$)", "/users/{me}", rest)
    parts = [p for p in rest.split("/") if p]
    best, best_literal = None, -1
    for builder in spec["builders"]:
        segments = _segments(builder["template"])
        if len(segments) != len(parts):
            continue
        literal = 0
        for segment, part in zip(segments, parts, strict=True):
            if segment.startswith("{"):
                continue
            if segment == part or (segment.endswith("()") and segment[:-2] == part):
                literal += 1
                continue
            break
        else:
            if literal > best_literal:
                best, best_literal = builder, literal
    return best


def check_value(spec: dict[str, Any], kind: dict[str, Any], value: Any, where: str) -> list[str]:
    """Problems of ``value`` against a field kind (None is allowed: Graph's fields are nullable)."""
    if value is None:
        return []
    kind_type = kind.get("type")
    ok = True
    if kind_type == "str" or kind_type == "uuid":
        ok = isinstance(value, str)
    elif kind_type == "bool":
        ok = isinstance(value, bool)
    elif kind_type == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind_type == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind_type == "datetime":
        ok = isinstance(value, str) and _is_datetime(value)
    elif kind_type == "bytes":
        ok = isinstance(value, str) and _is_base64(value)
    elif kind_type == "enum":
        values = spec["models"].get(kind["model"], {}).get("enum", [])
        ok = isinstance(value, str) and all(v in values for v in value.split(","))
    elif kind_type == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        return check_object(spec, kind["model"], value, where)
    elif kind_type == "list":
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        return [
            p for i, item in enumerate(value) for p in check_value(spec, kind["of"], item, f"{where}[{i}]")
        ]
    return (
        []
        if ok
        else [
            f"{where}: {value!r} is not a {kind_type}{' of ' + kind['model'] if kind_type == 'enum' else ''}"
        ]
    )


def check_object(spec: dict[str, Any], model: str, value: dict[str, Any], where: str) -> list[str]:
    """Problems of a JSON object against a model: unknown properties and wrong types
    (``@odata.type`` selects a derived model, as Graph's serializers do)."""
    derived = value.get("@odata.type")
    if isinstance(derived, str) and derived.startswith("#microsoft.graph."):
        candidate = "models/" + _snake(derived.removeprefix("#microsoft.graph."))
        if candidate in spec["models"]:
            model = candidate
    fields = spec["models"].get(model, {}).get("fields")
    if fields is None:
        return [f"{where}: no model {model} in the description"]
    problems = []
    # Action parameters (``…PostRequestBody``) are case-insensitive in Graph: the description
    # spells ``DestinationId``, the documentation and clients ``destinationId``.
    folded = {} if model.startswith("models/") else {k.lower(): k for k in fields}
    for key, item in value.items():
        key = key if key in fields else folded.get(key.lower(), key)
        if key in fields:
            problems += check_value(spec, fields[key], item, f"{where}.{key}")
        elif key not in ANNOTATIONS:
            problems.append(f"{where}: property {key!r} is not in {model}")
    return problems


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True


BATCH_REQUEST_KEYS = {"id", "method", "url", "headers", "body", "dependsOn"}
BATCH_RESPONSE_KEYS = {"id", "status", "headers", "body"}


def check_batch(body: Any, response: Any) -> list[str]:
    """The JSON batching envelope as Microsoft documents it (at most 20 requests)."""
    problems = []
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not 0 < len(requests) <= 20:
        problems.append("$batch: requests must be a list of 1 to 20")
    for item in requests or []:
        problems += [f"$batch request: unknown {k!r}" for k in set(item) - BATCH_REQUEST_KEYS]
        if not (
            isinstance(item.get("id"), str)
            and isinstance(item.get("method"), str)
            and isinstance(item.get("url"), str)
        ):
            problems.append("$batch request: id, method and url are strings")
        if str(item.get("url", "")).startswith(("http", "/v1.0")):
            problems.append("$batch request: url must be relative to the version")
    ids = [str(item.get("id")) for item in requests or []]
    if len({i.lower() for i in ids}) != len(ids):
        problems.append("$batch request: ids must be unique (not case-sensitive)")
    if isinstance(response, dict) and "responses" in response:
        answered = []
        for item in response["responses"]:
            problems += [f"$batch response: unknown {k!r}" for k in set(item) - BATCH_RESPONSE_KEYS]
            if not isinstance(item.get("status"), int) or not isinstance(item.get("id"), str):
                problems.append("$batch response: id is a string and status an integer")
            answered.append(str(item.get("id")))
            problems += _check_batch_body(item)
        if sorted(answered) != sorted(ids):
            problems.append("$batch response: every request is answered once, by its id")
    return problems


def _check_batch_body(item: dict[str, Any]) -> list[str]:
    """A part's body is JSON (an object, with a JSON Content-Type) or, for any other content,
    base64 in a JSON string (so a ``/$value`` part's MIME)."""
    body = item.get("body")
    headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
    json_type = headers.get("content-type", "").split(";")[0].strip() == "application/json"
    if isinstance(body, str):
        if json_type:
            return ["$batch response: a string body under a JSON Content-Type"]
        if not _is_base64(body):
            return ["$batch response: a body that is not JSON must be base64"]
    elif body is not None and not isinstance(body, dict):
        return ["$batch response: a body is a JSON object or a base64 string"]
    return []


NOTIFICATION_KEYS = {
    "subscriptionId": str,
    "subscriptionExpirationDateTime": str,
    "changeType": str,
    "resource": str,
    "resourceData": dict,
    "clientState": (str, type(None)),
    "tenantId": str,
    "lifecycleEvent": str,
}
LIFECYCLE_EVENTS = {"missed", "reauthorizationRequired", "subscriptionRemoved"}


def check_notification(body: Any) -> list[str]:
    """A change or lifecycle notification as Microsoft's change-notification pages show it."""
    problems = []
    values = body.get("value") if isinstance(body, dict) else None
    if not isinstance(values, list) or not values:
        return ["notification: value must be a non-empty list"]
    for item in values:
        for key, value in item.items():
            if key not in NOTIFICATION_KEYS:
                problems.append(f"notification: unknown property {key!r}")
            elif not isinstance(value, NOTIFICATION_KEYS[key]):  # type: ignore[arg-type]
                problems.append(f"notification: {key} has the wrong type")
        if "lifecycleEvent" in item:
            if item["lifecycleEvent"] not in LIFECYCLE_EVENTS:
                problems.append(f"notification: unknown lifecycleEvent {item['lifecycleEvent']!r}")
        elif not {"changeType", "resource", "resourceData", "subscriptionId"} <= set(item):
            problems.append(
                "notification: changeType, resource, resourceData and subscriptionId are required"
            )
    return problems


def check_exchange(spec: dict[str, Any], exchange: Any) -> list[str]:
    """Problems of one recorded request and its answer (path, method, query names, request body
    properties and types, response properties and types, error envelope)."""
    where = f"{exchange.method} {exchange.path}"
    if exchange.path == "/v1.0/$batch":
        return [f"{where}: {p}" for p in check_batch(exchange.body, exchange.response)]
    endpoint = match_endpoint(spec, exchange.path)
    if endpoint is None:
        return [f"{where}: no such path in Graph v1.0"]
    method = endpoint["methods"].get(exchange.method.lower())
    if method is None:
        return [f"{where}: {exchange.method} is not allowed on {endpoint['template']}"]
    problems = [
        f"{where}: query parameter {name!r} is not declared"
        for name in exchange.query
        if name not in endpoint["query"] and name not in PAGING_QUERY
    ]
    if isinstance(exchange.body, dict):
        if method["body"] in (None, "bytes"):
            if exchange.body:
                problems.append(f"{where}: sends a JSON body the endpoint does not take")
        else:
            problems += check_object(spec, method["body"], exchange.body, f"{where} request")
    elif exchange.raw_body and exchange.content_type == "text/plain":
        if not _is_base64(exchange.raw_body.decode("ascii", "replace")):
            problems.append(f"{where}: MIME content must be base64")
    response = exchange.response
    if exchange.status >= 400:
        if isinstance(response, dict):
            problems += check_object(spec, "models/o_data_errors/o_data_error", response, f"{where} error")
    elif isinstance(response, dict):
        if method["response"] in (None, "bytes"):
            problems.append(f"{where}: answers JSON where the endpoint has no JSON body")
        else:
            problems += check_object(spec, method["response"], response, f"{where} response")
    return problems


def check_exchanges(spec: dict[str, Any], exchanges: Iterable[Any]) -> list[str]:
    seen: set[str] = set()
    problems = []
    for exchange in exchanges:
        for problem in check_exchange(spec, exchange):
            if problem not in seen:
                seen.add(problem)
                problems.append(problem)
    return problems
