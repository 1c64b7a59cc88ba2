"""Python's smtplib and poplib against Postern (SMTP-1..5, MBOX-2/3, POP-1..3)."""
import email.policy
import poplib
import re
import smtplib
import socket
import threading
from email.message import EmailMessage

import pytest

from harness import HOST
from mailutil import (CRLF, RawSMTP, assert_same_message, b64plain, body_of, dot_stuff, expect, expect_code,
                      fetch_all, make_message, pop_login, pop_stat, retr_bytes, send_raw, smtp_connect, token)


def email_message(sender, to, subject, text, policy=email.policy.SMTP, cte=None) -> EmailMessage:
    m = EmailMessage(policy=policy)
    m["From"] = sender
    m["To"] = ", ".join(to) if isinstance(to, list) else to
    m["Subject"] = subject
    if cte:
        m.set_content(text, cte=cte)
    else:
        m.set_content(text)
    return m


# -- smtplib --------------------------------------------------------------------------------------

def test_ehlo_extensions(server):
    with smtplib.SMTP(HOST, server.smtp_port, local_hostname="client.example", timeout=20) as s:
        code, _ = s.ehlo()
        assert code == 250
        f = s.esmtp_features
        auth = f.get("auth", "").upper().split()
        assert "PLAIN" in auth and "LOGIN" in auth, f"AUTH mechanisms: {auth}"
        for ext in ("pipelining", "8bitmime", "size", "enhancedstatuscodes", "smtputf8", "chunking"):
            assert ext in f, f"EHLO lacks {ext.upper()}: {sorted(f)}"
        assert f["size"].strip() == str(32 * 1024 * 1024), f"SIZE {f['size']!r}, default limit is 32MiB"
        assert "starttls" not in f, "STARTTLS must not be offered by default (SMTP-2)"
        for mech in auth:
            assert mech in ("PLAIN", "LOGIN"), f"unexpected AUTH mechanism {mech} (SMTP-2: PLAIN and LOGIN only)"


def test_send_message_single_recipient(server, alice, bob):
    tok = token("smtplib")
    m = email_message(alice.address, bob.address, "smtplib single", f"hello {tok}\n.starts with a dot\nend\n")
    with smtp_connect(server, alice) as s:
        assert s.send_message(m) == {}
        sent = s.sent_data[0]
    got = fetch_all(server, bob)
    assert len(got) == 1
    assert tok.encode() in got[0]
    assert_same_message(sent, got[0], sender=alice.address, what="smtplib single")


def test_send_message_multiple_recipients(server, alice, bob, carol):
    tok = token("multi")
    m = email_message(alice.address, [bob.address, carol.address], "smtplib multi", f"to two {tok}\n")
    with smtp_connect(server, alice) as s:
        assert s.send_message(m) == {}
        sent = s.sent_data[0]
    for who in (bob, carol):
        got = fetch_all(server, who)
        assert len(got) == 1, f"{who}: {len(got)} messages"
        assert_same_message(sent, got[0], sender=alice.address, what=f"multi -> {who}")


def test_multiple_recipients_one_unknown(server, alice, bob):
    m = email_message(alice.address, bob.address, "partly refused", f"partial {token()}\n")
    with smtp_connect(server, alice) as s:
        refused = s.send_message(m, to_addrs=[bob.address, "no-such-user-zz@mail.i2p"])
        sent = s.sent_data[0]
    assert list(refused) == ["no-such-user-zz@mail.i2p"], refused
    code, text = refused["no-such-user-zz@mail.i2p"]
    assert code == 550 and text.startswith(b"5.1.1"), refused
    got = fetch_all(server, bob)
    assert len(got) == 1
    assert_same_message(sent, got[0], sender=alice.address)


