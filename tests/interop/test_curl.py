"""curl as SMTP submitter and POP3 client (SMTP-2, POP-1..3)."""
import email.utils

import pytest

from clients import curl_pop3, curl_smtp_send, out
from mailutil import assert_same_message, fetch_all, header, make_message, pop_login, send_raw, token


@pytest.fixture(autouse=True)
def _curl(tool):
    tool("curl")


def parse_listing(text: bytes) -> list[tuple[int, str]]:
    rows = []
    for line in text.decode().replace("\r\n", "\n").split("\n"):
        if line.strip():
            n, v = line.split()
            rows.append((int(n), v))
    return rows


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_curl_smtp_send(server, tmp_path, alice, bob, carol, mech):
    tok = token("curl")
    msg = make_message(alice.address, [bob.address, carol.address], f"curl send {mech}",
                       f"sent by curl {tok}\n..two dots\n.\n")
    cp = curl_smtp_send(server, tmp_path, alice, [bob.address, carol.address], msg, mech=mech)
    assert cp.returncode == 0, f"curl exit {cp.returncode}\n{out(cp)}"
    for who in (bob, carol):
        got = fetch_all(server, who)
        assert len(got) == 1, f"{who} has {len(got)} messages"
        assert_same_message(msg, got[0], sender=alice.address, what=f"curl -> {who}")


def test_curl_smtp_wrong_password(server, tmp_path, alice, bob):
    msg = make_message(alice.address, bob.address, "nope", "nope\n")
    alice.password = "wrong-password-xyz"
    cp = curl_smtp_send(server, tmp_path, alice, [bob.address], msg)
    assert cp.returncode == 67, f"curl exit {cp.returncode} (expected 67: login denied)\n{out(cp)}"
    assert "535" in out(cp)


@pytest.fixture
def bob_with_two(server, alice, bob):
    msgs = [make_message(alice.address, bob.address, f"for curl pop3 #{i}", f"message {i} {token()}\n.dot line\n")
            for i in (1, 2)]
    for m in msgs:
        send_raw(server, alice, [bob.address], m)
    return bob, msgs


def test_curl_pop3_list(server, bob_with_two):
    bob, msgs = bob_with_two
    cp = curl_pop3(server, bob, "/")
    assert cp.returncode == 0, out(cp)
    rows = parse_listing(cp.stdout)
    assert [n for n, _ in rows] == [1, 2], rows
    # LIST sizes are exact octet counts of what RETR returns (RFC 1939)
    for n, size in rows:
        body = curl_pop3(server, bob, f"/{n}").stdout
        assert int(size) == len(body), f"LIST says {size} octets for #{n}, RETR gave {len(body)}"


def test_curl_pop3_retrieve(server, bob_with_two):
    bob, msgs = bob_with_two
    for n, sent in enumerate(msgs, 1):
        cp = curl_pop3(server, bob, f"/{n}")
        assert cp.returncode == 0, out(cp)
        assert_same_message(sent, cp.stdout, sender=_sender(sent), what=f"curl RETR {n}")


def _sender(msg: bytes) -> str:
    return email.utils.parseaddr(header(msg, "From"))[1]


def test_curl_pop3_uidl(server, bob_with_two):
    bob, _ = bob_with_two
    cp = curl_pop3(server, bob, "/", "-X", "UIDL")
    assert cp.returncode == 0, out(cp)
    rows = parse_listing(cp.stdout)
    assert [n for n, _ in rows] == [1, 2], rows
    uids = [u for _, u in rows]
    assert len(set(uids)) == 2, f"UIDs not unique: {uids}"
    for u in uids:
        assert 1 <= len(u) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in u), f"bad UID {u!r} (RFC 1939)"
    p = pop_login(server, bob)
    try:
        assert [ln.decode().split() for ln in p.uidl()[1]] == [[str(n), u] for n, u in rows], "UIDs differ between sessions"
    finally:
        p.quit()


def test_curl_pop3_dele(server, bob_with_two):
    bob, msgs = bob_with_two
    p = pop_login(server, bob)
    uids = [ln.decode().split()[1] for ln in p.uidl()[1]]
    p.quit()
    # -I: DELE answers no multi-line body; curl sends QUIT at the end, so the deletion is committed
    cp = curl_pop3(server, bob, "/1", "-X", "DELE", "-I")
    assert cp.returncode == 0, out(cp)
    left = fetch_all(server, bob)
    assert len(left) == 1, f"expected 1 message after DELE 1 + QUIT, found {len(left)}"
    assert_same_message(msgs[1], left[0], sender=_sender(msgs[1]), what="message kept after DELE 1")
    p = pop_login(server, bob)
    try:
        assert [ln.decode().split()[1] for ln in p.uidl()[1]] == [uids[1]], "remaining message changed its UID"
    finally:
        p.quit()
