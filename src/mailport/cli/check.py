"""``mailport check EMAIL [...]``: test a mailbox's IMAP (or POP3) and SMTP settings from the
command line.

POP3 is checked instead of IMAP with ``--pop3-host`` (or ``--only pop3``), or when detection
offers POP3 because it found no IMAP server; ``--imap-ca-file``/``--imap-trust-cert`` then apply
to the POP3 server (the incoming one).

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
from mailport.check.model import ProtocolResult
from mailport.cli.services import pem_file_option
from mailport.config import Settings, load_settings
from mailport.crypto import Secret
from mailport.errors import InputError, MailportError
from mailport.net.guard import HostGuard
from mailport.net.resolve import DnsResolver
from mailport.net.trust import Certificate, MailTrust
from mailport.servers import DEFAULT_PORTS, Protocol, Security

_SECURITY_BY_PORT = {
    993: Security.SSL,
    143: Security.STARTTLS,
    465: Security.SSL,
    587: Security.STARTTLS,
    25: Security.STARTTLS,
    2525: Security.STARTTLS,
    995: Security.SSL,
    110: Security.STARTTLS,
}


class OnlyOption(StrEnum):
    imap = "imap"
    pop3 = "pop3"
    smtp = "smtp"


class SecurityOption(StrEnum):
    """The command line's choices: the values of :class:`mailport.servers.Security`."""

    ssl = Security.SSL.value
    starttls = Security.STARTTLS.value
    none = Security.NONE.value


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
        chosen = Security(security) if security else _SECURITY_BY_PORT.get(port or 0, Security.SSL)
        base = ServerTarget(host or "", port or DEFAULT_PORTS[_protocol(protocol)][chosen], chosen)
    if security is not None:
        chosen = Security(security)
        base = replace(base, security=chosen, port=port or DEFAULT_PORTS[_protocol(protocol)][chosen])
    if port is not None:
        base = replace(base, port=port)
    return base


def _protocol(name: str) -> Protocol:
    return "smtp" if name == "smtp" else "pop3" if name == "pop3" else "imap"


async def _detect(email: str, settings: Settings) -> tuple[dict[str, ServerTarget | None], str | None]:
    """What detection found: ``imap``, ``pop3`` (only when no IMAP was found) and ``smtp``."""
    from mailport.detect import DetectOptions, Detector

    options = DetectOptions.from_settings(settings, allow_private_hosts=True)
    result = await Detector.from_settings(settings, options=options).detect(email)
    provider = result.provider[0] if result.provider else None
    return {"imap": result.imap, "pop3": result.pop3, "smtp": result.smtp}, provider


