"""The HTTP API (FastAPI): thin routers over the service layer.

``create_app`` is loaded on first use, so that a worker importing a small module of this package
(its HTTP port, the listening socket) does not load every router: about 17 MiB per process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailport.api.app import create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from mailport.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app"]
