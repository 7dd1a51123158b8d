"""A throw-away Dovecot IMAP server for the tests: own config, own user, own port, own mail folder."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .conftest import free_port

CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:{root}/mail/%u
mail_uid = dovecot
mail_gid = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


class Dovecot:
    """Start, stop and restart a private Dovecot; `user`/`password` can log in over IMAP."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="biq-dovecot-"))
        self.port = free_port()
        self.user, self.password = "biq", "biq-test-password"
        self.proc: subprocess.Popen | None = None
        pw = pwd.getpwnam("dovecot")
        for sub in ("run", "state", "mail", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("mail", "home"):
            os.chown(self.root / sub, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o755)
        (self.root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        (self.root / "dovecot.conf").write_text(CONFIG.format(root=self.root, port=self.port))

    @property
    def url(self) -> str:
        return f"imap://{self.user}@127.0.0.1:{self.port}/INBOX"

    def start(self) -> Dovecot:
        self.proc = subprocess.Popen([self.binary, "-F", "-c", str(self.root / "dovecot.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited: " + self.proc.stderr.read().decode()[-2000:] + self.log())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dovecot did not start: " + self.log())

    def stop(self) -> None:
        """Stop the server and every process it started (open IMAP sessions are cut, as in a restart)."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
            time.sleep(0.2)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # imap children that outlived the master
            except ProcessLookupError:
                pass
        self.proc = None

    def restart(self, pause: float = 0.0) -> None:
        self.stop()
        time.sleep(pause)
        self.start()

    def log(self) -> str:
        p = self.root / "dovecot.log"
        return p.read_text(errors="replace")[-3000:] if p.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self):  # noqa: ANN201
        from imapclient import IMAPClient
        c = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        c.login(self.user, self.password)
        return c