def _incoming(
    only: OnlyOption | None,
    imap_host: str | None,
    pop3_host: str | None,
    detected: dict[str, ServerTarget | None],
) -> str:
    """Which incoming protocol to check: POP3 when asked for, or when detection offers it."""
    if only is OnlyOption.pop3 or pop3_host is not None:
        return "pop3"
    if only is None and imap_host is None and detected.get("imap") is None and detected.get("pop3"):
        return "pop3"
    return "imap"


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
    pop3_host: str | None = typer.Option(
        None, "--pop3-host", metavar="H", help="Check this POP3 server instead of IMAP."
    ),
    pop3_port: int | None = typer.Option(None, "--pop3-port", metavar="P", min=1, max=65535),
    pop3_security: SecurityOption | None = typer.Option(None, "--pop3-security", case_sensitive=False),
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
    only: OnlyOption | None = typer.Option(
        None, "--only", case_sensitive=False, help="Check only IMAP, only POP3 or only SMTP."
    ),
    ca_file: Path | None = pem_file_option(
        "--ca-file",
        "Also trust this CA (PEM) for both servers (added to the system's and MAILPORT_MAIL_CA_FILE).",
    ),
    imap_ca_file: Path | None = pem_file_option(
        "--imap-ca-file", "Also trust this CA (PEM) for the IMAP server."
    ),
    smtp_ca_file: Path | None = pem_file_option(
        "--smtp-ca-file", "Also trust this CA (PEM) for the SMTP server."
    ),
    imap_trust_cert: Path | None = pem_file_option(
        "--imap-trust-cert",
        "Trust exactly this server certificate (PEM) for IMAP (a pin, as a mailbox stores it).",
    ),
    smtp_trust_cert: Path | None = pem_file_option(
        "--smtp-trust-cert", "Trust exactly this server certificate (PEM) for SMTP."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON answer."),
) -> None:
    """Test IMAP (or POP3) and SMTP (or one of them, --only) step by step; a failing step names
    the fix."""
    kind, secret = _secret_from(password_stdin, password_env, access_token_env)
    settings = load_settings()
    want_incoming, want_smtp = only is not OnlyOption.smtp, only in (None, OnlyOption.smtp)
    detected: dict[str, ServerTarget | None] = {}
    provider = None
    given_incoming = pop3_host if only is OnlyOption.pop3 or pop3_host else imap_host
    if (want_incoming and given_incoming is None) or (want_smtp and smtp_host is None):
        detected, provider = asyncio.run(_detect(email, settings))
    incoming = _incoming(only, imap_host, pop3_host, detected)
    if incoming == "pop3":
        imap_host, imap_port, imap_security = pop3_host, pop3_port, pop3_security
    server = _target(incoming, imap_host, imap_port, imap_security, detected.get(incoming))
    imap = server if want_incoming else None
    smtp = _target("smtp", smtp_host, smtp_port, smtp_security, detected.get("smtp")) if want_smtp else None
    if want_incoming and imap is None:
        option = "--pop3-host (and --pop3-port)" if incoming == "pop3" else "--imap-host (and --imap-port)"
        raise typer.BadParameter(
            f"no {incoming.upper()} settings were detected for {email}; give {option}, or --only smtp"
        )
    if only is OnlyOption.smtp and smtp is None:
        raise typer.BadParameter(f"no SMTP settings were detected for {email}; give --smtp-host")
    user = username or email
    first = imap or smtp
    if username is None and first is not None and first.username and imap_host is None:
        user = first.username
    credentials = CheckCredentials(
        user,
        password=secret if kind == "password" else None,
        access_token=secret if kind == "oauth2" else None,
        provider=provider,
    )
    resolver = DnsResolver(settings.dns_nameservers) if settings.dns_nameservers else None
    try:
        base = MailTrust.from_settings(settings).adding(ca_file=ca_file)
        imap_trust, smtp_trust = base.adding(ca_file=imap_ca_file), base.adding(ca_file=smtp_ca_file)
        if imap is not None:
            imap = replace(
                imap, username=username or imap.username, trusted_certificate=_pin(imap_trust_cert)
            )
        if smtp is not None:
            smtp = replace(
                smtp, username=username or smtp.username, trusted_certificate=_pin(smtp_trust_cert)
            )
    except MailportError as exc:  # a CA file that is no PEM: usage
        raise typer.BadParameter(exc.message) from exc
    checker = ConnectionChecker(
        HostGuard.for_operator(resolver=resolver), trust=base, timeout=settings.check_timeout
    )
    try:
        pop3, imap = (imap, None) if incoming == "pop3" else (None, imap)
        result = asyncio.run(
            checker.check(imap, smtp, credentials, trust=imap_trust, smtp_trust=smtp_trust, pop3=pop3)
        )
    except InputError as exc:  # a host that is no host name: usage
        raise typer.BadParameter(exc.message) from exc
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        render(result, {"imap": imap, "pop3": pop3, "smtp": smtp})
    raise typer.Exit(0 if result.ok else 1)


def _pin(path: Path | None) -> Certificate | None:
    return Certificate.from_pem(path.read_text(errors="replace"), field=str(path)) if path else None


def render(result: CheckResult, targets: dict[str, ServerTarget | None]) -> None:
    incoming = ("POP3", result.pop3) if result.pop3 is not None else ("IMAP", result.imap)
    for name, protocol in (incoming, ("SMTP", result.smtp)):
        if protocol is None:
            typer.echo(f"{name}: not checked")
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
            if step.certificate is not None:
                cert = step.certificate
                typer.echo(
                    f"      certificate: SHA-256 {cert.sha256}; subject {cert.subject}; issued by "
                    f"{cert.issuer}; valid until {cert.not_after.isoformat()}"
                )
                typer.echo(
                    f"      to trust exactly this certificate, save its PEM (--json: certificate.pem) "
                    f"and pass --{protocol.protocol}-trust-cert FILE"
                )
