"""The spec check: exchanges with the Gmail fake validated against Google's own machine-readable
descriptions, the discovery documents ``gmail.v1.json`` and ``pubsub.v1.json``.

The documents ship inside the ``google-api-python-client`` wheel (a dev dependency only). They
are read as files through :mod:`importlib.metadata` — the package is never imported, here or at
run time. For every recorded exchange (what mailport's client sent, what the fake answered):

* method + path match a discovery method (its ``flatPath``/``path`` template, the media upload
  path ``/upload/…`` of methods that take uploads, or the batch path ``/batch/gmail/v1``);
* every query parameter is one the method or the API declares, with an allowed value (enums,
  integers, booleans; repeated only where declared repeated);
* the request body's properties exist in the method's request schema with the right JSON
  types, recursively through ``$ref`` (an upload's metadata part too);
* a 2xx answer's body matches the method's response schema the same way (a method without a
  response schema answers an empty body); an error answer has Google's error shape;
* Pub/Sub push deliveries carry a ``PubsubMessage`` and the subscription name; the service
  account's token answer has the OAuth token fields.

int64/uint64 values are JSON strings in Google's APIs (``historyId``, ``internalDate``): a number
there is a drift, and caught.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

from tests.fakes.gmail import Exchange

DISTRIBUTION = "google-api-python-client"
DOCUMENTS = "googleapiclient/discovery_cache/documents"
BATCH_PATH = "/batch/gmail/v1"
# Real Pub/Sub pushes carry these snake_case duplicates of messageId/publishTime as well.
PUSH_EXTRA = frozenset({"message_id", "publish_time"})


def discovery(name: str) -> dict[str, Any]:
    """A discovery document from the installed wheel, by file name (``gmail.v1.json``)."""
    path = metadata.distribution(DISTRIBUTION).locate_file(f"{DOCUMENTS}/{name}")
    return json.loads(path.read_text())  # type: ignore[union-attr]


@dataclass(frozen=True)
class Method:
    id: str
    http_method: str
    pattern: re.Pattern[str]
    template: str
    parameters: dict[str, Any]
    request: str | None
    response: str | None
    upload: bool
    doc: str  # which document


def _template_regex(template: str) -> re.Pattern[str]:
    out, pos = "", 0
    for match in re.finditer(r"\{(\+?)([^}]+)\}", template):
        out += re.escape(template[pos : match.start()])
        out += "(.+)" if match.group(1) else "([^/]+)"
        pos = match.end()
    return re.compile(out + re.escape(template[pos:]))


@cache
def methods() -> tuple[Method, ...]:
    found: list[Method] = []
    for doc_name in ("gmail.v1.json", "pubsub.v1.json"):
        doc = discovery(doc_name)

        def walk(resources: dict[str, Any], doc: dict[str, Any] = doc, doc_name: str = doc_name) -> None:
            for resource in resources.values():
                for method in resource.get("methods", {}).values():
                    template = "/" + (method.get("flatPath") or method["path"])
                    params = {**doc.get("parameters", {}), **method.get("parameters", {})}
                    common = {
                        "http_method": method["httpMethod"],
                        "parameters": params,
                        "request": (method.get("request") or {}).get("$ref"),
                        "response": (method.get("response") or {}).get("$ref"),
                        "doc": doc_name,
                    }
                    found.append(
                        Method(
                            method["id"],
                            pattern=_template_regex(template),
                            template=template,
                            upload=False,
                            **common,
                        )
                    )
                    simple = (method.get("mediaUpload") or {}).get("protocols", {}).get("simple")
                    if simple:
                        flat = simple["path"]
                        found.append(
                            Method(
                                method["id"],
                                pattern=_template_regex(flat),
                                template=flat,
                                upload=True,
                                **common,
                            )
                        )
                walk(resource.get("resources", {}))

        walk(doc["resources"])
    return tuple(found)


def find_method(http_method: str, path: str, *, upload: bool) -> Method | None:
    candidates = [
        m
        for m in methods()
        if m.http_method == http_method and m.upload == upload and m.pattern.fullmatch(path)
    ]
    # The most specific template wins (``messages/send`` over ``messages/{id}``).
    candidates.sort(key=lambda m: -len(re.sub(r"\{[^}]+\}", "", m.template)))
    return candidates[0] if candidates else None


def _schemas(doc: str) -> dict[str, Any]:
    return _schema_cache(doc)


@cache
def _schema_cache(doc: str) -> dict[str, Any]:
    return discovery(doc)["schemas"]  # type: ignore[no-any-return]


def check_value(value: Any, schema: dict[str, Any], doc: str, where: str) -> list[str]:
    """Problems of ``value`` against a discovery schema (recursively through ``$ref``)."""
    if "$ref" in schema:
        return check_value(value, _schemas(doc)[schema["$ref"]], doc, where)
    kind = schema.get("type")
    if value is None:
        return []
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        problems: list[str] = []
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                problems += check_value(item, properties[key], doc, f"{where}.{key}")
            elif extra is not None:
                problems += check_value(item, extra, doc, f"{where}.{key}")
            elif properties is not None:
                problems.append(f"{where}.{key}: not a property of {schema.get('id', 'the schema')}")
        return problems
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {type(value).__name__}"]
        return [
            p
            for i, item in enumerate(value)
            for p in check_value(item, schema.get("items", {}), doc, f"{where}[{i}]")
        ]
    if kind == "string":
        if not isinstance(value, str):
            got = f"{type(value).__name__} {value!r}"[:80]
            return [f"{where}: expected a string ({schema.get('format', 'text')}), got {got}"]
        fmt = schema.get("format")
        if fmt in ("int64", "uint64") and not re.fullmatch(r"-?\d+", value):
            return [f"{where}: {fmt} string {value!r} is not a decimal integer"]
        if fmt == "byte":
            try:
                base64.b64decode(
                    value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4), validate=True
                )
            except (binascii.Error, ValueError):
                return [f"{where}: not base64"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{where}: {value!r} is not one of {schema['enum']}"]
        return []
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: expected an integer, got {type(value).__name__} {value!r}"[:200]]
        return []
    if kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            return [f"{where}: expected a number, got {type(value).__name__}"]
        return []
    if kind == "boolean":
        if not isinstance(value, bool):
            return [f"{where}: expected a boolean, got {type(value).__name__}"]
        return []
    if kind == "any" or kind is None:
        return []
    return [f"{where}: unknown schema type {kind!r}"]


def check_query(method: Method, query: list[tuple[str, str]], where: str) -> list[str]:
    problems: list[str] = []
    counts: dict[str, int] = {}
    for name, value in query:
        counts[name] = counts.get(name, 0) + 1
        param = method.parameters.get(name)
        if param is None or param.get("location") != "query":
            problems.append(f"{where}: query parameter {name!r} is not declared for {method.id}")
            continue
        if "enum" in param and value not in param["enum"]:
            problems.append(f"{where}: {name}={value!r} is not one of {param['enum']}")
        if param.get("type") == "integer" and not re.fullmatch(r"-?\d+", value):
            problems.append(f"{where}: {name}={value!r} is not an integer")
        if param.get("type") == "boolean" and value not in ("true", "false"):
            problems.append(f"{where}: {name}={value!r} is not a boolean")
        if param.get("format") in ("uint64", "int64") and not re.fullmatch(r"\d+", value):
            problems.append(f"{where}: {name}={value!r} is not a {param['format']}")
    for name, count in counts.items():
        param = method.parameters.get(name) or {}
        if count > 1 and not param.get("repeated"):
            problems.append(f"{where}: {name} repeated but not declared repeated")
    if method.upload and not any(name == "uploadType" for name, _ in query):
        problems.append(f"{where}: an upload without uploadType")
    return problems


def check_error_body(body: Any, where: str) -> list[str]:
    if body is None:
        return []
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return [f"{where}: an error answer without Google's {{'error': {{…}}}} body"]
    problems = []
    if not isinstance(error.get("code"), int):
        problems.append(f"{where}: error.code is not an integer")
    if not isinstance(error.get("message"), str):
        problems.append(f"{where}: error.message is not a string")
    if not isinstance(error.get("status"), str):
        problems.append(f"{where}: error.status is not a string")
    for item in error.get("errors") or ():
        if not isinstance(item, dict) or not isinstance(item.get("reason"), str):
            problems.append(f"{where}: error.errors[] without a reason")
    return problems


def check_exchange(exchange: Exchange) -> list[str]:
    where = f"{exchange.method} {exchange.path} → {exchange.status}"
    if exchange.service == "token":
        if exchange.status == 200:
            body = exchange.response or {}
            if not (
                isinstance(body.get("access_token"), str)
                and isinstance(body.get("expires_in"), int)
                and body.get("token_type") == "Bearer"
            ):
                return [f"{where}: not an OAuth token answer"]
        return []
    if exchange.service == "push":
        body = exchange.body or {}
        problems = (
            [] if isinstance(body.get("subscription"), str) else [f"{where}: push without subscription"]
        )
        message = {k: v for k, v in (body.get("message") or {}).items() if k not in PUSH_EXTRA}
        return problems + check_value(
            message, {"$ref": "PubsubMessage"}, "pubsub.v1.json", f"{where} push.message"
        )
    if exchange.kind == "batch":
        if exchange.method != "POST" or exchange.path != BATCH_PATH:
            return [f"{where}: not Gmail's batch endpoint ({BATCH_PATH})"]
        return check_error_body(exchange.response, where) if exchange.status >= 400 else []
    method = find_method(exchange.method, exchange.path, upload=exchange.kind == "upload")
    if method is None:
        return [f"{where}: no method of the discovery documents answers this method and path"]
    problems = check_query(method, exchange.query, where)
    if exchange.body is not None:
        if method.request is None:
            problems.append(f"{where}: a body sent to {method.id}, which takes none")
        else:
            problems += check_value(exchange.body, {"$ref": method.request}, method.doc, f"{where} request")
    if 200 <= exchange.status < 300:
        if method.response is None:
            if exchange.response not in (None, {}):
                problems.append(f"{where}: {method.id} answers no body, the fake sent one")
        else:
            problems += check_value(
                exchange.response, {"$ref": method.response}, method.doc, f"{where} response"
            )
    else:
        problems += check_error_body(exchange.response, where)
    return problems


def check_exchanges(exchanges: list[Exchange]) -> list[str]:
    """Every problem of every exchange (empty: all of them match the documents)."""
    return [problem for exchange in list(exchanges) for problem in check_exchange(exchange)]


def method_ids(exchanges: list[Exchange]) -> set[str]:
    """The discovery method ids the exchanges exercised (``gmail.users.messages.send`` …)."""
    ids = set()
    for exchange in exchanges:
        if exchange.kind == "batch":
            ids.add("batch")
            continue
        method = find_method(exchange.method, exchange.path, upload=exchange.kind == "upload")
        if method is not None:
            ids.add(method.id + (" (upload)" if method.upload else ""))
    return ids
