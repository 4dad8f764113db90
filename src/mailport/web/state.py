"""The web UI's share of the process: built once per app, on first use, from the services."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from mailport.api.deps import get_services
from mailport.check.runs import CheckRunStore
from mailport.oauth.repository import DatabaseStateStore
from mailport.services import Services
from mailport.web.checks import CheckRuns
from mailport.web.links import ConnectLinks
from mailport.web.sealed import Sealer
from mailport.web.session import SessionCodec


@dataclass
class WebState:
    services: Services
    sealer: Sealer
    sessions: SessionCodec
    links: ConnectLinks
    runs: CheckRuns

    @classmethod
    def build(cls, services: Services) -> WebState:
        settings = services.settings
        sealer = Sealer(services.key_ring, clock=services.oauth.now)
        return cls(
            services=services,
            sealer=sealer,
            sessions=SessionCodec(sealer, settings),
            links=ConnectLinks(
                sealer, DatabaseStateStore(services.database), public_url=settings.effective_public_url
            ),
            runs=CheckRuns(
                services.guard,
                trust=services.trust,
                timeout=settings.check_timeout,
                store=CheckRunStore(services.database),
                clock=services.oauth.now,
                budget=(settings.check_rate_per_minute, settings.check_burst),
            ),
        )


def get_web(request: Request) -> WebState:
    services = get_services(request)
    state: WebState | None = getattr(request.app.state, "web", None)
    if state is None or state.services is not services:
        state = WebState.build(services)
        request.app.state.web = state
    return state
