"""The Python examples of docs/client.md run, as written, against a live ``mailport serve``.

(``tests/e2e/test_docs_examples.py`` runs the shell examples of every document; Python blocks
are this test's.) Each block runs in a fresh interpreter with the variables the document names:
``MAILPORT_URL``, ``MAILPORT_KEY``, ``MAILBOX_ID`` (a mailbox on the test bed's Dovecot with one
invoice in its inbox) and ``MAILPORT_WEBHOOK_SECRET``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailport.client import Client
from tests.integration.client.conftest import LiveServe, imap_mailbox
from tests.mailstack.dovecot import Dovecot

pytestmark = pytest.mark.xdist_group("client-serve")

DOC = Path(__file__).resolve().parents[3] / "docs" / "client.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)


def test_the_document_has_python_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_example(index: int, live: LiveServe, dovecot: Dovecot, password_user, tmp_path: Path):
    email, password = password_user
    invoice = EmailMessage()
    invoice["From"], invoice["To"], invoice["Subject"] = "billing@example.com", email, "Invoice 2024-001"
    invoice.set_content("Your invoice is attached.")
    invoice.add_attachment(b"%PDF-1.4\n", maintype="application", subtype="pdf", filename="invoice.pdf")
    dovecot.deliver(email, invoice.as_bytes())
    _, key = live.tenant()
    with Client(live.url, key) as mp:
        mailbox_id = mp.mailboxes.create(imap_mailbox(dovecot, email, password)).id
    env = {
        **os.environ,
        "MAILPORT_URL": live.url,
        "MAILPORT_KEY": key,
        "MAILBOX_ID": mailbox_id,
        "MAILPORT_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }
    argv = [sys.executable, "-c", BLOCKS[index]]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    where = f"docs/client.md python example {index + 1}"
    assert done.returncode == 0, f"{where}:\n{BLOCKS[index]}\n{done.stderr}"
    if "mbx_unknown" in BLOCKS[index]:
        assert "404 not_found" in done.stdout and "invalid_input email" in done.stdout, done.stdout
    if "stream_get_raw" in BLOCKS[index]:
        assert "Invoice 2024-001 ['invoice.pdf']" in done.stdout
        saved = list(tmp_path.glob("*.eml"))
        assert len(saved) == 1 and b"Subject: Invoice 2024-001" in saved[0].read_bytes()
