"""iCloud Mail's advice: it accepts only app-specific passwords from mail programs.

iCloud refuses the account password with the generic words; the ``icloud-app-password`` case in
``tests/unit/check/test_troubleshoot.py`` quotes them with their source (lefcha/imapfilter#125).
Its servers name themselves in their greeting (``iSCREAM``). The generic app-password rule gives
this file's hint.
"""

from __future__ import annotations

import re

from mailport.diagnosis.rules import Provider

APPLE_APP_PASSWORDS = "https://support.apple.com/en-us/102654"

PROVIDER = Provider(
    key="icloud",
    name="iCloud Mail",
    hosts={"imap": "imap.mail.me.com", "smtp": "smtp.mail.me.com"},
    domains=("mail.me.com", "icloud.com"),
    words=re.compile(r"iSCREAM|\bicloud\b", re.I),
    app_passwords_only=True,
    app_password_hint=(
        "iCloud Mail accepts only an app-specific password: at https://account.apple.com → Sign-In "
        f"and Security → App-Specific Passwords, create one (see {APPLE_APP_PASSWORDS}); use the full "
        "iCloud address (name@icloud.com) as the user name."
    ),
)
