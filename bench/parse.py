"""Parsing throughput: mailport's message parser against the stdlib's ``policy.default``.

Generates a corpus of realistic ~5 KB messages (DKIM, Received x3, RFC 2047 words,
quoted-printable bodies, like the corpus of ``/work/shared/PERF-NOTES.md``) plus a share of
multipart messages with attachments, parses every message on one core with
:func:`mailport.messages.parse_message` and with ``email.message_from_bytes(raw,
policy=policy.default)`` + ``get_body()``/``get_content()``/``iter_attachments()`` and the
decoded headers (the reference), and prints one JSON line.

    .venv/bin/python bench/parse.py [--messages 10000] [--multipart-share 0.2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import json
import quopri
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from mailport.messages import parse_message

FIRST = ["Anna", "Jörg", "François", "Zoë", "José", "Ingrid", "Łukasz", "Søren", "Chloé", "Renée", "Paul"]
LAST = ["Müller", "Dupont", "García", "Ångström", "Novák", "Smith", "Øster", "Brontë", "Kowalski"]
WORDS = (
    "the invoice for march is attached please review before friday über schöne grüße réunion "
    "prochaine semaine café naïve façade déjà vu meeting project budget approval quarterly "
    "report customer feedback señor mañana año straße größe fußball"
).split()
DOMAINS = ["example.com", "example.org", "mail.example.net", "exämple.de", "corp.example"]


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _ew(text: str, rng: random.Random) -> str:
    """An RFC 2047 encoded-word (Q or B, utf-8 or iso-8859-1) when the text is not ASCII."""
    if text.isascii():
        return text
    charset = "iso-8859-1" if rng.random() < 0.3 and _latin1(text) else "utf-8"
    data = text.encode(charset)
    if rng.random() < 0.5:
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    q = quopri.encodestring(data, header=True).decode().replace("=\n", "")
    return f"=?{charset}?Q?{q}?="


def _latin1(text: str) -> bool:
    try:
        text.encode("iso-8859-1")
    except UnicodeEncodeError:
        return False
    return True


def _addr(rng: random.Random) -> str:
    name = _name(rng)
    local = name.split()[0].lower().encode("ascii", "ignore").decode() or "user"
    return f"{_ew(name, rng)} <{local}.{rng.randrange(1000)}@{rng.choice(DOMAINS[:3])}>"


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _headers(rng: random.Random, i: int, when: datetime) -> list[str]:
    dkim_b = base64.b64encode(rng.randbytes(256)).decode()
    bh = base64.b64encode(rng.randbytes(32)).decode()
    folded_b = "\r\n\t ".join(dkim_b[k : k + 70] for k in range(0, len(dkim_b), 70))
    received = [
        f"Received: from mx{k}.example.net (mx{k}.example.net [192.0.2.{k + 10}])\r\n"
        f"\tby mail.example.com (Postfix) with ESMTPS id {rng.randrange(16**10):010X}\r\n"
        f"\tfor <inbox@example.com>; {format_datetime(when - timedelta(seconds=k))}"
        for k in range(3)
    ]
    subject = _sentence(rng, rng.randrange(3, 9))
    refs = " ".join(f"<ref{i}.{k}@example.org>" for k in range(rng.randrange(0, 4)))
    hs = [
        "Return-Path: <bounce@example.org>",
        "Delivered-To: inbox@example.com",
        *received,
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel1;\r\n"
        f"\th=from:to:subject:date:message-id; bh={bh};\r\n\tb={folded_b}",
        "Authentication-Results: mail.example.com; dkim=pass header.d=example.org;\r\n"
        "\tspf=pass smtp.mailfrom=example.org; dmarc=pass",
        f"From: {_addr(rng)}",
        f"To: {_addr(rng)}, {_addr(rng)}",
        f"Cc: {_addr(rng)}",
        f"Subject: {_ew(subject, rng)}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <msg{i}.{rng.randrange(10**9)}@example.org>",
    ]
    if refs:
        hs += [f"In-Reply-To: {refs.split()[-1]}", f"References: {refs}"]
    hs += ["MIME-Version: 1.0", "X-Mailer: bench/1.0", "List-Unsubscribe: <mailto:unsub@example.org>"]
    return hs


def _qp_body(rng: random.Random, target: int) -> bytes:
    paras = []
    size = 0
    while size < target:
        p = " ".join(_sentence(rng, rng.randrange(6, 16)) for _ in range(rng.randrange(2, 5)))
        paras.append(p)
        size += len(p)
    return quopri.encodestring("\n\n".join(paras).encode("utf-8")).replace(b"\n", b"\r\n")


def text_message(rng: random.Random, i: int) -> bytes:
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**7))
    hs = _headers(rng, i, when)
    hs += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"]
    head = "\r\n".join(hs).encode() + b"\r\n\r\n"
    return head + _qp_body(rng, max(500, int((5000 - len(head)) * 0.8)))


def multipart_message(rng: random.Random, i: int) -> bytes:
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**7))
    hs = _headers(rng, i, when)
    outer, alt = f"=_outer_{i}", f"=_alt_{i}"
    hs += ['Content-Type: multipart/mixed;\r\n\tboundary="' + outer + '"']
    text = _qp_body(rng, 1500)
    html = quopri.encodestring(
        ("<html><body><p>" + _sentence(rng, 40) + '</p><img src="cid:logo@x"></body></html>').encode()
    ).replace(b"\n", b"\r\n")
    logo = base64.encodebytes(rng.randbytes(rng.randrange(1000, 4000))).replace(b"\n", b"\r\n")
    doc = base64.encodebytes(rng.randbytes(rng.randrange(5000, 40000))).replace(b"\n", b"\r\n")
    fname = f"Rechnung_{rng.choice(LAST)}_{i}.pdf"
    parts = [
        f'--{outer}\r\nContent-Type: multipart/related; boundary="{alt}r"\r\n\r\n'.encode(),
        f'--{alt}r\r\nContent-Type: multipart/alternative; boundary="{alt}"\r\n\r\n'.encode(),
        f"--{alt}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode()
        + text
        + b"\r\n",
        f"--{alt}\r\nContent-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode()
        + html
        + b"\r\n",
        f"--{alt}--\r\n".encode(),
        f'--{alt}r\r\nContent-Type: image/png; name="logo.png"\r\nContent-ID: <logo@x>\r\n'
        'Content-Disposition: inline; filename="logo.png"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n".encode()
        + logo,
        f"--{alt}r--\r\n".encode(),
        f"--{outer}\r\nContent-Type: application/pdf\r\n"
        f"Content-Disposition: attachment;\r\n\tfilename*=utf-8''{_pct(fname)}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n".encode()
        + doc,
        f"--{outer}--\r\n".encode(),
    ]
    return (
        "\r\n".join(hs).encode()
        + b"\r\n\r\nThis is a multi-part message in MIME format.\r\n"
        + b"".join(parts)
    )


def _pct(text: str) -> str:
    from urllib.parse import quote

    return quote(text.encode("utf-8"), safe="")


def corpus(n: int, multipart_share: float, seed: int = 8) -> list[bytes]:
    rng = random.Random(seed)
    return [
        multipart_message(rng, i) if rng.random() < multipart_share else text_message(rng, i)
        for i in range(n)
    ]


def stdlib_default(raw: bytes) -> object:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out: list[object] = [str(msg[h]) for h in ("Subject", "From", "To", "Cc", "Date", "Message-ID")]
    body = msg.get_body(("plain",))  # type: ignore[attr-defined]
    if body is not None:
        out.append(body.get_content())
    html = msg.get_body(("html",))  # type: ignore[attr-defined]
    if html is not None:
        out.append(html.get_content())
    for att in msg.iter_attachments():  # type: ignore[attr-defined]
        out.append((att.get_filename(), len(att.get_content())))
    return out


def mailport(raw: bytes) -> object:
    return parse_message(raw, mailbox_id="mb", folder="INBOX").to_dict()


def rate(fn: Callable[[bytes], object], msgs: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for raw in msgs:
            fn(raw)
        best = min(best, time.process_time() - t0)
    return len(msgs) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--multipart-share", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    text = corpus(args.messages, 0.0)
    mixed = corpus(args.messages, args.multipart_share, seed=9)
    ref_n = max(1, args.messages // 5)  # the reference is slow: time a fifth of the corpus
    result = {
        "messages": args.messages,
        "avg_text_message_bytes": sum(map(len, text)) // len(text),
        "multipart_share": args.multipart_share,
        "avg_mixed_message_bytes": sum(map(len, mixed)) // len(mixed),
        "mailport_msgs_per_s": round(rate(mailport, text, args.repeat)),
        "stdlib_default_msgs_per_s": round(rate(stdlib_default, text[:ref_n], args.repeat)),
        "stdlib_default_messages_timed": ref_n,
        "mailport_mixed_msgs_per_s": round(rate(mailport, mixed, args.repeat)),
        "stdlib_default_mixed_msgs_per_s": round(rate(stdlib_default, mixed[:ref_n], args.repeat)),
        "stdlib_compat32_parse_only_msgs_per_s": round(rate(email.message_from_bytes, text, args.repeat)),
        "cpu_time": "time.process_time, best of --repeat; one core",
    }
    result["speedup"] = round(result["mailport_msgs_per_s"] / result["stdlib_default_msgs_per_s"], 1)
    result["speedup_mixed"] = round(
        result["mailport_mixed_msgs_per_s"] / result["stdlib_default_mixed_msgs_per_s"], 1
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
