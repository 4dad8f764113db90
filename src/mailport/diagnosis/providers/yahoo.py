"""Yahoo Mail's advice: it accepts only app passwords from mail programs.

Yahoo refuses the account password with the generic words (``[AUTHENTICATIONFAILED]``); the
``yahoo-app-password`` case in ``tests/unit/check/test_troubleshoot.py`` quotes them with their
source (Enough-Software/enough_mail#245). The generic app-password rule gives this file's hint.
"""

from __future__ import annotations

from mailport.diagnosis.rules import Provider

YAHOO_APP_PASSWORDS = "https://help.yahoo.com/kb/SLN15241.html"

PROVIDER = Provider(
    key="yahoo",
    name="Yahoo Mail",
    hosts={"imap": "imap.mail.yahoo.com", "smtp": "smtp.mail.yahoo.com"},
    domains=("yahoo.com",),
    app_passwords_only=True,
    app_password_hint=(
        "Yahoo accepts only an app password from mail programs: Yahoo account → Account security → "
        f"Generate app password (see {YAHOO_APP_PASSWORDS}), then enter that 16-letter password here."
    ),
)
