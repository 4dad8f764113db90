"""``mailport check EMAIL [...]``: test a mailbox's IMAP and SMTP settings from the command line.

Settings not given as options come from detection (``mailport detect``); the password comes
from stdin or an environment variable, never from an argument (it would sit in the shell
history and the process list). The operator runs this on their own network, so private hosts
are allowed (``HostGuard.for_operator``). Exit 0 when every step passes, 1 when one fails,
2 for usage errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import replace
from enum import StrEnum
from pathlib import Path

import typer

from mailport.check import CheckCredentials, CheckResult, ConnectionChecker, ServerTarget
from mailport.check.model import DEFAULT_PORTS, ProtocolResult
from mailport.config import Settings, load_settings
from mailport.crypto import Secret
from mailport.errors import InputError
from mailport.net.guard import HostGuard
from mailport.net.resolve import DnsResolver

_SECURITY_BY_PORT = {
    993: "ssl",
    143: "starttls",
    465: "ssl",
    587: "starttls",
    25: "starttls",
    2525: "starttls",
}


class SecurityOption(StrEnum):
    ssl = "ssl"
    starttls = "starttls"
    none = "none"


def _target(
    protocol: str,
    host: str | None,
    port: int | None,
    security: SecurityOption | None,
    detected: ServerTarget | None,
) -> ServerTarget | None:
    """The command line's settings over the detected ones."""
    if host is None and detected is None:
        return None
    if detected is not None and host is None:
        base = detected
    else:
        chosen = security.value if security else _SECURITY_BY_PORT.get(port or 0, "ssl")
        base = ServerTarget(host or "", port or DEFAULT_PORTS[protocol][chosen], chosen)  # type: ignore[arg-type]
    if security is not None:
        base = replace(base, security=security.value, port=port or DEFAULT_PORTS[protocol][security.value])
    if port is not None:
        base = replace(base, port=port)
    return base


async def _detect(
    email: str, settings: Settings
) -> tuple[ServerTarget | None, ServerTarget | None, str | None]:
    from mailport.detect import DetectOptions, Detector

    options = DetectOptions.from_settings(settings, allow_private_hosts=True)
    result = await Detector.from_settings(settings, options=options).detect(email)
    imap = (
        ServerTarget(result.imap.host, result.imap.port, result.imap.security, result.imap.username)
        if result.imap
        else None
    )
    smtp = (
        ServerTarget(result.smtp.host, result.smtp.port, result.smtp.security, result.smtp.username)
        if result.smtp
        else None
    )
    provider = result.provider[0] if result.provider else None
    return imap, smtp, provider


def _secret_from(
    password_stdin: bool, password_env: str | None, access_token_env: str | None
) -> tuple[str, Secret]:
    given = [bool(password_stdin), password_env is not None, access_token_env is not None]
    if sum(given) != 1:
        raise typer.BadParameter(
            "give exactly one of --password-stdin, --password-env VAR and --access-token-env VAR"
        )
    if password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise typer.BadParameter("--password-stdin: nothing was read from stdin")
        return "password", Secret(value)
    name = password_env or access_token_env
    assert name is not None
    value = os.environ.get(name, "")
    if not value:
        option = "--password-env" if password_env else "--access-token-env"
        raise typer.BadParameter(f"{option}: the environment variable {name} is not set or empty")
    return ("password" if password_env else "oauth2"), Secret(value)


def check_command(
    email: str = typer.Argument(..., help="The mailbox's email address."),
    imap_host: str | None = typer.Option(
        None, "--imap-host", metavar="H", help="IMAP server (default: detected)."
    ),
    imap_port: int | None = typer.Option(None, "--imap-port", metavar="P", min=1, max=65535),
    imap_security: SecurityOption | None = typer.Option(None, "--imap-security", case_sensitive=False),
    smtp_host: str | None = typer.Option(
        None, "--smtp-host", metavar="H", help="SMTP server (default: detected)."
    ),
    smtp_port: int | None = typer.Option(None, "--smtp-port", metavar="P", min=1, max=65535),
    smtp_security: SecurityOption | None = typer.Option(None, "--smtp-security", case_sensitive=False),
    username: str | None = typer.Option(
        None, "--username", metavar="U", help="User name (default: the address)."
    ),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    password_env: str | None = typer.Option(
        None, "--password-env", metavar="VAR", help="Password from $VAR."
    ),
    access_token_env: str | None = typer.Option(
        None, "--access-token-env", metavar="VAR", help="OAuth2 access token from $VAR."
    ),
    ca_file: Path | None = typer.Option(
        None,
        "--ca-file",
        metavar="F",
        exists=True,
        dir_okay=False,
        readable=True,
        help="Trust only this CA (PEM).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON answer."),
) -> None:
    """Test IMAP and SMTP step by step; a failing step names the fix."""
    kind, secret = _secret_from(password_stdin, password_env, access_token_env)
    settings = load_settings()
    detected_imap = detected_smtp = None
    provider = None
    if imap_host is None or smtp_host is None:
        detected_imap, detected_smtp, provider = asyncio.run(_detect(email, settings))
    imap = _target("imap", imap_host, imap_port, imap_security, detected_imap)
    smtp = _target("smtp", smtp_host, smtp_port, smtp_security, detected_smtp)
    if imap is None:
        raise typer.BadParameter(
            f"no IMAP settings were detected for {email}; give --imap-host (and --imap-port)"
        )
    user = username or email
    if username is None and imap_host is None and imap.username:
        user = imap.username
    credentials = CheckCredentials(
        user,
        password=secret if kind == "password" else None,
        access_token=secret if kind == "oauth2" else None,
        provider=provider,
    )
    resolver = DnsResolver(settings.dns_nameservers) if settings.dns_nameservers else None
    checker = ConnectionChecker(HostGuard.for_operator(resolver=resolver), timeout=settings.check_timeout)
    try:
        result = asyncio.run(
            checker.check(
                replace(imap, username=username or imap.username),
                replace(smtp, username=username or smtp.username) if smtp else None,
                credentials,
                ca_file=str(ca_file) if ca_file else None,
            )
        )
    except InputError as exc:  # a CA file that is no PEM, a host that is no host name: usage
        raise typer.BadParameter(exc.message) from exc
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        render(result, {"imap": imap, "smtp": smtp})
    raise typer.Exit(0 if result.ok else 1)


def render(result: CheckResult, targets: dict[str, ServerTarget | None]) -> None:
    for protocol in (result.imap, result.smtp):
        if protocol is None:
            typer.echo("SMTP: not checked (no settings)")
            continue
        _render_protocol(protocol, targets[protocol.protocol])
    typer.echo("all steps passed" if result.ok else "a step failed: see the hint above")


def _render_protocol(protocol: ProtocolResult, target: ServerTarget | None) -> None:
    where = f" {target.host}:{target.port} ({target.security})" if target else ""
    typer.echo(f"{protocol.protocol.upper()}{where}: {'ok' if protocol.ok else 'FAILED'}")
    width = max((len(s.step) for s in protocol.steps), default=0)
    for step in protocol.steps:
        mark = "✓" if step.ok else "✗"
        typer.echo(f"  {mark} {step.step:<{width}} {step.ms:>8.1f} ms  {step.detail}")
        if not step.ok:
            typer.echo(f"      code: {step.code}")
            if step.server_said:
                typer.echo(f"      server said: {step.server_said}")
            if step.hint:
                typer.echo(f"      fix: {step.hint}")
            for suggestion in step.suggestions or []:
                typer.echo("      try: " + ", ".join(f"{k} {v}" for k, v in suggestion.items()))
