"""``mailport check EMAIL …`` as a real process against the bed: exit 0 / 1 / 2, ``--json``,
settings from detection, the password from stdin or the environment and never printed."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import Result
from typer.testing import CliRunner

from mailport.cli.main import app
from tests.fixtures.dns import LocalDNSServer
from tests.fixtures.process import clean_environment, run_mailport
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    base = clean_environment()
    base.update(
        {"MAILPORT_CHECK_TIMEOUT": "10", "MAILPORT_DETECT_TIMEOUT": "3", "MAILPORT_DETECT_PROBE": "false"}
    )
    base.update(env or {})
    return run_mailport("check", *args, env=base, stdin=stdin)


def bed_flags(dovecot: Dovecot, smtp: SubmissionServer) -> list[str]:
    return [
        "--imap-host", "127.0.0.1", "--imap-port", str(dovecot.imaps_port), "--imap-security", "ssl",
        "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp.port), "--smtp-security", "starttls",
        "--ca-file", dovecot.ca_file,
    ]  # fmt: skip


def test_every_step_passes_json_exit_0(
    dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    done = run(
        user, *bed_flags(dovecot, smtp), "--password-env", "BOX_PW", "--json", env={"BOX_PW": password}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert body["ok"] is True
    assert [s["step"] for s in body["smtp"]["steps"]] == [
        "dns",
        "tcp_connect",
        "smtp_ehlo",
        "smtp_starttls",
        "smtp_auth",
    ]
    assert password not in done.stdout + done.stderr


def test_a_failing_step_exit_1_names_the_fix(
    dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str]
) -> None:
    user, _ = password_user
    done = run(user, *bed_flags(dovecot, smtp), "--password-stdin", stdin="wrong-cli-pw-55\n")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "IMAP 127.0.0.1:" in done.stdout and "FAILED" in done.stdout
    assert "✗ authentication" in done.stdout
    assert "code: invalid_credentials" in done.stdout
    assert "server said: NO [AUTHENTICATIONFAILED]" in done.stdout
    assert "fix: " in done.stdout
    assert "wrong-cli-pw-55" not in done.stdout + done.stderr


def test_wrong_security_suggests_the_right_pair(dovecot: Dovecot, password_user: tuple[str, str]) -> None:
    user, password = password_user
    done = run(
        user,
        *("--imap-host", "127.0.0.1", "--imap-port", str(dovecot.imap_port), "--imap-security", "ssl"),
        *("--smtp-host", "127.0.0.1", "--smtp-port", "1", "--smtp-security", "ssl"),
        "--password-env",
        "BOX_PW",
        env={"BOX_PW": password},
    )
    assert done.returncode == 1
    assert "code: tls_on_plaintext_port" in done.stdout
    assert f"try: port {dovecot.imap_port}, security starttls" in done.stdout
    assert "code: connection_refused" in done.stdout


def test_usage_errors_exit_2(
    dovecot: Dovecot, smtp: SubmissionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process (the exit codes are click's, the same as the process's: see the tests above)."""
    flags = bed_flags(dovecot, smtp)
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(app, ["check", *args], input=stdin)

    def text(result: Result) -> str:  # the message, without rich's box and line wrapping
        return " ".join(result.output.replace("│", " ").split())

    no_credential = invoke("a@dyn.example.test", *flags)
    assert no_credential.exit_code == 2 and "exactly one of --password-stdin" in text(no_credential)
    both = invoke("a@dyn.example.test", *flags, "--password-stdin", "--password-env", "X", stdin="x\n")
    assert both.exit_code == 2
    missing = invoke("a@dyn.example.test", *flags, "--password-env", "NOT_SET_ANYWHERE")
    assert missing.exit_code == 2 and "NOT_SET_ANYWHERE is not set" in text(missing)
    empty_stdin = invoke("a@dyn.example.test", *flags, "--password-stdin", stdin="\n")
    assert empty_stdin.exit_code == 2
    bad_security = invoke(
        "a@dyn.example.test", "--imap-host", "h", "--imap-security", "tls", "--password-env", "X"
    )
    assert bad_security.exit_code == 2
    bad_port = invoke("a@dyn.example.test", "--imap-host", "h", "--imap-port", "0", "--password-env", "X")
    assert bad_port.exit_code == 2
    bad_ca = invoke("a@dyn.example.test", *flags[:-2], "--ca-file", "/nonexistent.pem", "--password-env", "X")
    assert bad_ca.exit_code == 2
    not_pem = invoke("a@dyn.example.test", *flags[:-2], "--ca-file", __file__, "--password-env", "PATH")
    assert not_pem.exit_code == 2 and "no usable PEM" in text(not_pem)
    bad_host = invoke(
        "a@dyn.example.test", "--imap-host", "bad host!", "--password-env", "PATH", *flags[6:12]
    )
    assert bad_host.exit_code == 2


def test_a_usage_error_in_the_real_process_is_one_line_and_exit_2() -> None:
    done = run("a@dyn.example.test", "--imap-host", "h", "--imap-security", "tls", "--password-env", "X")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "tls" in done.stderr


def test_settings_not_given_come_from_detection(
    dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str], dns_server: LocalDNSServer
) -> None:
    """DNS SRV records (RFC 6186) on a local DNS server tell detection where the bed is."""
    user, password = password_user  # …@dyn.example.test signs in; the address is on a real-looking domain
    dns_server.add("_imaps._tcp.bedmail.example.com.", "SRV", f"0 1 {dovecot.imaps_port} localhost.")
    dns_server.add("_submissions._tcp.bedmail.example.com.", "SRV", f"0 1 {smtp.tls_port} localhost.")
    dns_server.add("localhost.", "A", "127.0.0.1")
    done = run(
        "support@bedmail.example.com",
        "--username",
        user,
        "--ca-file",
        dovecot.ca_file,
        "--password-env",
        "BOX_PW",
        "--json",
        env={"BOX_PW": password, "MAILPORT_DNS_NAMESERVERS": dns_server.nameserver},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert body["imap"]["steps"][0]["detail"] == "localhost → 127.0.0.1"
    assert body["smtp"]["steps"][-1]["step"] == "smtp_auth"


def test_access_token_from_the_environment(
    dovecot: Dovecot, smtp: SubmissionServer, oauth_user: tuple[str, dict[str, object]]
) -> None:
    email, token = oauth_user
    done = run(
        email,
        *bed_flags(dovecot, smtp),
        "--access-token-env",
        "BOX_TOKEN",
        env={"BOX_TOKEN": str(token["access_token"])},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "with XOAUTH2" in done.stdout and "all steps passed" in done.stdout
    assert str(token["access_token"]) not in done.stdout + done.stderr
