"""Start/stop a throw-away Dovecot 2.3 (Debian bookworm packages) for tests.

Nothing under /etc is read or written: everything lives in one directory.
Works both when the test process is root (CI) and when it is an ordinary user.
"""

from __future__ import annotations

import grp
import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailport.imap import ImapClient

DEFAULT_USERS = {"alice@example.test": "alice-pass", "bob@example.test": "bob-pass"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """EC P-256 cert for localhost/127.0.0.1 (takes ~10 ms)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "7",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class PortTakenError(RuntimeError):
    """Dovecot could not listen: a port chosen free was taken before it bound it."""


@dataclass
class Dovecot:
    root: Path
    oauth2_introspection_url: str | None = None  # e.g. http://127.0.0.1:PORT/introspect
    # Alternative: validate JWTs locally. {"<azp>/<alg>/<kid>": b"-----BEGIN PUBLIC KEY..."}
    oauth2_local_keys: dict[str, bytes] | None = None
    oauth2_issuer: str | None = None
    users: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_USERS))
    imap_port: int = field(default_factory=free_port)
    imaps_port: int = field(default_factory=free_port)
    lmtp_port: int = field(default_factory=free_port)
    pop3_port: int = field(default_factory=free_port)  # POP3 (plain, STLS offered)
    pop3s_port: int = field(default_factory=free_port)  # POP3S (implicit TLS)
    submission_port: int | None = None  # Dovecot's own submission service (needs a relay)
    relay_port: int | None = None  # where Dovecot submission relays to (e.g. an aiosmtpd sink)
    # Opt-in: the auth service also listens on this loopback TCP port, so an MTA can ask Dovecot
    # to check SMTP AUTH (Postfix's ``smtpd_sasl_type = dovecot``, ``smtpd_sasl_path = inet:...``).
    auth_port: int | None = None
    binary: str = "dovecot"
    # The personal namespace (RFC 2342): "" and "/" (the default bed), or "INBOX." and "." as
    # Courier-style servers have it, where every folder lives under INBOX. (``Dovecot.dotted``).
    namespace_prefix: str = ""
    separator: str = "/"
    # Appended to the generated dovecot.conf; later settings override earlier ones (e.g. raised
    # process/client limits for benchmarks, disable_plaintext_auth = yes for LOGINDISABLED tests).
    extra_config: str = ""
    proc: subprocess.Popen | None = None

    # ---------------------------------------------------------------- config
    def _identity(self):
        """Which users Dovecot's processes run as, and which uid owns the mail."""
        if os.geteuid() == 0:
            # root master: privileged master, unprivileged children (users created by dovecot-core)
            mail = pwd.getpwnam("nobody")
            return dict(
                internal="dovecot",
                internal_group="dovecot",
                login="dovenull",
                mail_uid=mail.pw_uid,
                mail_gid=mail.pw_gid,
                chroot_login=True,
            )
        me = pwd.getpwuid(os.geteuid())
        # unprivileged: every process runs as the invoking user, no chroot, no setuid
        return dict(
            internal=me.pw_name,
            internal_group=grp.getgrgid(os.getegid()).gr_name,
            login=me.pw_name,
            mail_uid=None,
            mail_gid=None,
            chroot_login=False,
        )

    def render(self) -> str:
        r = self.root
        ident = self._identity()
        mail_ids = (
            f"mail_uid = {ident['mail_uid']}\nmail_gid = {ident['mail_gid']}\n"
            if ident["mail_uid"] is not None
            else ""
        )
        chroot = "" if ident["chroot_login"] else "  chroot =\n"
        passdbs = ""
        mechs = "plain login"
        if self.oauth2_introspection_url or self.oauth2_local_keys:
            mechs += " xoauth2 oauthbearer"
            passdbs += f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {r}/dovecot-oauth2.conf.ext
}}
"""
        passdbs += f"""passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {r}/users.passwd
}}
# Throw-away users for tests: any <name>@dyn.example.test logs in with password "pw-<name>".
# (passwd-file is re-read at most once per second, so adding users to it at run time is racy.)
passdb {{
  driver = static
  mechanisms = plain login
  username_filter = *@dyn.example.test
  args = password=pw-%n
}}
"""
        protocols = "imap pop3 lmtp" + (" submission" if self.submission_port else "")
        submission = ""
        if self.submission_port:
            submission = f"""
