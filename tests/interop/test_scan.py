"""Virus scanning (issue 9, SCAN-1) with a real clamd (tests/peers/clamd-start.sh: a database of only
the EICAR signatures) on a free port, on both doors mail comes in by:

  - SMTP submission of `postern serve` (an account sends to another);
  - the gateway's inbound side: an Internet client talks to `postern gateway`'s MX in the test
    Internet of internet.py (dnsmasq, Postfix, the gateway and the core), which hands the mail to
    the core — the gateway scans, and the core scans again what it is handed.

EICAR as a plain body, as a base64 attachment and deep inside nested multiparts is refused in the
dialogue with `554 5.7.1 … virus found` (the reply names no signature), nothing is stored and no
bounce is made; a clean message passes unmarked; clamd stopped gives `451 4.3.0`; with
`on_unavailable = "accept"` the message is stored with `X-Postern-Scan: not scanned (the virus
scanner was unavailable)`.
"""
from __future__ import annotations

import base64
import contextlib
import smtplib
import socket
import threading
import time
import uuid

import pytest

from harness import HOST
from internet import GATEWAY_ADDRESS, STRANGER, Lab
from mailutil import header_fields, make_message, pop_stat, smtp_connect, wait_for_count
from peers import Clamd

UNSCANNED = "X-Postern-Scan: not scanned (the virus scanner was unavailable)"
CRLF = b"\r\n"


# -- the messages ----------------------------------------------------------------------------

def _head(sender: str, to: str, subject: str, content_type: str) -> bytes:
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@client.example>\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}\r\n").encode()


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", CRLF)


def plain_body(sender: str, to: str, subject: str, payload: bytes) -> bytes:
    return _head(sender, to, subject, "text/plain; charset=us-ascii") + CRLF + payload + CRLF


def base64_attachment(sender: str, to: str, subject: str, payload: bytes) -> bytes:
    return (_head(sender, to, subject, 'multipart/mixed; boundary="mix-1"') + CRLF
            + b"This is a multi-part message in MIME format.\r\n"
            + b"--mix-1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attached program.\r\n"
            + b'--mix-1\r\nContent-Type: application/x-msdownload; name="setup.com"\r\n'
            + b'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="setup.com"\r\n\r\n'
            + _b64(payload) + b"--mix-1--\r\n")


def nested_multipart(sender: str, to: str, subject: str, payload: bytes) -> bytes:
    """mixed > [alternative > [plain, related > [html, image]], mixed > [message/rfc822 > mixed > [zip-ish]]]"""
    inner_mail = (b"From: someone@elsewhere.example\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n"
                  b'Content-Type: multipart/mixed; boundary="deep-4"\r\n\r\n'
                  b"--deep-4\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n"
                  b'--deep-4\r\nContent-Type: application/octet-stream; name="tool.bin"\r\n'
                  b"Content-Transfer-Encoding: base64\r\n\r\n" + _b64(payload) + b"--deep-4--\r\n")
    return (_head(sender, to, subject, 'multipart/mixed; boundary="outer-1"') + CRLF
            + b'--outer-1\r\nContent-Type: multipart/alternative; boundary="alt-2"\r\n\r\n'
            + b"--alt-2\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
            + b'--alt-2\r\nContent-Type: multipart/related; boundary="rel-3"\r\n\r\n'
            + b"--rel-3\r\nContent-Type: text/html\r\n\r\n<p>hello <img src=\"cid:i1@x\"></p>\r\n"
            + b"--rel-3\r\nContent-Type: image/gif\r\nContent-ID: <i1@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + b"R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7\r\n--rel-3--\r\n"
            + b"--alt-2--\r\n"
            + b'--outer-1\r\nContent-Type: multipart/mixed; boundary="mid-5"\r\n\r\n'
            + b"--mid-5\r\nContent-Type: message/rfc822\r\n\r\n" + inner_mail
            + b"--mid-5--\r\n--outer-1--\r\n")


SHAPES = {"plain-body": plain_body, "base64-attachment": base64_attachment, "nested-multipart": nested_multipart}
CLEAN = b"Nothing to see: X5O!P%@AP - only the first letters of the test file, and a $ sign.\r\n"


def assert_refused_as_virus(code: int, text: bytes) -> None:
    assert (code, text[:6]) == (554, b"5.7.1 "), (code, text)
    lowered = text.lower()
    assert b"virus found" in lowered, text
    for secret in (b"eicar", b"signature", b"unofficial", b"found."):
        assert secret not in lowered, f"the reply tells about the signature: {text!r}"


def header_values(raw: bytes, name: str) -> list[str]:
    return [v for n, v in header_fields(raw) if n.lower() == name.lower()]


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    daemon = Clamd(tmp_path_factory.mktemp("clamd")).start()
    assert daemon.scan(daemon.eicar).endswith("FOUND") and daemon.scan(CLEAN) == "stream: OK"
    yield daemon
    if daemon.running:
        daemon.stop()


