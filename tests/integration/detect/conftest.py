"""Wiring for detection tests: a Detector that sees only the local DNS and HTTP(S) servers."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mailport.detect import DetectOptions, Detector, make_resolver
from tests.fixtures.dns import LocalDNSServer
from tests.fixtures.http import AutoconfigServer, TestCA
from tests.mailstack.dovecot import Dovecot, free_port
from tests.mailstack.smtp import SubmissionHandler, SubmissionServer

MakeDetector = Callable[..., Detector]


@pytest.fixture
def make_detector(
    dns_server: LocalDNSServer, autoconfig_server: AutoconfigServer, test_ca: TestCA
) -> MakeDetector:
    """``make_detector(probe=False, timeout=3, oauth_configured=…, clock=…, **options)``."""

    def build(
        *,
        ca_files: tuple[str, ...] = (),
        oauth_configured: Callable[[str], bool] | None = None,
        clock: Callable[[], float] | None = None,
        **overrides: object,
    ) -> Detector:
        options = DetectOptions(
            timeout=3.0,
            probe=False,
            https_port=autoconfig_server.https_port,
            http_port=autoconfig_server.http_port,
            allow_private_hosts=True,
            probe_timeout=2.0,
        )
        options = replace(options, **overrides)  # type: ignore[arg-type]
        kwargs: dict[str, object] = {}
        if clock is not None:
            kwargs["clock"] = clock
        return Detector(
            options=options,
            resolver=make_resolver([dns_server.nameserver], timeout=options.effective_step_timeout),
            ssl_context=test_ca.client_context(*ca_files),
            oauth_configured=oauth_configured,
            **kwargs,  # type: ignore[arg-type]
        )

    return build


@pytest.fixture(scope="module")
def probe_bed(
    tmp_path_factory: pytest.TempPathFactory, mail_root: Path, test_ca: TestCA
) -> Iterator[tuple[Dovecot, SubmissionServer]]:
    """A Dovecot + submission server whose certificate names imap./smtp./mail.probe.example.

    The session bed's certificate only names localhost, so a full detection by probing
    (hosts derived from the domain, certificates verified) needs servers with our names.
    """
    root = mail_root / "probe-dovecot"
    (root / "ssl").mkdir(parents=True, exist_ok=True)
    cert, key = test_ca.issue(["probe.example", "*.probe.example", "localhost"], stem="probe-bed")
    shutil.copyfile(cert, root / "ssl/cert.pem")
    shutil.copyfile(key, root / "ssl/key.pem")
    dovecot = Dovecot(root)
    dovecot.start()
    handler = SubmissionHandler(users=dovecot.users)
    smtp = SubmissionServer(handler, cert=str(cert), key=str(key), port=free_port(), tls_port=free_port())
    try:
        with smtp:
            yield dovecot, smtp
    finally:
        dovecot.stop()
