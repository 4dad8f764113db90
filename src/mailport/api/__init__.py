"""The HTTP API (FastAPI): thin routers over the service layer."""

from mailport.api.app import create_app

__all__ = ["create_app"]