@contextlib.contextmanager
def clamd_stopped(clamd: Clamd):
    clamd.stop()
    try:
        yield
    finally:
        clamd.start()


@pytest.fixture(scope="module")
def server(make_server, clamd):
    return make_server({"scan": {"clamd": clamd.address, "timeout": "5s"}}, name="scan-core")


@pytest.fixture(scope="module")
def accepting(make_server, clamd):
    """A core that accepts mail unscanned when clamd cannot be asked."""
    return make_server({"scan": {"clamd": clamd.address, "timeout": "5s", "on_unavailable": "accept"}},
                       name="scan-accepting")


@pytest.fixture(scope="module")
def lab(make_server, clamd):
    # The core behind the gateway accepts unscanned mail (the gateway's policy decides what the
    # Internet hears); both ask the same clamd.
    scan = {"clamd": clamd.address, "timeout": "5s"}
    lab = Lab(make_server, core_extra={"scan": {**scan, "on_unavailable": "accept"}},
              gateway_extra={"scan": {**scan, "on_unavailable": "tempfail"}})
    yield lab
    lab.close()


def submit(server, sender, recipient, message: bytes) -> tuple[int, bytes]:
    with smtp_connect(server, sender) as s:
        assert s.mail(sender.address)[0] == 250
        assert s.rcpt(recipient.address)[0] == 250
        return s.data(message)


def from_internet(recipient: str, message: bytes) -> tuple[int, bytes]:
    """An Internet client (no SPF record for its domain) hands MESSAGE to the gateway's MX."""
    with smtplib.SMTP(GATEWAY_ADDRESS, 25, source_address=(STRANGER, 0), timeout=60) as smtp:
        smtp.ehlo("client.elsewhere.test")
        assert smtp.mail("someone@nospf.test")[0] == 250
        assert smtp.rcpt(recipient)[0] == 250
        return smtp.data(message)