def test_pipelined_transactions(server, alice, bob, carol):
    """RFC 2920: MAIL, RCPT..., DATA in one write; replies in order; two transactions in a row."""
    msgs = [make_message(alice.address, [bob.address, carol.address], f"pipelined {i}", f"pipelined {i} {token()}\n")
            for i in (1, 2)]
    with RawSMTP(server.smtp_port) as c:
        ehlo = c.cmd("EHLO client.example")
        assert "PIPELINING" in ehlo.text.upper()
        c.send(f"AUTH PLAIN {b64plain(alice.address, alice.password)}\r\n".encode())
        expect_code(c.read_reply(), 235)
        for m in msgs:
            c.send((f"MAIL FROM:<{alice.address}>\r\nRCPT TO:<{bob.address}>\r\n"
                    f"RCPT TO:<nobody-pp@mail.i2p>\r\nRCPT TO:<{carol.address}>\r\nDATA\r\n").encode())
            expect_code(c.read_reply(), 250, what="MAIL")
            expect_code(c.read_reply(), 250, what="RCPT bob")
            expect_code(c.read_reply(), 550, "5.1.1", what="RCPT unknown")
            expect_code(c.read_reply(), 250, what="RCPT carol")
            expect_code(c.read_reply(), 354, what="DATA")
            c.send(dot_stuff(m) + b".\r\n")
            expect_code(c.read_reply(), 250, what="end of data")
        c.send(b"NOOP\r\nRSET\r\nQUIT\r\n")
        for what in ("NOOP", "RSET", "QUIT"):
            expect(c.read_reply(), 2, what=what)
    for who in (bob, carol):
        got = fetch_all(server, who)
        assert len(got) == 2, f"{who}: {len(got)} messages"
        for sent, g in zip(msgs, got):
            assert_same_message(sent, g, sender=alice.address, what=f"pipelined -> {who}")


def test_smtputf8_8bit_body(server, alice, bob):
    tok = token("utf8")
    text = f"Grüße aus Zürich — ☃ ✉ 日本語のテキスト {tok}\nŁódź, Ærø, café\n.точка\n"
    m = email_message(alice.address, bob.address, "Ünïcödé Sübjéct ✉", text, policy=email.policy.SMTPUTF8, cte="8bit")
    with smtp_connect(server, alice) as s:
        assert "smtputf8" in s.esmtp_features
        assert s.send_message(m, mail_options=["SMTPUTF8", "BODY=8BITMIME"]) == {}
        sent = s.sent_data[0]
    assert "Zürich".encode() in sent and b"\xe2\x98\x83" in sent, "test message is not 8-bit"
    got = fetch_all(server, bob)
    assert len(got) == 1
    assert_same_message(sent, got[0], sender=alice.address, what="SMTPUTF8 8-bit")
    assert "日本語".encode() in body_of(got[0])


def test_bdat_chunking(server, alice, bob):
    """RFC 3030 CHUNKING: the message in three BDAT chunks, the last one LAST; no dot-stuffing."""
    msg = make_message(alice.address, bob.address, "chunked", f"chunk one {token()}\n.not stuffed in BDAT\nthree\n")
    parts = [msg[:50], msg[50:120], msg[120:]]
    with RawSMTP(server.smtp_port) as c:
        c.login(alice)
        expect_code(c.cmd(f"MAIL FROM:<{alice.address}> BODY=8BITMIME"), 250)
        expect_code(c.cmd(f"RCPT TO:<{bob.address}>"), 250)
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            c.send(f"BDAT {len(p)}{' LAST' if last else ''}\r\n".encode() + p)
            expect_code(c.read_reply(), 250, what=f"BDAT chunk {i}")
        expect(c.cmd("QUIT"), 2)
    got = fetch_all(server, bob)
    assert len(got) == 1
    assert_same_message(msg, got[0], sender=alice.address, what="BDAT")


