"""The ``message.bounced`` / ``message.complaint`` events of received reports (docs/webhooks.md).

Pure: ingestion classifies a message (:func:`mailport.messages.bounces.classify`), looks the
send up (:mod:`mailport.sending.bounce_links`), and appends what :func:`report_event` builds in
the transaction that stores the report's own ``message.received``.

Which reports become events: a :class:`~mailport.messages.bounces.Bounce` (failed recipients,
and delays: ``action: delayed``, ``severity: soft``, the mail still queued at the reporting
MTA) and a :class:`~mailport.messages.bounces.Complaint`. A
:class:`~mailport.messages.bounces.DeliveryNotice` (every recipient delivered, relayed or
expanded) is good news nobody acts on: it stays a plain ``message.received``.

The idempotency keys name the report's place like ``message.received``'s (mailbox, scope,
epoch, item), so ingesting the same report again after a crash appends nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailport.events import EventType, NewEvent
from mailport.messages.bounces import Bounce, Classification, Complaint

__all__ = ["report_event", "report_key"]


def report_key(kind: str, mailbox_id: str, scope: str, epoch: str, item: str) -> str:
    """``bounce:<mailbox>:<scope>:<epoch>:<item>`` or ``complaint:…`` (the scope always named)."""
    return f"{kind}:{mailbox_id}:{scope}:{epoch}:{item}"


def report_event(
    report: Classification,
    *,
    tenant_id: str,
    mailbox_id: str,
    scope: str,
    epoch: str,
    item: str,
    ref: str,
    report_message_id: str | None,
    send_id: str | None,
    received_at: datetime,
) -> NewEvent | None:
    """The event a report stored at (scope, epoch, item) produces, or None (not a report, or a
    delivery notice). ``ref`` is the report's own message ref; ``send_id`` the linked send."""
    if isinstance(report, Bounce):
        kind, type_, data = "bounce", EventType.MESSAGE_BOUNCED, _bounced(report)
    elif isinstance(report, Complaint):
        kind, type_, data = "complaint", EventType.MESSAGE_COMPLAINT, _complaint(report)
    else:
        return None
    payload: dict[str, Any] = {
        "send_id": send_id,
        "message_id": report.original_message_id,
        "bounce_ref": ref,
        "bounce_message_id": report_message_id,
        **data,
        "received_at": received_at.isoformat(),
    }
    return NewEvent(tenant_id, mailbox_id, type_, payload, report_key(kind, mailbox_id, scope, epoch, item))


def _bounced(bounce: Bounce) -> dict[str, Any]:
    return {
        "format": bounce.format,
        "reporting_mta": bounce.reporting_mta,
        "recipients": [
            {
                "address": r.recipient,
                "action": r.action,
                "status": r.status,
                "diagnostic": r.diagnostic,
                "severity": r.severity,
            }
            for r in bounce.recipients
        ],
    }


def _complaint(complaint: Complaint) -> dict[str, Any]:
    return {
        "feedback_type": complaint.feedback_type,
        "user_agent": complaint.user_agent,
        "original_mail_from": complaint.original_mail_from,
        "recipients": list(complaint.original_rcpt_to),
        "arrival_date": complaint.arrival_date,
        "source_ip": complaint.source_ip,
        "reported_domain": complaint.reported_domain,
    }
