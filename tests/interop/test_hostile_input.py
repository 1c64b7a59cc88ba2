"""Hostile bytes on a raw socket against the live server (SMTP-5, issue 2 "Bad input gets").

Strict on the reply's first digit and the enhanced code's class, tolerant on the text. After each
case the server must still be running and answer a new connection, and nothing may be delivered
that should not be (in particular a smuggled `\\n.\\n` must never split one DATA into two messages).
"""
import socket

import pytest

from mailutil import (CRLF, Closed, RawSMTP, assert_same_message, dot_stuff, expect, expect_code, fetch_all,
                      make_message, pop_stat, server_answers, token)
from harness import HOST

MAX_SIZE = 64 * 1024


@pytest.fixture(scope="module")
def server(make_server):
    return make_server({"smtp": {"max_message_size": "64KiB"}}, name="hostile")


def first_reply(c: RawSMTP, what: str):
    try:
        return c.read_reply()
    except socket.timeout:
        raise AssertionError(f"{what}: no reply within {c.sock.gettimeout()} s (server waits for more input?)")
    except Closed:
        raise AssertionError(f"{what}: server closed the connection without a reply")


def open_transaction(server, sender, rcpts) -> RawSMTP:
    c = RawSMTP(server.smtp_port)
    c.login(sender)
    expect_code(c.cmd(f"MAIL FROM:<{sender.address}>"), 250)
    for r in rcpts:
        expect_code(c.cmd(f"RCPT TO:<{r.address}>"), 250)
    expect_code(c.cmd("DATA"), 354)
    return c


def quit_quietly(c: RawSMTP):
    try:
        c.send(b"QUIT\r\n")
        c.read_reply()
    except (OSError, Closed, AssertionError):
        pass
    c.close()


def replies_until_close(c: RawSMTP, wait: float = 5.0) -> list:
    """Send QUIT and collect every reply until the server closes the connection. After a refused
    DATA the only one expected is 221 to the QUIT (none if the server closed already); anything
    else means bytes inside DATA were run as commands."""
    got = []
    c.sock.settimeout(wait)
    try:
        c.send(b"QUIT\r\n")
        while True:
            got.append(c.read_reply())
            if got[-1].code == 221:
                break
    except (OSError, Closed):
        pass
    c.close()
    return got


# -- commands -------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    pytest.param(b"NOOP\nNOOP\r\n", id="bare-LF-in-NOOP"),
    pytest.param(b"NOOP\rNOOP\r\n", id="bare-CR-in-NOOP"),
    pytest.param(b"NOOP\x00\r\n", id="NUL-in-command"),
    pytest.param(b"NOOP " + b"x" * 593 + CRLF, id="600-octet-command"),
    pytest.param(b"X" * 100_000 + CRLF, id="100k-octet-command"),
])
def test_bad_command_line_after_auth(server, alice, bob, payload):
    c = RawSMTP(server.smtp_port)
    try:
        c.login(alice)
        c.send(payload)
        expect(first_reply(c, repr(payload[:30])), 5, "5", what=f"{payload[:30]!r}")
        quit_quietly(c)
    finally:
        c.close()
    server_answers(server)


@pytest.mark.parametrize("payload", [
    pytest.param(b"EHLO client.example\nNOOP\r\n", id="bare-LF-in-EHLO"),
    pytest.param(b"EHLO client.example\x00\r\n", id="NUL-in-EHLO"),
    pytest.param(b"EHLO " + b"a" * 600 + CRLF, id="long-EHLO"),
])
def test_bad_command_line_before_auth(server, payload):
    with RawSMTP(server.smtp_port) as c:
        c.send(payload)
        expect(first_reply(c, repr(payload[:30])), 5, "5", what=f"{payload[:30]!r}")
    server_answers(server)


def test_bare_lf_in_mail_command_does_not_start_transaction(server, alice, bob):
    c = RawSMTP(server.smtp_port)
    try:
        c.login(alice)
        c.send(f"MAIL FROM:<{alice.address}>\nRCPT TO:<{bob.address}>\r\n".encode())
        expect(first_reply(c, "MAIL with bare LF"), 5, "5")
        try:
            r = c.cmd(f"RCPT TO:<{bob.address}>")
        except Closed:
            r = None
        if r is not None:
            expect(r, 5, what="RCPT after a refused MAIL line (no transaction may be open)")
    finally:
        quit_quietly(c)
    server_answers(server)


def test_512_octet_command_is_fine(server, alice):
    """Control for the line-length cases: exactly 512 octets including CRLF is legal (RFC 5321 4.5.3.1.4)."""
    with RawSMTP(server.smtp_port) as c:
        c.login(alice)
        line = b"NOOP " + b"y" * 505 + CRLF
        assert len(line) == 512
        c.send(line)
        expect(first_reply(c, "512-octet NOOP"), 2)