def wait_gateway_empty(lab, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while lab.gateway.stored_files():
        assert time.monotonic() < deadline, f"the gateway keeps {lab.gateway.stored_files()}"
        time.sleep(0.2)


# -- SMTP submission -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_eicar_is_refused_on_submission_without_a_bounce(server, clamd, alice, bob, shape):
    message = SHAPES[shape](alice.address, bob.address, f"eicar {shape}", clamd.eicar)
    assert clamd.scan(message).endswith("FOUND")          # clamd itself finds it in this shape
    code, text = submit(server, alice, bob, message)
    assert_refused_as_virus(code, text)
    time.sleep(0.5)
    assert pop_stat(server, bob) == (0, 0), "the infected message was stored"
    assert pop_stat(server, alice) == (0, 0), "a bounce was made for a refusal given in the dialogue"
    assert server.alive()


def test_a_clean_message_passes_unmarked(server, clamd, alice, bob):
    marker = uuid.uuid4().hex
    message = base64_attachment(alice.address, bob.address, f"clean {marker}", CLEAN)
    code, text = submit(server, alice, bob, message)
    assert code == 250, text
    [stored] = wait_for_count(server, bob, 1)
    assert marker.encode() in stored and _b64(CLEAN) in stored
    assert header_values(stored, "X-Postern-Scan") == []


def test_clamd_stopped_gives_a_temporary_failure_then_recovers(server, clamd, alice, bob):
    message = make_message(alice.address, bob.address, "while clamd is down", "hello\n")
    with clamd_stopped(clamd):
        code, text = submit(server, alice, bob, message)
        assert (code, text[:6]) == (451, b"4.3.0 "), (code, text)
        assert pop_stat(server, bob) == (0, 0)
    # The same message once clamd is back: taken (a new connection to clamd per message).
    code, text = submit(server, alice, bob, message)
    assert code == 250, text
    [stored] = wait_for_count(server, bob, 1)
    assert header_values(stored, "X-Postern-Scan") == []


def test_a_clamd_that_never_answers_is_unavailable_after_the_timeout(make_server):
    """Something accepts on clamd's address and then says nothing: `451 4.3.0` after [scan]
    timeout, not a hung SMTP session."""
    silent = socket.create_server((HOST, 0))
    held = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = silent.accept()
            except OSError:
                return
            held.append(conn)          # read nothing, answer nothing
    threading.Thread(target=accept, daemon=True).start()
    try:
        srv = make_server({"scan": {"clamd": f"{HOST}:{silent.getsockname()[1]}", "timeout": "2s"}}, name="scan-silent")
        alice, bob = srv.add_account("alice"), srv.add_account("bob")
        started = time.monotonic()
        code, text = submit(srv, alice, bob, make_message(alice.address, bob.address, "hang", "hello\n"))
        took = time.monotonic() - started
        assert (code, text[:6]) == (451, b"4.3.0 "), (code, text)
        assert 1.5 <= took < 15, took
        assert held, "the server never asked the scanner"
        assert pop_stat(srv, bob) == (0, 0)
    finally:
        stop.set()
        silent.close()
        for conn in held:
            conn.close()


def test_accept_policy_stores_the_message_marked_when_clamd_is_down(accepting, clamd):
    alice, bob = accepting.take_account("alice"), accepting.take_account("bob")
    with clamd_stopped(clamd):
        message = make_message(alice.address, bob.address, "accepted unscanned", "hello\n")
        code, text = submit(accepting, alice, bob, message)
        assert code == 250, text
        # Infected mail too: it cannot be told apart while the scanner is away.
        code, text = submit(accepting, alice, bob, plain_body(alice.address, bob.address, "unscanned", clamd.eicar))
        assert code == 250, text
    stored = wait_for_count(accepting, bob, 2)
    for raw in stored:
        head = raw.split(b"\r\n\r\n", 1)[0].decode()
        assert UNSCANNED in head.split("\r\n"), head
        assert header_values(raw, "X-Postern-Scan") == [UNSCANNED.split(": ", 1)[1]]
        assert head.split("\r\n")[0].startswith("Return-Path:"), head     # the mark below the Return-Path
    # With clamd back, the same server scans again: no mark, and EICAR refused.
    code, text = submit(accepting, alice, bob, make_message(alice.address, bob.address, "scanned", "hi\n"))
    assert code == 250, text
    code, text = submit(accepting, alice, bob, plain_body(alice.address, bob.address, "again", clamd.eicar))
    assert_refused_as_virus(code, text)
    newest = [m for m in wait_for_count(accepting, bob, 3) if b"Subject: scanned" in m]
    assert len(newest) == 1 and header_values(newest[0], "X-Postern-Scan") == []


# -- the gateway's inbound side --------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_eicar_from_the_internet_is_refused_by_the_gateway_without_a_bounce(lab, clamd, shape):
    user = lab.core.take_account("scanuser")
    recipient = f"{user.name}@i2pmail.org"
    message = SHAPES[shape]("someone@nospf.test", recipient, f"eicar {shape}", clamd.eicar)
    code, text = from_internet(recipient, message)
    assert_refused_as_virus(code, text)
    time.sleep(0.5)
    assert pop_stat(lab.core, user) == (0, 0)
    # No bounce: the gateway queued nothing for the (possibly forged) sender.
    wait_gateway_empty(lab)
    assert lab.core.alive()


def test_a_clean_message_from_the_internet_passes_unmarked(lab):
    user = lab.core.take_account("scanuser")
    recipient = f"{user.name}@i2pmail.org"
    marker = uuid.uuid4().hex
    code, text = from_internet(recipient, base64_attachment("someone@nospf.test", recipient, f"clean {marker}", CLEAN))
    assert code == 250, text
    [stored] = wait_for_count(lab.core, user, 1)
    assert marker.encode() in stored and _b64(CLEAN) in stored
    assert header_values(stored, "X-Postern-Scan") == []


def test_the_core_scans_what_the_gateway_hands_it(lab, clamd):
    """A gateway without a scanner: the core refuses EICAR itself, and the Internet client hears
    554 5.7.1 in its dialogue (the gateway passes on the core's code, never its text)."""
    lab.restart_gateway({"scan": {"clamd": None, "on_unavailable": None, "timeout": None}})
    try:
        user = lab.core.take_account("scanuser")
        recipient = f"{user.name}@i2pmail.org"
        code, text = from_internet(recipient, base64_attachment("someone@nospf.test", recipient, "via core", clamd.eicar))
        assert (code, text[:6]) == (554, b"5.7.1 "), (code, text)
        assert b"eicar" not in text.lower() and b"mail.i2p" not in text
        time.sleep(0.5)
        assert pop_stat(lab.core, user) == (0, 0)
        wait_gateway_empty(lab)
    finally:
        lab.restart_gateway({"scan": {"clamd": clamd.address, "timeout": "5s", "on_unavailable": "tempfail"}})


def test_clamd_stopped_the_gateway_tempfails_or_accepts_marked(lab, clamd):
    user = lab.core.take_account("scanuser")
    recipient = f"{user.name}@i2pmail.org"
    with clamd_stopped(clamd):
        code, text = from_internet(recipient, plain_body("someone@nospf.test", recipient, "down", b"hello"))
        assert (code, text[:6]) == (451, b"4.3.0 "), (code, text)
        assert pop_stat(lab.core, user) == (0, 0)
        lab.restart_gateway({"scan": {"on_unavailable": "accept"}})
        try:
            code, text = from_internet(recipient, plain_body("someone@nospf.test", recipient, "accepted", b"hello"))
            assert code == 250, text
            [stored] = wait_for_count(lab.core, user, 1)
        finally:
            lab.restart_gateway({"scan": {"on_unavailable": "tempfail"}})
    values = header_values(stored, "X-Postern-Scan")
    assert values and set(values) == {UNSCANNED.split(": ", 1)[1]}, values
    wait_gateway_empty(lab)
