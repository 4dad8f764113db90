"""``mailport detect EMAIL [--json] [--no-probe]``: the detection a wizard's step 1 does."""

from __future__ import annotations

import asyncio
import json

import typer
from rich.console import Console

from mailport.cli.tables import console as table_console
from mailport.cli.tables import make_table
from mailport.config import load_settings
from mailport.detect import DetectionResult, DetectOptions, Detector


def detect_command(
    email: str = typer.Argument(..., help="The email address to find settings for."),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON structure."),
    probe: bool = typer.Option(
        True,
        "--probe/--no-probe",
        help="Probe imap./smtp./mail. hosts (pop3./pop. without IMAP) when nothing else answers.",
    ),
) -> None:
    """Find the IMAP/SMTP settings, provider and sign-in methods for an email address."""
    settings = load_settings()
    # The operator's own machine and network: private addresses may be contacted here.
    options = DetectOptions.from_settings(settings, probe=probe, allow_private_hosts=True)
    result = asyncio.run(Detector.from_settings(settings, options=options).detect(email))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        render(result, table_console())


def render(result: DetectionResult, console: Console) -> None:
    provider = result.provider[1] if result.provider else "unknown provider"
    console.print(
        f"{result.email} — {provider} (source: {result.source}, confidence: {result.confidence})",
        highlight=False,
        markup=False,
    )
    rows = [
        (label, "—", "", "", "")
        if server is None
        else (label, server.host, str(server.port), server.security.value, server.username or "")
        for label, server in (("IMAP", result.imap), ("POP3", result.pop3), ("SMTP", result.smtp))
        if label != "POP3" or server is not None  # a POP3 row only when POP3 is offered
    ]
    console.print(make_table(("", "host", "port", "security", "username"), rows), crop=False)
    if result.auth_methods:
        console.print("sign-in: " + ", ".join(result.auth_methods), highlight=False)
    if result.oauth is not None:
        state = "available" if result.oauth.usable else "supported, but no OAuth app is configured here"
        console.print(f"OAuth ({result.oauth.provider}): {state}", highlight=False)
    for hint in result.hints:
        line = f"• [{hint.code}] {hint.text}" + (f" ({hint.url})" if hint.url else "")
        console.print(line, highlight=False, markup=False)
    for alt in result.alternatives:
        parts = [
            f"{k} {s.host}:{s.port} {s.security}"
            for k, s in (("IMAP", alt.imap), ("POP3", alt.pop3), ("SMTP", alt.smtp))
            if s
        ]
        line = f"alternative ({alt.source}, {alt.confidence}): " + "; ".join(parts)
        console.print(line, highlight=False, markup=False)
