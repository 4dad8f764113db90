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
# The POP3 connector's tests run against Dovecot's POP3 server (issue 19).
[ -x /usr/lib/dovecot/pop3 ] || need+=(dovecot-pop3d)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The web wizard's browser tests drive Debian's Chromium with Playwright (never `playwright install`).
[ -x /usr/bin/chromium ] || need+=(chromium)
# The docs-examples test runs the README's and docs' curl examples (which use jq) as written.
[ -x /usr/bin/curl ] || need+=(curl)
[ -x /usr/bin/jq ] || need+=(jq)
# A real MTA for the sending tests: Postfix as a submission server with SASL through the test
# Dovecot (tests/mailstack/postfix.py runs private instances in temporary directories).
[ -x /usr/sbin/postfix ] && [ -x /usr/lib/postfix/sbin/master ] || need+=(postfix)

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

# Postfix's package would otherwise ask how to configure the system's mail, and could start a
# system-wide MTA on port 25. Answer "No configuration" (no /etc/postfix/main.cf, so the package's
# own instance cannot start) and, while installing, forbid every package from starting a service
# (policy-rc.d answers 101) unless the machine already has such a policy.
policy=""
if [[ " ${need[*]} " == *" postfix "* ]]; then
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# mailport: no service starts while the test bed installs\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    trap '$sudo rm -f "$policy"' EXIT
  fi
fi

$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

if [[ " ${need[*]} " == *" postfix "* ]]; then
  # The system's Postfix stays off: the tests start their own instances on loopback ports.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now postfix.service >/dev/null 2>&1 || true
  fi
  if [ -f /etc/postfix/main.cf ]; then
    $sudo postfix stop >/dev/null 2>&1 || true
  fi
fi