def test_mail_before_auth_smtplib(server, alice, bob):
    with smtplib.SMTP(HOST, server.smtp_port, local_hostname="client.example", timeout=20) as s:
        s.ehlo()
        code, text = s.mail(alice.address)
        assert code == 530 and text.startswith(b"5.7.0"), (code, text)
        code, text = s.rcpt(bob.address)
        assert code // 100 == 5, (code, text)


def test_wrong_password_smtplib(server, alice):
    with smtplib.SMTP(HOST, server.smtp_port, local_hostname="client.example", timeout=20) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(alice.address, "not-the-password")
        assert e.value.smtp_code == 535 and e.value.smtp_error.startswith(b"5.7.8"), e.value


def test_three_failed_auths_disconnect(server, alice):
    with RawSMTP(server.smtp_port) as c:
        expect_code(c.cmd("EHLO client.example"), 250)
        for i in range(2):
            expect_code(c.cmd("AUTH PLAIN " + b64plain(alice.address, f"bad-password-{i}")), 535, "5.7.8",
                        what=f"failed AUTH #{i + 1}")
        r = c.cmd("AUTH PLAIN " + b64plain(alice.address, "bad-password-3"))
        expect_code(r, 421, "4.7.0", what="third failed AUTH")
        assert c.is_closed(5), "server did not close the connection after 421"
    # the correct password still works afterwards (back-off is capped, auth_penalty_max = 1s)
    with smtp_connect(server, alice, timeout=30):
        pass


def test_sender_must_be_login_smtplib(server, alice, bob):
    with smtp_connect(server, alice) as s:
        code, text = s.mail(bob.address)
        assert code == 553 and text.startswith(b"5.7.1"), (code, text)
        code, text = s.mail("")           # null sender refused on submission (SMTP-3)
        assert code // 100 == 5, (code, text)


def test_size_param_over_limit(server, alice, bob):
    with smtp_connect(server, alice) as s:
        code, text = s.mail(alice.address, [f"SIZE={40 * 1024 * 1024}"])
        assert code == 552 and text.startswith(b"5.3.4"), (code, text)
        s.rset()
        code, _ = s.mail(alice.address, ["SIZE=1000"])
        assert code == 250


def test_mailbox_full(server, alice, bob):
    """MBOX-2: with a 1 MB quota, 300 kB messages fit three times; the 4th is refused (452 4.2.2 at
    RCPT or 552 after DATA) and the mailbox never goes over the quota."""
    server.cli("account", "set", bob.name, "quota=1MB")
    filler = ("x" * 76 + "\n") * 3900          # ~300 kB body
    refused = None
    for i in range(1, 6):
        m = email_message(alice.address, bob.address, f"filler {i}", f"{i} {token()}\n{filler}")
        with smtp_connect(server, alice) as s:
            try:
                s.send_message(m)
            except smtplib.SMTPRecipientsRefused as e:
                code, text = e.recipients[bob.address]
                assert (code, text[:5]) == (452, b"4.2.2"), f"refused at RCPT with {code} {text!r}"
                refused = i
            except smtplib.SMTPDataError as e:
                assert e.smtp_code == 552, f"refused after DATA with {e.smtp_code} {e.smtp_error!r}"
                refused = i
        if refused:
            break
    assert refused is not None, "5 x 300 kB accepted into a 1 MB mailbox"
    assert refused >= 3, f"refused already at message {refused}, 1 MB holds three 300 kB messages"
    count, size = pop_stat(server, bob)
    assert count == refused - 1
    assert size <= 1_000_000, f"mailbox is over its 1 MB quota: {size} octets"


# -- poplib ---------------------------------------------------------------------------------------

@pytest.fixture
def bob_with_three(server, alice, bob):
    msgs = [make_message(alice.address, bob.address, f"pop #{i}", f"pop body {i} {token()}\n.dotted\nline {i}\n")
            for i in (1, 2, 3)]
    for m in msgs:
        send_raw(server, alice, [bob.address], m)
    return bob, msgs, alice


