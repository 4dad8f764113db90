"""Yandex Mail's advice: IMAP must be allowed, and only app passwords are accepted.

Yandex answers ``[AUTHENTICATIONFAILED] LOGIN invalid credentials or IMAP is disabled`` both
when IMAP is off and when the password is not an app password; the ``yandex-imap-disabled`` case in
``tests/unit/check/test_troubleshoot.py`` quotes it with its source (Foundry376/Mailspring#2111).
The generic rules recognise the words; this file gives Yandex's fix.
"""

from __future__ import annotations

import re

from mailport.diagnosis.rules import Provider

YANDEX_CLIENT_SETTINGS = "https://mail.yandex.com/#setup/client"
YANDEX_APP_PASSWORDS = "https://id.yandex.com/security/app-passwords"

PROVIDER = Provider(
    key="yandex",
    name="Yandex Mail",
    hosts={"imap": "imap.yandex.com", "smtp": "smtp.yandex.com"},
    domains=("yandex.com", "yandex.ru", "yandex.net"),
    words=re.compile(r"Yandex", re.I),
    app_passwords_only=True,
    app_password_hint=(
        f"Yandex accepts only an app password from mail programs: create one at {YANDEX_APP_PASSWORDS} "
        f"(type “Mail”), and allow IMAP at {YANDEX_CLIENT_SETTINGS}."
    ),
    imap_disabled_hint=(
        f"Yandex answers this when IMAP is off or the password is not an app password: enable “From the "
        f"imap.yandex.com server via IMAP” at {YANDEX_CLIENT_SETTINGS} (Settings → Email clients), then "
        f"create an app password at {YANDEX_APP_PASSWORDS} and use it here."
    ),
)