service submission-login {{
{chroot}  inet_listener submission {{
    address = 127.0.0.1
    port = {self.submission_port}
  }}
}}
submission_relay_host = 127.0.0.1
submission_relay_port = {self.relay_port}
submission_relay_trusted = yes
"""
        auth_listener = ""
        if self.auth_port:
            auth_listener = f"""
service auth {{
  inet_listener auth-inet {{
    address = 127.0.0.1
    port = {self.auth_port}
  }}
}}
"""
        return f"""# generated by mailstack/dovecot.py -- Dovecot 2.3, fully self-contained
instance_name = mailtest-{self.imap_port}
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/log/dovecot.log
info_log_path = {r}/log/dovecot.log
debug_log_path = {r}/log/dovecot.log
log_timestamp = "%Y-%m-%d %H:%M:%S "
protocols = {protocols}
listen = 127.0.0.1
shutdown_clients = yes
hostname = mail.example.test
postmaster_address = postmaster@example.test

default_internal_user = {ident["internal"]}
default_internal_group = {ident["internal_group"]}
default_login_user = {ident["login"]}
{mail_ids}first_valid_uid = 1

ssl = yes
ssl_cert = <{r}/ssl/cert.pem
ssl_key = <{r}/ssl/key.pem
ssl_min_protocol = TLSv1.2

auth_mechanisms = {mechs}
disable_plaintext_auth = no
auth_failure_delay = 0
auth_verbose = yes

mail_location = maildir:{r}/mail/%d/%n/Maildir
# where inotify runs out (PERF-NOTES: 128 instances per user), IDLE falls back to this check
mailbox_idle_check_interval = 1 secs
{passdbs}userdb {{
  driver = static
  args = home={r}/mail/%d/%n allow_all_users=yes
}}

namespace inbox {{
  inbox = yes
  separator = {self.separator}
  prefix = {self.namespace_prefix}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
}}

service imap-login {{
{chroot}  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{
{chroot}  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {self.pop3s_port}
    ssl = yes
  }}
}}
# UIDs and UIDVALIDITY, as Dovecot's default; stable across sessions (mailport's POP3 cursor)
pop3_uidl_format = %08Xu%08Xv
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
{submission}{auth_listener}
# No auth penalty (2..15 s extra delay per login after failures from 127.0.0.1):
# the auth process disables it when the anvil-auth-penalty socket does not exist.
service anvil {{
{chroot}  unix_listener anvil-auth-penalty {{
    path = anvil-auth-penalty-disabled
  }}
}}
{self.extra_config}
"""

    def write_files(self):
        r = self.root
        for d in ("run", "state", "log", "mail", "ssl"):
            (r / d).mkdir(parents=True, exist_ok=True)
        if not (r / "ssl/cert.pem").exists():
            make_self_signed_cert(r / "ssl")
        (r / "users.passwd").write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        if self.oauth2_local_keys:
            for name, pem in self.oauth2_local_keys.items():
                (r / "keys" / name).parent.mkdir(parents=True, exist_ok=True)
                (r / "keys" / name).write_bytes(pem)
            (r / "dovecot-oauth2.conf.ext").write_text(f"""introspection_mode = local
local_validation_key_dict = fs:posix:prefix={r}/keys/
username_attribute = email
{"issuers = " + self.oauth2_issuer if self.oauth2_issuer else ""}
""")
        elif self.oauth2_introspection_url:
            (r / "dovecot-oauth2.conf.ext").write_text(f"""introspection_mode = post