@pytest.mark.parametrize("cmds,what", [
    ([b"DATA"], "DATA before MAIL"),
    ([b"RCPT TO:<%(bob)s>"], "RCPT before MAIL"),
    ([b"MAIL FROM:<%(alice)s>", b"DATA"], "DATA without RCPT"),
    ([b"FROB the widget"], "unknown command"),
    ([b"AUTH PLAIN !!!not-base64!!!"], "invalid base64 in AUTH"),
    ([b"AUTH CRAM-MD5"], "unsupported mechanism"),
    ([b"MAIL FROM:<%(alice)s"], "malformed MAIL"),
    ([b"MAIL FROM:<%(alice)s>", b"RCPT TO:<" + b"a" * 300 + b"@mail.i2p>"], "over-long local part"),
])
def test_out_of_order_and_malformed(server, alice, bob, cmds, what):
    c = RawSMTP(server.smtp_port)
    try:
        if not cmds[0].startswith(b"AUTH"):
            c.login(alice)
        else:
            expect_code(c.cmd("EHLO client.example"), 250)
        r = None
        for cmd in cmds:
            r = c.cmd(cmd % {b"alice": alice.address.encode(), b"bob": bob.address.encode()})
        expect(r, 5, "5", what=what)
    finally:
        quit_quietly(c)
    server_answers(server)


# -- DATA -----------------------------------------------------------------------------------------

SMUGGLE_ENDINGS = {
    "LF.LF": b"\n.\n",
    "CRLF.LF": b"\r\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CR.CR": b"\r.\r",
    "CRLF.CR": b"\r\n.\r",
}


@pytest.mark.parametrize("ending", list(SMUGGLE_ENDINGS), ids=list(SMUGGLE_ENDINGS))
def test_smuggled_end_of_data_is_refused(server, alice, bob, carol, ending):
    """An SMTP smuggling attempt: a fake end of data and a second transaction to carol inside one
    DATA. The real end is CRLF.CRLF. The message contains bare line ends, so it is refused (5xx),
    and above all carol gets nothing: one DATA is never two deliveries."""
    head = make_message(alice.address, bob.address, "smuggle", f"first part {token()}").rstrip(b"\r\n")
    smuggled = (f"MAIL FROM:<{alice.address}>\r\nRCPT TO:<{carol.address}>\r\nDATA\r\n"
                f"From: {alice.address}\r\nTo: {carol.address}\r\nSubject: smuggled\r\n\r\nsmuggled {token()}\r\n").encode()
    c = open_transaction(server, alice, [bob])
    try:
        c.send(head + SMUGGLE_ENDINGS[ending] + smuggled + b".\r\n")
        r = first_reply(c, f"end of DATA with a smuggled {ending}")
        expect(r, 5, "5", what=f"DATA containing {ending}")
        after = replies_until_close(c)
    finally:
        c.close()
    assert [x.code for x in after] in ([], [221]), \
        f"SMUGGLING: after the refused DATA the server answered {[x.text for x in after]} " \
        "(only 221 to QUIT expected): the bytes after the fake end of data ran as commands"
    server_answers(server)
    assert pop_stat(server, carol)[0] == 0, f"SMUGGLING: {ending} inside DATA delivered a second message to carol"
    assert pop_stat(server, bob)[0] == 0, f"a message with a bare line end ({ending}) was delivered"


@pytest.mark.parametrize("bad", [
    pytest.param(b"a bare LF\nin the middle\r\n", id="bare-LF"),
    pytest.param(b"a bare CR\rin the middle\r\n", id="bare-CR"),
    pytest.param(b"y" * 999 + CRLF, id="1001-octet-line"),
    pytest.param(b"z" * 5000 + CRLF, id="5002-octet-line"),
])
def test_bad_data_line_refused(server, alice, bob, bad):
    msg = make_message(alice.address, bob.address, "bad line", f"before {token()}\n")
    c = open_transaction(server, alice, [bob])
    try:
        c.send(msg + bad + b"after\r\n.\r\n")
        expect(first_reply(c, "end of DATA"), 5, "5", what=f"DATA with {bad[:20]!r}...")
        after = replies_until_close(c)
    finally:
        c.close()
    assert [x.code for x in after] in ([], [221]), f"unexpected replies after the refused DATA: {[x.text for x in after]}"
    server_answers(server)
    assert pop_stat(server, bob)[0] == 0, "a message with an illegal line was delivered"


def test_1000_octet_line_is_fine(server, alice, bob):
    """Control: 998 octets + CRLF = 1000, the longest legal text line (RFC 5321 4.5.3.1.6)."""
    tok = token("long")
    msg = make_message(alice.address, bob.address, "longest line", f"{tok}\n" + "w" * 998 + "\n.\n")
    c = open_transaction(server, alice, [bob])
    try:
        c.send(dot_stuff(msg) + b".\r\n")
        expect_code(first_reply(c, "end of DATA"), 250)
    finally:
        quit_quietly(c)
    got = fetch_all(server, bob)
    assert len(got) == 1
    assert_same_message(msg, got[0], sender=alice.address, what="1000-octet line")


