"""Imports follow the layers: dependencies point inward.

The rules, checked on the imports of every module under ``src/mailport`` (parsed with ``ast``,
so an import inside a function or under ``TYPE_CHECKING`` counts too):

1. A router module (one that builds a FastAPI ``APIRouter``) imports no other router module:
   what two routers share lives in a neutral module (``mailport.api.deps``, a service).
2. The web pages (``mailport.web``) never import an API router (``mailport.api.routers``), and
   an API router never imports a web page module (a router module under ``mailport.web``).
3. Only the composition root's users import :mod:`mailport.bootstrap`: the CLI
   (``mailport.cli``), the app factory and ``serve`` (``mailport.api.app``,
   ``mailport.api.server``), the runtime (``mailport.runtime``), the library's
   ``mailport.open()`` (``mailport.library``) and ``mailport/__init__``.
   Features name the service graph's type through :mod:`mailport.services`.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import mailport

pytestmark = pytest.mark.xdist_group("source-scan")  # one worker parses the tree once

SRC = Path(mailport.__file__).parent
MAY_IMPORT_BOOTSTRAP = (
    "mailport.cli",
    "mailport.api.app",
    "mailport.api.server",
    "mailport.runtime",
    "mailport.library",
    "mailport",
)


def _name(path: Path) -> str:
    parts = ["mailport", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, module: str, *, package: bool) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def _builds_router(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == "APIRouter" or getattr(node.func, "attr", None) == "APIRouter")
        for node in ast.walk(tree)
    )


@functools.cache  # parsed once per worker: every test here reads the same imports
def _modules() -> dict[str, tuple[set[str], bool]]:
    """Each module's imports and whether it is a router module."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        module = _name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        out[module] = (_imports(tree, module, package=path.name == "__init__.py"), _builds_router(tree))
    return out


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_rules_see_the_routers() -> None:
    routers = {name for name, (_, is_router) in _modules().items() if is_router}
    assert "mailport.api.routers.mailboxes" in routers
    assert "mailport.web.wizard" in routers


def test_routers_do_not_import_each_other() -> None:
    modules = _modules()
    routers = {name for name, (_, is_router) in modules.items() if is_router}
    wrong = sorted(
        f"{name} imports {target}"
        for name in routers
        for target in modules[name][0] & routers
        if target != name
    )
    assert not wrong, (
        "a router imports another router (move the shared piece into a neutral module):\n" + "\n".join(wrong)
    )


def test_web_and_api_routers_do_not_import_each_other() -> None:
    modules = _modules()
    pages = {name for name, (_, is_router) in modules.items() if is_router and _within(name, "mailport.web")}
    wrong = []
    for name, (imports, _) in modules.items():
        if _within(name, "mailport.web"):
            wrong += [f"{name} imports {t}" for t in imports if _within(t, "mailport.api.routers")]
        if _within(name, "mailport.api.routers"):
            wrong += [f"{name} imports {t}" for t in imports & pages]
    assert not wrong, "the web pages and the API routers import each other:\n" + "\n".join(sorted(wrong))


def test_only_the_composition_roots_users_import_bootstrap() -> None:
    wrong = sorted(
        name
        for name, (imports, _) in _modules().items()
        if any(_within(t, "mailport.bootstrap") for t in imports)
        and name != "mailport.bootstrap"
        and not any(
            name == allowed or (allowed != "mailport" and _within(name, allowed))
            for allowed in MAY_IMPORT_BOOTSTRAP
        )
    )
    assert not wrong, (
        "features import the composition root (use mailport.services, or inject):\n" + "\n".join(wrong)
    )
