"""The example of docs/library.md runs as written: a separate Python process whose environment
names this test's database and keys (as an application's would), on a mailbox of the Dovecot
bed with an unread invoice from Alice; afterwards the invoice is read and in ``Invoices``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from mailport.bootstrap import Services
from tests.fixtures.process import clean_environment
from tests.integration.mail.conftest import MailBox, letter
from tests.integration.mail.test_library import handle

DOC = Path(__file__).resolve().parents[3] / "docs" / "library.md"


def python_example(text: str) -> str:
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)
    assert len(blocks) == 1, "docs/library.md should have one Python example"
    return str(blocks[0])


async def test_the_library_example_runs_as_written(
    mail_box: MailBox, services: Services, tmp_path: Path
) -> None:
    mail_box.deliver(
        letter(
            "Invoice 42",
            sender="Alice <alice@example.com>",
            body="Your invoice is attached.",
            attachment=("invoice-42.pdf", b"%PDF-1.4 invoice"),
        )
    )
    settings = services.settings
    assert settings.secret_keys is not None
    env = clean_environment() | {
        "MAILPORT_DATABASE_URL": settings.database_url,
        "MAILPORT_SECRET_KEYS": settings.secret_keys.get_secret_value(),
        "MAILPORT_DATA_DIR": str(settings.data_dir),
        "MAILPORT_ALLOWED_HOSTS": "127.0.0.1",
        "TENANT_ID": mail_box.tenant.id,
        "MAILBOX_ID": mail_box.mailbox_id,
    }
    script = tmp_path / "example.py"
    script.write_text(python_example(DOC.read_text()))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(re.fullmatch(r"INBOX\s+inbox\s+1 unread", line) for line in lines), done.stdout
    assert "Invoice 42 from alice@example.com" in lines
    assert "attachment: invoice-42.pdf 16 bytes" in lines

    box = handle(mail_box)
    assert [m async for m in box.messages()] == []
    invoices = [m async for m in box.messages("Invoices")]
    assert [m.envelope.subject for m in invoices] == ["Invoice 42"] and "seen" in invoices[0].flags