def test_oversize_message_refused(server, alice, bob):
    with RawSMTP(server.smtp_port) as c:
        r = c.cmd("EHLO client.example")
        sizes = [ln[4:].split() for ln in r.lines if ln[4:].upper().startswith("SIZE")]
        assert sizes and sizes[0][1:] == [str(MAX_SIZE)], f"EHLO SIZE {sizes}, configured 64KiB"
    # declared too big at MAIL
    with RawSMTP(server.smtp_port) as c:
        c.login(alice)
        expect_code(c.cmd(f"MAIL FROM:<{alice.address}> SIZE={MAX_SIZE + 1}"), 552, "5.3.4", what="MAIL SIZE= over")
    # undeclared, too big while streaming
    filler = ("o" * 70 + "\n") * (2 * MAX_SIZE // 71)
    msg = make_message(alice.address, bob.address, "too big", f"{token()}\n{filler}")
    assert len(msg) > MAX_SIZE
    c = open_transaction(server, alice, [bob])
    try:
        try:
            c.send(dot_stuff(msg) + b".\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass    # the server may stop reading after its 552; the reply must still be there
        expect_code(first_reply(c, "end of oversize DATA"), 552, "5.3.4", what="oversize DATA")
        quit_quietly(c)
    finally:
        c.close()
    server_answers(server)
    assert pop_stat(server, bob)[0] == 0, "an oversize message was delivered"
    # just under the limit is accepted
    pad = MAX_SIZE - 2000
    small = make_message(alice.address, bob.address, "fits", f"{token()}\n" + ("p" * 99 + "\n") * (pad // 101))
    assert len(small) < MAX_SIZE
    c = open_transaction(server, alice, [bob])
    try:
        c.send(dot_stuff(small) + b".\r\n")
        expect_code(first_reply(c, "end of DATA just under the limit"), 250)
    finally:
        quit_quietly(c)


@pytest.mark.parametrize("case,may_close", [
    ("header-From-mismatch", False),   # a policy refusal (553 5.7.1): the session goes on
    ("over-long-line", True),          # framing errors: closing is allowed
    ("bare-LF", True),
])
def test_session_continues_after_refused_data(server, alice, bob, carol, case, may_close):
    """After a refused DATA the session is usable for a clean transaction (RFC 5321 allows it).
    Where a server may close instead (framing errors), a close is accepted."""
    bad = {"header-From-mismatch": make_message(carol.address, bob.address, "forged", "x"),
           "over-long-line": make_message(alice.address, bob.address, "long", "x") + b"L" * 1200 + CRLF,
           "bare-LF": make_message(alice.address, bob.address, "bad", "x") + b"bare\nLF\r\n"}[case]
    c = open_transaction(server, alice, [bob])
    try:
        c.send(dot_stuff(bad) + b".\r\n")
        first = first_reply(c, "end of bad DATA")
        expect(first, 5, "5")
        try:
            r = c.cmd("RSET")
        except (Closed, OSError):
            if not c.is_closed(2):
                raise
            if may_close:
                pytest.skip(f"server closed the session after the refused DATA ({first.text!r}); allowed")
            raise AssertionError(f"server closed the session after {first.text!r}; it should go on")
        expect(r, 2, what="RSET after refused DATA")
        good = make_message(alice.address, bob.address, "good after bad", f"good {token()}\n")
        expect_code(c.cmd(f"MAIL FROM:<{alice.address}>"), 250)
        expect_code(c.cmd(f"RCPT TO:<{bob.address}>"), 250)
        expect_code(c.cmd("DATA"), 354)
        c.send(dot_stuff(good) + b".\r\n")
        expect_code(c.read_reply(), 250)
    finally:
        quit_quietly(c)
    got = fetch_all(server, bob)
    assert len(got) == 1
    assert_same_message(good, got[0], sender=alice.address)


# -- POP3 -----------------------------------------------------------------------------------------

def pop_raw(server):
    s = socket.create_connection((HOST, server.pop3_port), timeout=15)
    f = s.makefile("rb")
    assert f.readline().startswith(b"+OK")
    return s, f


@pytest.mark.parametrize("payload", [
    pytest.param(b"NOOP\x00\r\n", id="NUL"),
    pytest.param(b"USER " + b"u" * 1100 + CRLF, id="long-line"),    # RFC 2449: 255 octets at most
    pytest.param(b"FROB\r\n", id="unknown"),
    pytest.param(b"RETR 1\r\n", id="RETR-before-login"),
    pytest.param(b"AUTH PLAIN !!!\r\n", id="bad-base64"),
    pytest.param(b"APOP someone 0123456789abcdef0123456789abcdef\r\n", id="APOP"),
])
def test_pop3_bad_input(server, payload):
    s, f = pop_raw(server)
    try:
        s.sendall(payload)
        line = f.readline()
        assert line.startswith(b"-ERR"), f"{payload[:30]!r} -> {line!r}"
    finally:
        s.close()
    server_answers(server)
