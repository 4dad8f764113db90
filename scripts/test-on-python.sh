#!/usr/bin/env bash
# Run the IMAP client's tests (unit + integration, TLS layer included) on another interpreter.
#
#   scripts/test-on-python.sh /root/.pyenv/versions/3.13.0/bin/python3.13 [pytest args...]
#
# Makes (once) a venv .venv-py<major.minor>/ with that interpreter, installs mailport with its
# dev extras there, and runs tests/unit/imap and tests/integration/imap (the Dovecot bed needs
# `make sysdeps` first). Extra arguments go to pytest, e.g. `-k tls` or another test path.
# The idle-memory bench runs the same way: .venv-py3.13/bin/python bench/imap_idle_memory.py
set -euo pipefail
PYTHON=${1:?usage: scripts/test-on-python.sh PYTHON [pytest args...]}
shift
cd "$(dirname "$0")/.."
VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV=".venv-py$VERSION"
if [ ! -x "$VENV/bin/python" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q -e '.[dev]' >"$VENV/install.log" 2>&1 || { cat "$VENV/install.log"; exit 1; }
    touch "$VENV/.installed"
fi
echo "# $("$VENV/bin/python" -c 'import sys, ssl; print(sys.version.split()[0], ssl.OPENSSL_VERSION)')"
if [ $# -eq 0 ]; then
    set -- tests/unit/imap tests/integration/imap
fi
exec "$VENV/bin/python" -m pytest -n 2 -q -p no:cacheprovider "$@"
