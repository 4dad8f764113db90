"""The connect wizard: email address → authentication method → OAuth or manual settings →
test & verify → final settings → save.

Every step is a server-rendered page; htmx adds the live parts (detection as you type, the
check's steps as they finish, the device sign-in's status). The work in progress travels as a
sealed draft (:mod:`mailport.web.drafts`); nothing is stored before "Save", except an OAuth
mailbox, which the OAuth callback creates (:mod:`mailport.oauth.connect`) and the wizard then
tests and finishes. Operators and connect-link visitors use the same pages; a link visitor is
sent back to the link's ``return_url`` with ``?mailbox_id=…`` after saving.

One module per step (:mod:`.detection`, :mod:`.manual`, :mod:`.oauth`, :mod:`.testing`,
:mod:`.saving`), the pieces they and the dashboard share in :mod:`.context`; this module is the
table of the wizard's addresses, so that they read in one place and the step modules stay plain
functions (no router imports another).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mailport.web.deps import csrf
from mailport.web.render import WebRoute
from mailport.web.wizard import detection, manual, oauth, saving, testing

router = APIRouter(route_class=WebRoute, include_in_schema=False)

_CSRF = [Depends(csrf)]

router.add_api_route("/connect", detection.email_step, methods=["GET"])
router.add_api_route("/connect/detect", detection.detect_fragment, methods=["POST"], dependencies=_CSRF)
router.add_api_route("/connect/method", detection.method_step, methods=["POST"], dependencies=_CSRF)
router.add_api_route("/connect/password", manual.password_step, methods=["POST"], dependencies=_CSRF)
router.add_api_route("/connect/manual", manual.manual_step, methods=["POST"], dependencies=_CSRF)
router.add_api_route("/connect/manual/save", manual.manual_save, methods=["POST"], dependencies=_CSRF)
router.add_api_route("/connect/validate", manual.validate_field, methods=["POST"], dependencies=_CSRF)
router.add_api_route("/connect/oauth", oauth.oauth_start, methods=["POST"], dependencies=_CSRF)
router.add_api_route("/connect/oauth/return", oauth.oauth_return, methods=["GET"])
router.add_api_route("/connect/device", oauth.device_start, methods=["POST"], dependencies=_CSRF)
router.add_api_route("/connect/device/{flow_id}", oauth.device_status, methods=["GET"])
router.add_api_route("/connect/test", testing.test_step, methods=["POST"], dependencies=_CSRF)
router.add_api_route("/connect/trust", testing.trust_certificate, methods=["POST"], dependencies=_CSRF)
router.add_api_route("/connect/test/{run_id}", testing.test_progress, methods=["GET"])
# the wizard's poll: it posts the sealed draft under test (kept in the page, never in the run's row)
router.add_api_route(
    "/connect/test/{run_id}", testing.test_progress, methods=["POST"], dependencies=_CSRF, name="test_poll"
)
router.add_api_route("/connect/settings", saving.settings_step, methods=["POST"], dependencies=_CSRF)
router.add_api_route("/connect/save", saving.save, methods=["POST"], dependencies=_CSRF)

__all__ = ["router"]
