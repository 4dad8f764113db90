"""AOL Mail's advice: it accepts only app passwords from mail programs.

AOL refuses the account password with the generic words; the ``aol-app-password`` case in
``tests/unit/check/test_troubleshoot.py`` quotes them with their source
(Foundry376/Mailspring#1351). The generic app-password rule gives this file's hint.
"""

from __future__ import annotations

from mailport.diagnosis.rules import Provider

AOL_APP_PASSWORDS = "https://help.aol.com/articles/Create-and-manage-app-password"

PROVIDER = Provider(
    key="aol",
    name="AOL Mail",
    hosts={"imap": "imap.aol.com", "smtp": "smtp.aol.com"},
    domains=("aol.com",),
    app_passwords_only=True,
    app_password_hint=(
        "AOL accepts only an app password from mail programs: AOL account → Account security → "
        f"Generate app password (see {AOL_APP_PASSWORDS}), then enter that password here."
    ),
)
