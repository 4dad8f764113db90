#!/usr/bin/env bash
# Installs the Debian packages mailport's test bed needs, only when they are missing.
# Called by `make test`; safe to run again (it does nothing when everything is present).
set -euo pipefail

# Dovecot's IDLE takes one inotify instance per session, and every test Dovecot runs its mail
# processes as one user: the kernel's default of 128 instances is used up by the suite's parallel
# IDLE sessions, and Dovecot then looks for new mail only every mailbox_idle_check_interval.
# Raise the limit where this machine permits it (root); elsewhere the tests' Dovecot checks every
# second anyway (tests/mailstack/dovecot.py).
if [ "$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 1024)" -lt 1024 ] && [ "$(id -u)" -eq 0 ]; then
  sysctl -q -w fs.inotify.max_user_instances=1024 >/dev/null 2>&1 || true
fi

need=()
command -v dovecot >/dev/null 2>&1 || need+=(dovecot-core dovecot-imapd dovecot-lmtpd)
command -v doveadm >/dev/null 2>&1 || need+=(dovecot-core)
[ -x /usr/lib/dovecot/lmtp ] || need+=(dovecot-lmtpd)
[ -x /usr/lib/dovecot/imap ] || need+=(dovecot-imapd)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The web wizard's browser tests drive Debian's Chromium with Playwright (never `playwright install`).
[ -x /usr/bin/chromium ] || need+=(chromium)
# The docs-examples test runs the README's and docs' curl examples (which use jq) as written.
[ -x /usr/bin/curl ] || need+=(curl)
[ -x /usr/bin/jq ] || need+=(jq)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "mailport: missing Debian packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
fi
echo "mailport: installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
