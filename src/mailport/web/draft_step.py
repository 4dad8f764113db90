"""What every wizard step after the first receives: a wizard user's form with the sealed draft.

One dependency instead of the same four parameters and the same opening lines in every step.
The draft is opened when the handler first asks for it, not in the dependency: a form that is
invalid as well as expired is still answered as invalid input, as each step did on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from fastapi import Depends, Form, Request

from mailport.errors import InputError
from mailport.web.deps import wizard_user
from mailport.web.drafts import Draft, open_draft
from mailport.web.session import WebSession
from mailport.web.state import WebState, get_web


def open_sealed_draft(web: WebState, token: str, session: WebSession) -> Draft:
    """The draft sealed in ``token`` for this session's tenant; refused when expired or foreign."""
    draft = open_draft(web.sealer, token, session.tenant_id)
    if draft is None:
        raise InputError(
            "this wizard page expired (or belongs to another session)",
            hint="Start again from the email address; nothing was saved.",
        )
    return draft


@dataclass(frozen=True)
class DraftStep:
    request: Request
    session: WebSession
    web: WebState
    token: str  # the sealed draft as posted: a page that changes nothing sends it on unchanged

    @cached_property
    def draft(self) -> Draft:
        return open_sealed_draft(self.web, self.token, self.session)

    @property
    def tenant_id(self) -> str:
        assert self.session.tenant_id is not None  # wizard_user guarantees it
        return self.session.tenant_id


async def draft_step(
    request: Request,
    token: str = Form(..., alias="draft", max_length=16_000),  # room for two trusted certificates
    session: WebSession = Depends(wizard_user),
    web: WebState = Depends(get_web),
) -> DraftStep:
    return DraftStep(request, session, web, token)
