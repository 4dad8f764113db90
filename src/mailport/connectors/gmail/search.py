"""Search over the Gmail API: the neutral :class:`~mailport.connectors.mail.SearchQuery`
compiled into Gmail's own search language (the ``q`` parameter of ``messages.list``).

Pure (tested on strings). Each criterion becomes the operator of the same meaning
(https://support.google.com/mail/answer/7190): ``from:``, ``to:``, ``cc:``, ``subject:``,
``after:``/``before:`` in epoch seconds (exact instants, where Gmail's dates are days in the
account's time zone), ``is:unread``/``is:read``, ``is:starred``/``-is:starred``,
``has:attachment``, ``larger:``/``smaller:`` in bytes and ``rfc822msgid:``; ``text`` and ``body``
are plain terms (Gmail has no "body only" operator: a body term also matches the headers).
Values are written as quoted phrases, so a space or an operator word in them stays text.
``native`` is Gmail ``q`` syntax passed as it is, in parentheses when other criteria are given
(so its ``OR`` binds within itself and the whole is ANDed).

What Gmail cannot search is refused, never dropped: ``answered`` (Gmail keeps no answered
state) and arbitrary ``headers`` (no header operator) are 422 ``unsupported_feature``.
"""

from __future__ import annotations

from datetime import datetime

from mailport.connectors.mail import SearchQuery
from mailport.errors import InputError, UnsupportedFeatureError

NATIVE_MAX = 2000  # characters of a native query
Q_MAX = 4000  # characters of the whole q


def phrase(field: str, value: str) -> str:
    """``value`` as one quoted Gmail term; control characters and empty values refused, double
    quotes (which cannot be escaped in ``q``) replaced by spaces."""
    if not value.strip():
        raise InputError(f"{field} must not be empty", field=field)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InputError(f"{field} must not contain line breaks or control characters", field=field)
    cleaned = " ".join(value.replace('"', " ").split())
    return f'"{cleaned}"'


def _instant(value: datetime | None, field: str) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise InputError(f"{field} needs a time zone (e.g. 2024-03-01T00:00:00Z)", field=field)
    return int(value.timestamp())


def compile_q(query: SearchQuery) -> str:
    """The Gmail ``q`` for ``query`` (every criterion ANDed); "" when it asks for nothing."""
    terms: list[str] = []
    for operator, field, value in (
        ("from:", "from", query.from_),
        ("to:", "to", query.to),
        ("cc:", "cc", query.cc),
        ("subject:", "subject", query.subject),
        ("", "text", query.text),
        ("", "body", query.body),
    ):
        if value is not None:
            terms.append(operator + phrase(field, value))
    if query.message_id is not None:
        bare = query.message_id.strip().removeprefix("<").removesuffix(">").strip()
        if not bare or any(c.isspace() or c == '"' for c in bare):
            raise InputError("message_id must be one Message-ID", field="message_id")
        terms.append(f"rfc822msgid:{bare}")
    since, before = _instant(query.since, "since"), _instant(query.before, "before")
    if since is not None and before is not None and since >= before:
        raise InputError("since must be earlier than before", field="since")
    if since is not None:
        terms.append(f"after:{since - 1}")  # after: is exclusive; the exact instant is checked
    if before is not None:
        terms.append(f"before:{before}")
    if query.seen is not None:
        terms.append("is:read" if query.seen else "is:unread")
    if query.flagged is not None:
        terms.append("is:starred" if query.flagged else "-is:starred")
    if query.has_attachment is not None:
        terms.append("has:attachment" if query.has_attachment else "-has:attachment")
    for operator, field, size in (
        ("larger:", "larger", query.larger),
        ("smaller:", "smaller", query.smaller),
    ):
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InputError(f"{field} must be a number of bytes (0 or more)", field=field)
            terms.append(f"{operator}{size}")
    if query.answered is not None:
        raise UnsupportedFeatureError(
            "Gmail keeps no answered state, so it cannot search by it",
            hint="Leave out `answered`; find replies with `native` (e.g. in:sent) or by thread.",
        )
    if query.headers:
        raise UnsupportedFeatureError(
            "Gmail cannot search arbitrary header fields",
            hint="Use from, to, cc, subject, message_id or text; Gmail's own operators (e.g. "
            "list:, deliveredto:) go in `native`.",
        )
    if query.native is not None:
        native = query.native.strip()
        if not native:
            raise InputError("native must not be empty", field="native")
        if len(native) > NATIVE_MAX:
            raise InputError(f"native is longer than {NATIVE_MAX} characters", field="native")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in native):
            raise InputError("native must not contain line breaks or control characters", field="native")
        terms.append(f"({native})" if terms else native)
    q = " ".join(terms)
    if len(q) > Q_MAX:
        raise InputError(f"the search is longer than {Q_MAX} characters", field="native")
    return q