introspection_url = {self.oauth2_introspection_url}
force_introspection = yes
username_attribute = email
active_attribute = active
active_value = true
timeout_msecs = 5000
""")
        (r / "dovecot.conf").write_text(self.render())
        ident = self._identity()
        if ident["mail_uid"] is not None:
            # root mode: mail processes run as `nobody`; they must reach and write the mail dir
            os.chown(r / "mail", ident["mail_uid"], ident["mail_gid"])
            p = r
            while p != p.parent:
                if p.stat().st_mode & 0o001 == 0:
                    os.chmod(p, p.stat().st_mode | 0o001)  # o+x so `nobody` can traverse
                p = p.parent

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    # ----------------------------------------------------------- lifecycle
    def start(self, timeout: float = 15.0) -> Dovecot:
        # A free port is only free until someone binds it: another pytest worker, or a client's
        # ephemeral port, can take it between free_port() and Dovecot's listen(). Then Dovecot
        # exits at once saying so, and it starts again on other free ports.
        for attempt in range(3):
            try:
                return self._start(timeout)
            except PortTakenError:
                if attempt == 2:
                    raise
                self.imap_port, self.imaps_port, self.lmtp_port = free_port(), free_port(), free_port()
                self.pop3_port, self.pop3s_port = free_port(), free_port()
                if self.submission_port is not None:
                    self.submission_port = free_port()
                if self.auth_port is not None:
                    self.auth_port = free_port()
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> Dovecot:
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_files()
        # -F: stay in the foreground, so self.proc is the master and SIGTERM stops everything.
        # stderr only carries fatal startup errors (the rest goes to log_path); keep it in a file
        # so a chatty failure can never block on a full pipe.
        self._stderr = open(self.root / "log/stderr.log", "wb")
        self.proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=self._stderr
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code, err = self.proc.returncode, (self.root / "log/stderr.log").read_text(errors="replace")
                tail = self.log_tail()
                self.stop()
                # "duplicate listener": free_port() handed the same port to two of its listeners
                # (each port is released before the next is asked for), so it starts again too
                said = err + tail
                taken = "Address already in use" in said or "duplicate listener" in said
                kind = PortTakenError if taken else RuntimeError
                raise kind(f"dovecot exited {code}: {err}\n" + tail)
            try:
                with socket.create_connection(("127.0.0.1", self.imap_port), timeout=1) as s:
                    s.settimeout(5)
                    if s.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("dovecot did not come up\n" + self.log_tail())
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # master stops its children (shutdown_clients=yes)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_stderr", None):
            self._stderr.close()
            self._stderr = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -------------------------------------------------------------- helpers
    def log_tail(self, n: int = 40) -> str:
        try:
            return "".join((self.root / "log/dovecot.log").read_text().splitlines(True)[-n:])
        except OSError:
            return ""

    def logins(self, user: str) -> int:
        """How many times ``user`` logged in so far (``auth_verbose`` logs each login): proves
        that a client did not reconnect."""
        return self.log_tail(1_000_000).count(f"Login: user=<{user}>")

    def doveadm(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["doveadm", "-c", str(self.conf), *args], input=input, capture_output=True, check=True
        )

    def deliver(self, user: str, raw_message: bytes, mailbox: str = "INBOX"):
        """Put a message straight into a mailbox (no SMTP), as the mail user."""
        self.doveadm("save", "-u", user, "-m", mailbox, input=raw_message)

    @classmethod
    def dotted(cls, root: Path, **options: Any) -> Dovecot:
        """A server whose personal namespace is ``INBOX.`` with separator ``.`` (Courier, older
        cPanel hosts): ``CREATE Processed`` is refused there; folders are ``INBOX.Processed``."""
        return cls(root, namespace_prefix="INBOX.", separator=".", **options)

    @staticmethod
    def dyn_user(name: str) -> tuple[str, str]:
        """A throw-away password user (no config change needed): see the static passdb."""
        return f"{name}@dyn.example.test", f"pw-{name}"

    def expunge_all(self, user: str, mailbox: str = "INBOX"):
        """Empty a mailbox between tests (faster than restarting Dovecot)."""
        self.doveadm("expunge", "-u", user, "mailbox", mailbox, "all")

    @property
    def ca_file(self) -> str:
        return str(self.root / "ssl/cert.pem")

    async def client(self, user: str, password: str, **options: Any) -> ImapClient:
        """mailport's IMAP client logged in as ``user`` on the plaintext loopback port (for
        filling mailboxes and watching them in tests and benchmarks)."""
        from mailport.crypto import Secret
        from mailport.imap import ImapClient, PasswordAuth

        return await ImapClient.open(
            "127.0.0.1",
            options.pop("port", self.imap_port),
            auth=PasswordAuth(user, Secret(password)),
            security="plain",
            allow_plaintext=True,
            allow_plaintext_auth=True,
            **options,
        )
