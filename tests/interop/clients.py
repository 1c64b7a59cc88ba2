"""Runners for the real mail clients the suite drives: swaks, curl, fetchmail, mutt.

Each runner writes whatever files its client needs into a folder the test owns, runs the client
with a timeout and returns a subprocess.CompletedProcess (plus delivered messages for fetchmail).
Settings follow what is known to work on this machine kind (no TLS anywhere: Postern's submission
and POP3 run in clear on loopback; I2P encrypts end to end).
"""
from __future__ import annotations

import getpass
import os
import stat
import subprocess
from pathlib import Path

from harness import HOST, Account, PosternServer

CLIENT_TIMEOUT = 60


def _run(cmd: list[str], *, input: bytes | None = None, env: dict | None = None, cwd: Path | None = None,
         timeout: float = CLIENT_TIMEOUT) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(cmd, input=input if input is not None else b"", capture_output=True,
                          env=e, cwd=cwd, timeout=timeout)


def out(cp: subprocess.CompletedProcess) -> str:
    """stdout + stderr as text, for assertions and failure messages."""
    return (cp.stdout or b"").decode("utf-8", "replace") + (cp.stderr or b"").decode("utf-8", "replace")


# -- swaks ----------------------------------------------------------------------------------------

def swaks(server: PosternServer, folder: Path, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    """swaks against Postern's submission port. `data` (a CRLF message) is sent with --data @file."""
    cmd = ["swaks", "--server", f"{HOST}:{server.smtp_port}", "--ehlo", "client.example",
           "--timeout", "30", *args]
    if data is not None:
        f = folder / f"swaks-{len(list(folder.glob('swaks-*.eml')))}.eml"
        # End the file with the closing dot ourselves: otherwise swaks appends CRLF "." CRLF and the
        # stored message gains an empty last line.
        f.write_bytes(data + b".\r\n")
        cmd += ["--data", f"@{f}"]
    return _run(cmd)


def swaks_auth(server, folder, acct: Account, mech: str = "PLAIN", *, to: str, frm: str | None = None,
               password: str | None = None, data: bytes | None = None) -> subprocess.CompletedProcess:
    return swaks(server, folder, "--from", frm or acct.address, "--to", to, "--auth", mech,
                 "--auth-user", acct.address, "--auth-password", password or acct.password, data=data)


# -- curl -----------------------------------------------------------------------------------------

def curl_smtp_send(server: PosternServer, folder: Path, acct: Account, rcpts: list[str], data: bytes,
                   mech: str = "PLAIN") -> subprocess.CompletedProcess:
    f = folder / "curl-upload.eml"
    f.write_bytes(data)
    cmd = ["curl", "-sS", "-v", "--max-time", "30",
           # a path in the URL, or curl sends the file name as the EHLO name
           f"smtp://{HOST}:{server.smtp_port}/client.example",
           "--mail-from", acct.address, "--upload-file", str(f),
           "--user", f"{acct.address}:{acct.password}", "--login-options", f"AUTH={mech}"]
    for r in rcpts:
        cmd += ["--mail-rcpt", r]
    return _run(cmd)


def curl_pop3(server: PosternServer, acct: Account, path: str = "/", *extra: str) -> subprocess.CompletedProcess:
    cmd = ["curl", "-sS", "--max-time", "30", f"pop3://{HOST}:{server.pop3_port}{path}",
           "-u", f"{acct.address}:{acct.password}", *extra]
    return _run(cmd)


# -- fetchmail ------------------------------------------------------------------------------------

MDA_SCRIPT = """#!/bin/sh
# fetchmail MDA for the interop tests: one file per delivered message, bytes as handed over.
set -e
dir="$1"
n=$(date +%s%N)-$$
cat > "$dir/tmp.$n"
mv "$dir/tmp.$n" "$dir/$n.eml"
"""


def fetchmail(server: PosternServer, folder: Path, acct: Account, *, keep: bool) -> tuple[subprocess.CompletedProcess, list[bytes]]:
    """Retrieve everything from acct's mailbox with fetchmail; each message goes through an MDA
    into its own file. Returns (process, delivered messages in delivery order)."""
    folder.mkdir(parents=True, exist_ok=True)
    inbox = folder / "delivered"
    inbox.mkdir(exist_ok=True)
    for old in inbox.glob("*.eml"):
        old.unlink()
    mda = folder / "mda.sh"
    mda.write_text(MDA_SCRIPT)
    mda.chmod(0o755)
    rc = folder / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        "set invisible\n"               # no Received: line of its own: what we compare is Postern's
        f"poll {HOST} service {server.pop3_port} protocol pop3 auth password timeout 20:\n"
        f'  user "{acct.address}" password "{acct.password}" is "{getpass.getuser()}" here\n'
        f"  {'keep' if keep else 'no keep'} fetchall no stripcr sslproto \"\"\n"
        f'  mda "{mda} {inbox}"\n')
    rc.chmod(stat.S_IRUSR | stat.S_IWUSR)   # fetchmail refuses an rc file readable by others
    cp = _run(["fetchmail", "-f", str(rc), "--idfile", str(folder / "fetchids"), "--nodetach",
               "--pidfile", str(folder / "fetchmail.pid"), "-v"],
              env={"HOME": str(folder), "FETCHMAILHOME": str(folder)})
    delivered = [p.read_bytes() for p in sorted(inbox.glob("*.eml"), key=lambda p: p.name)]
    return cp, delivered


# -- mutt -----------------------------------------------------------------------------------------

def mutt_send(server: PosternServer, folder: Path, acct: Account, to: str, subject: str, body: bytes,
              mech: str = "plain:login") -> subprocess.CompletedProcess:
    """Send body (text) from acct to `to` with mutt in batch mode through Postern's SMTP + AUTH."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "mutt-tmp"
    tmp.mkdir(exist_ok=True)
    user = acct.address.replace("@", "%40")
    rc = folder / "muttrc"
    rc.write_text(
        f'set from = "{acct.address}"\n'
        'set realname = "Interop Tester"\n'
        f'set smtp_url = "smtp://{user}@{HOST}:{server.smtp_port}/"\n'
        f'set smtp_pass = "{acct.password}"\n'
        f'set smtp_authenticators = "{mech}"\n'
        "set ssl_starttls = no\n"
        "set ssl_force_tls = no\n"
        'set record = ""\n'
        "set use_from = yes\n"
        "set use_envelope_from = yes\n"
        'set charset = "utf-8"\n'
        'set send_charset = "utf-8"\n'
        'set hostname = "client.example"\n'
        f'set tmpdir = "{tmp}"\n')
    rc.chmod(0o600)
    return _run(["mutt", "-n", "-F", str(rc), "-s", subject, "--", to], input=body,
                env={"HOME": str(folder), "MAILRC": "/dev/null", "EMAIL": acct.address})
