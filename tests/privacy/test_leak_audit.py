"""Leak audit (issue 3 item 5; SPEC PRIV-6): after a full session, the HELO name, the subject and
the body exist only where they must.

A client says EHLO with a distinctive name, submits a message with a distinctive subject and
body, and bob fetches it over POP3; then the server is stopped. None of the three canaries, nor
127.0.0.1, may appear in the server's output at log level info (stdout and stderr) or in any file
of the data folder outside messages/ -- in particular not in the SQLite files (postern.sqlite,
-wal, -shm), read as bytes. The HELO name (and the client's address) must not appear even in
messages/: the stored message is the sanitised one.

The data folder is read twice: right after the session while the server still runs (the WAL then
holds the latest pages) and again after it stopped (checkpointed).
The one log line allowed to hold 127.0.0.1 is the server's own `smtp|pop3 listening on ADDR:PORT`
line, which announces where it listens (the harness needs it) and says nothing about a client.
"""
from __future__ import annotations

import email.policy
import poplib
import smtplib
from email.message import EmailMessage
from pathlib import Path

from harness import HOST, LISTEN_RE
from mailutil import retr_bytes

HELO = "helo-leak-canary-7f3a.example"
SUBJECT = "subject-leak-canary-91bd"
BODY = "body-leak-canary-c04e"
LOOPBACK = "127.0.0.1"
CANARIES = [HELO, SUBJECT, BODY, LOOPBACK]


def scan_folder(data_dir: Path) -> dict[str, list[str]]:
    """{relative path: [canaries found]} over every file below data_dir, read as bytes."""
    found: dict[str, list[str]] = {}
    for p in sorted(data_dir.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(data_dir).as_posix()
        try:
            data = p.read_bytes()
        except OSError as e:  # a file that vanished between listing and reading (WAL checkpoint)
            found.setdefault(rel, []).append(f"unreadable: {e}")
            continue
        in_messages = rel.split("/", 1)[0] == "messages"
        allowed_here = {SUBJECT, BODY} if in_messages else set()
        hits = [c for c in CANARIES if c not in allowed_here and c.encode() in data]
        if hits:
            found[rel] = hits
    return found


def scan_logs(srv) -> list[str]:
    problems = []
    for p in sorted(srv.folder.glob("serve-*.log")):
        for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if LISTEN_RE.match(line):
                continue
            hits = [c for c in CANARIES if c in line]
            if hits:
                problems.append(f"{p.name}:{n}: {hits}: {line[:300]}")
    return problems


def test_leak_audit(make_server, tmp_path):
    srv = make_server({"server": {"log_level": "info"}}, name="leak-audit")
    alice = srv.add_account("alice")
    bob = srv.add_account("bob")

    msg = EmailMessage()
    msg["From"] = f"Alice <{alice.address}>"
    msg["To"] = bob.address
    msg["Subject"] = SUBJECT
    msg["Message-ID"] = f"<leak-audit@{HELO}>"
    msg.set_content(f"Hello Bob,\n{BODY}\n")
    with smtplib.SMTP(HOST, srv.smtp_port, local_hostname=HELO, timeout=30) as s:
        s.ehlo()
        s.login(alice.address, alice.password)
        assert not s.sendmail(alice.address, [bob.address], msg.as_bytes(policy=email.policy.SMTP))

    p = poplib.POP3(HOST, srv.pop3_port, timeout=30)
    try:
        p.user(bob.address)
        p.pass_(bob.password)
        count, _ = p.stat()
        assert count == 1, f"bob has {count} messages"
        got = retr_bytes(p, 1)
    finally:
        p.quit()
    assert SUBJECT.encode() in got and BODY.encode() in got, "the message did not arrive intact"
    assert HELO.encode() not in got, "the HELO name is in the delivered message"
    assert LOOPBACK.encode() not in got, "the client's address is in the delivered message"

    while_running = scan_folder(srv.data_dir)
    rc = srv.stop()
    assert rc == 0, f"postern serve exited {rc} on SIGTERM\n{srv.log_tail()}"
    after_stop = scan_folder(srv.data_dir)

    files = sorted(p.relative_to(srv.data_dir).as_posix() for p in srv.data_dir.rglob("*") if p.is_file())
    assert any(f.split("/", 1)[0] == "messages" for f in files), f"no messages/ folder in the data folder: {files}"
    stderr = "".join(p.read_text(errors="replace") for p in srv.folder.glob("serve-*.stderr.log"))
    assert " info " in stderr, "no info-level log lines were captured: the audit would prove nothing"
    log_problems = scan_logs(srv)
    assert not log_problems, "canaries in the server's log output (info):\n" + "\n".join(log_problems)
    assert not while_running, f"canaries in data files while the server ran: {while_running} (files: {files})"
    assert not after_stop, f"canaries in data files after stop: {after_stop} (files: {files})"