def test_pop3_greeting_and_capa(server, bob):
    p = poplib.POP3(HOST, server.pop3_port, timeout=20)
    try:
        welcome = p.getwelcome()
        assert welcome.startswith(b"+OK")
        assert not re.search(rb"<[^>]*@[^>]*>", welcome), f"greeting announces APOP: {welcome!r}"
        capa = {k.upper(): v for k, v in p.capa().items()}
        for c in ("USER", "UIDL", "TOP", "RESP-CODES"):
            assert c in capa, f"CAPA lacks {c}: {capa}"
        assert "PLAIN" in [x.upper() for x in capa.get("SASL", [])], f"CAPA SASL: {capa.get('SASL')}"
        assert "STLS" not in capa, "STLS must not be offered"
        with pytest.raises(poplib.error_proto):   # APOP is answered -ERR (poplib.apop would not even send it)
            p._shortcmd(f"APOP {bob.address} 0123456789abcdef0123456789abcdef")
    finally:
        p.quit()


def test_pop3_wrong_password(server, bob):
    p = poplib.POP3(HOST, server.pop3_port, timeout=20)
    try:
        p.user(bob.address)
        with pytest.raises(poplib.error_proto) as e:
            p.pass_("wrong-password-1")
        assert e.value.args[0].startswith(b"-ERR [AUTH]"), e.value.args[0]
    finally:
        p.quit()


def test_pop3_auth_plain(server, bob_with_three):
    bob, msgs, alice = bob_with_three
    p = poplib.POP3(HOST, server.pop3_port, timeout=20)
    try:
        resp = p._shortcmd("AUTH PLAIN " + b64plain(bob.address, bob.password))
        assert resp.startswith(b"+OK"), resp
        assert p.stat()[0] == 3
    finally:
        p.quit()
    # without an initial response: the "+ " continuation
    p = poplib.POP3(HOST, server.pop3_port, timeout=20)
    try:
        p._putcmd("AUTH PLAIN")
        cont = p._getline()[0]
        assert cont.startswith(b"+"), cont
        resp = p._shortcmd(b64plain(bob.address, bob.password))
        assert resp.startswith(b"+OK"), resp
    finally:
        p.quit()


def test_pop3_stat_list_uidl_retr_top(server, bob_with_three):
    bob, msgs, alice = bob_with_three
    p = pop_login(server, bob)
    try:
        count, total = p.stat()
        assert count == 3
        listing = [tuple(map(int, ln.split())) for ln in p.list()[1]]
        assert [n for n, _ in listing] == [1, 2, 3]
        assert total == sum(s for _, s in listing), f"STAT total {total} != sum of LIST {listing}"
        assert p.list(2).split()[1:] == [b"2", str(listing[1][1]).encode()]
        uidl = [ln.split() for ln in p.uidl()[1]]
        assert [int(n) for n, _ in uidl] == [1, 2, 3] and len({u for _, u in uidl}) == 3, uidl
        assert p.uidl(3).split()[1:] == uidl[2], "UIDL n differs from the UIDL listing"
        for n, sent in enumerate(msgs, 1):
            resp, lines, octets = p.retr(n)
            raw = b"".join(ln + CRLF for ln in lines)
            assert len(raw) == listing[n - 1][1], f"RETR {n}: {len(raw)} octets, LIST said {listing[n - 1][1]}"
            assert_same_message(sent, raw, sender=alice.address, what=f"RETR {n}")
        # TOP n 0: the header and the empty line; TOP n 1: plus the first body line
        raw2 = retr_bytes(p, 2)
        head, body = raw2.split(b"\r\n\r\n", 1)
        top0 = p.top(2, 0)[1]
        assert b"".join(ln + CRLF for ln in top0) == head + b"\r\n\r\n", f"TOP 2 0 = {top0!r}"
        top1 = p.top(2, 1)[1]
        assert b"".join(ln + CRLF for ln in top1) == head + b"\r\n\r\n" + body.split(b"\r\n")[0] + CRLF
        with pytest.raises(poplib.error_proto):
            p.retr(4)
        assert p.noop().startswith(b"+OK")
    finally:
        p.quit()


