"""``verify_webhook``: check a webhook delivery mailport signed, and read its event.

mailport signs with Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``: HMAC-SHA256 of ``"{id}.{timestamp}.{body}"`` with the endpoint's
``whsec_`` secret; ``mailport.delivery.signing``). The check is the ``standardwebhooks``
package's own, which also refuses a timestamp more than five minutes away (a replayed request).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from mailport.client.secrets import Secret, as_secret
from mailport.errors import WebhookSignatureError


def verify_webhook(secret: str | Secret, headers: Mapping[str, str], body: bytes | str) -> dict[str, Any]:
    """The event of a delivery (``{"id", "type", "created_at", "data", …}``) once its signature
    verifies with ``secret``; :class:`WebhookSignatureError` otherwise.

    ``headers`` may be any mapping (a framework's request headers); names are matched without
    regard to case. ``body`` is the raw request body, exactly as received.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        event = Webhook(as_secret(secret).reveal()).verify(body, lowered)
    except WebhookVerificationError as exc:
        raise WebhookSignatureError(f"webhook signature not verified: {exc}") from exc
    if not isinstance(event, dict):
        raise WebhookSignatureError("the webhook body is not a JSON object")
    return event