def test_pop3_dele_quit_and_rset(server, bob_with_three):
    bob, msgs, alice = bob_with_three
    p = pop_login(server, bob)
    uids = [ln.split()[1] for ln in p.uidl()[1]]
    assert p.dele(1).startswith(b"+OK")
    with pytest.raises(poplib.error_proto):
        p.retr(1)                              # deleted messages are not accessible
    assert p.stat()[0] == 2
    assert p.rset().startswith(b"+OK")
    assert p.stat()[0] == 3                    # RSET undeletes
    p.dele(1)
    p.dele(3)
    assert p.quit().startswith(b"+OK")
    got = fetch_all(server, bob)
    assert len(got) == 1, f"{len(got)} left after DELE 1, DELE 3, QUIT"
    assert_same_message(msgs[1], got[0], sender=alice.address)
    p = pop_login(server, bob)
    try:
        assert [ln.split()[1] for ln in p.uidl()[1]] == [uids[1]], "UID of the kept message changed"
    finally:
        p.quit()
    # MBOX-3: a new message never reuses a UID
    send_raw(server, alice, [bob.address], make_message(alice.address, bob.address, "new", f"new {token()}\n"))
    p = pop_login(server, bob)
    try:
        new_uids = [ln.split()[1] for ln in p.uidl()[1]]
    finally:
        p.quit()
    assert len(new_uids) == 2 and new_uids[0] == uids[1]
    assert new_uids[1] not in uids, f"UID {new_uids[1]!r} of a new message reuses a deleted message's UID"


def test_pop3_dropped_connection_deletes_nothing(server, bob_with_three):
    bob, msgs, alice = bob_with_three
    p = pop_login(server, bob)
    for n in (1, 2, 3):
        p.dele(n)
    p.sock.shutdown(socket.SHUT_RDWR)        # no QUIT: the session never reaches UPDATE
    p.sock.close()
    got = fetch_all(server, bob)              # (retries while the old session is still [IN-USE])
    assert len(got) == 3, f"a dropped connection deleted messages: {len(got)} left of 3"


def test_pop3_in_use(server, bob_with_three):
    bob = bob_with_three[0]
    first = pop_login(server, bob)
    try:
        second = poplib.POP3(HOST, server.pop3_port, timeout=20)
        try:
            second.user(bob.address)
            with pytest.raises(poplib.error_proto) as e:
                second.pass_(bob.password)
            assert e.value.args[0].startswith(b"-ERR [IN-USE]"), e.value.args[0]
        finally:
            second.quit()
        assert first.stat()[0] == 3, "first session disturbed by the refused second one"
    finally:
        first.quit()
    # after QUIT the lock is released at once
    p = poplib.POP3(HOST, server.pop3_port, timeout=20)
    p.user(bob.address)
    assert p.pass_(bob.password).startswith(b"+OK")
    p.quit()


def test_pop3_concurrent_logins_only_one_wins(server, bob_with_three):
    bob = bob_with_three[0]
    barrier = threading.Barrier(4)
    results = []

    def attempt():
        p = poplib.POP3(HOST, server.pop3_port, timeout=20)
        p.user(bob.address)
        barrier.wait()
        try:
            p.pass_(bob.password)
            results.append(("ok", p))
        except poplib.error_proto as e:
            results.append((e.args[0], p))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    oks = [p for r, p in results if r == "ok"]
    errs = [r for r, _ in results if r != "ok"]
    for _, p in results:
        try:
            p.quit()
        except Exception:
            pass
    assert len(oks) == 1, f"{len(oks)} concurrent sessions got the mailbox: {errs}"
    assert all(e.startswith(b"-ERR [IN-USE]") for e in errs), errs
