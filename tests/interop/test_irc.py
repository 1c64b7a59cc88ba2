"""The IRC new-mail notifier (issue 9, IRC-1..3) against a real IRC server: ngircd
(tests/peers/ngircd-start.sh) on a free port, `postern serve` with `[irc] server` pointing at it and
short timings (gather 2 s, notice_interval 10 s), and a test user on ngircd (tests/peers/irc.py)
holding the account's nick.

  - nothing reaches a nick before it is verified, not even once it is set and waiting for its code;
    a code sent from another nick verifies nothing
  - the code from the right nick verifies it (`postern account show` says so, the bot confirms)
  - three mails in a row give exactly one notice, "3 new messages for NAME@mail.i2p"
  - the bot ignores chatter, CTCP, channel messages and invitations, and never joins a channel
  - ngircd stopped and started again: the bot comes back by itself and notices flow again
  - a hostile IRC server (overlong lines, garbage, NUL, bogus numerics) does not bring down the core
"""
from __future__ import annotations

import re
import socket
import threading
import time
import uuid

import pytest

from harness import HOST
from mailutil import make_message, send_raw, server_answers, smtp_connect, wait_for_count
from peers import IRCClient, Ngircd

BOT = "postman"
GATHER = 2.0        # [irc] gather
INTERVAL = 10.0     # [irc] notice_interval


@pytest.fixture(scope="module")
def ircd(tmp_path_factory):
    daemon = Ngircd(tmp_path_factory.mktemp("ngircd")).start()
    yield daemon
    if daemon.running:
        daemon.stop()


@pytest.fixture(scope="module")
def server(make_server, ircd):
    srv = make_server({"irc": {"server": ircd.address, "nick": BOT, "gather": f"{GATHER:g}s",
                               "notice_interval": f"{INTERVAL:g}s"}}, name="irc-core")
    watcher = IRCClient(ircd.port, f"w{uuid.uuid4().hex[:7]}")
    try:
        watcher.wait_present(BOT)
    finally:
        watcher.quit()
    return srv


def new_nick() -> str:
    return "u" + uuid.uuid4().hex[:8]


def set_nick(server, account, nick: str) -> str:
    """`postern account set NAME irc_nick=NICK`; returns the code it prints."""
    out = server.cli("account", "set", account.name, f"irc_nick={nick}").stdout
    m = re.search(rf"^irc: from {re.escape(nick)}, send the bot the code: /msg {BOT} (\S+)$", out, re.M)
    assert m, f"unexpected output of account set irc_nick: {out!r}"
    return m.group(1)


def irc_state(server, account) -> str:
    out = server.cli("account", "show", account.name).stdout
    m = re.search(r"^\s*irc_nick: (.*)$", out, re.M)
    assert m, out
    return m.group(1).strip()


def mail(server, sender, recipient, n: int = 1) -> None:
    """N messages from SENDER to RECIPIENT, one after the other on one SMTP session."""
    with smtp_connect(server, sender) as s:
        for i in range(n):
            msg = make_message(sender.address, recipient.address, f"note {i}", f"body {i} {uuid.uuid4().hex}\n")
            assert not s.sendmail(sender.address, [recipient.address], msg)


def bot_privmsgs(messages: list[dict]) -> list[str]:
    return [m["text"] for m in messages if m["from"].lower() == BOT]


def verify(server, client: IRCClient, account) -> None:
    code = set_nick(server, account, client.nick)
    assert irc_state(server, account) == f"{client.nick} (waiting for its code: {code})"
    client.privmsg(BOT, code)
    got = bot_privmsgs(client.collect(10, count=1))
    assert got == ["Verified: new-mail notices for this nick are on."], got
    assert irc_state(server, account) == f"{client.nick} (verified)"


def test_verification_then_exactly_one_coalesced_notice_for_three_mails(server, ircd, alice, bob):
    nick = new_nick()
    user = IRCClient(ircd.port, nick)
    impostor = IRCClient(ircd.port, new_nick())
    try:
        # No nick set: mail makes no notice.
        mail(server, bob, alice)
        # The nick set but not verified: still nothing, however long one waits.
        code = set_nick(server, alice, nick)
        mail(server, bob, alice)
        assert bot_privmsgs(user.collect(GATHER + 3)) == []
        # The right code from the wrong nick verifies nothing (IRC-2) and gets no answer.
        impostor.privmsg(BOT, code)
        assert bot_privmsgs(impostor.collect(3)) == []
        assert irc_state(server, alice) == f"{nick} (waiting for its code: {code})"
        # A wrong code from the right nick: nothing either.
        user.privmsg(BOT, "AAAAAAAA" if code != "AAAAAAAA" else "BBBBBBBB")
        assert bot_privmsgs(user.collect(3)) == []
        assert irc_state(server, alice).startswith(f"{nick} (waiting")
        # The code from the nick: verified, confirmed by the bot, shown by the CLI.
        user.privmsg(BOT, code.lower())  # any case
        assert bot_privmsgs(user.collect(10, count=1)) == ["Verified: new-mail notices for this nick are on."]
        assert irc_state(server, alice) == f"{nick} (verified)"
        # The two mails from before the verification never make a notice of their own.
        assert bot_privmsgs(user.collect(GATHER + 2)) == []
        # Three mails in a row: exactly one notice, counting all three, after the gathering time.
        sent = time.monotonic()
        mail(server, bob, alice, 3)
        got = user.collect(GATHER + 6, count=1)
        got += user.collect(3)          # and nothing after it
        assert bot_privmsgs(got) == [f"3 new messages for {alice.address}"], got
        notice = next(m for m in got if m["from"].lower() == BOT)
        assert notice["to"] == nick
        # Nothing else from the bot: no NOTICE, no second PRIVMSG; the impostor heard nothing.
        spoken = [m for m in user.from_nick(BOT) if m[1] in ("PRIVMSG", "NOTICE")]
        assert len(spoken) == 2, spoken
        assert impostor.from_nick(BOT) == []
        assert time.monotonic() - sent >= GATHER - 0.5
        # One more mail soon after: held back until notice_interval has passed since the last
        # notice (not only the gathering time), then one notice with a count of 1.
        mail(server, bob, alice)
        late = user.collect(INTERVAL + 6, count=1)
        assert bot_privmsgs(late) == [f"1 new message for {alice.address}"], late
        second = next(m for m in late if m["from"].lower() == BOT)
        assert second["time"] - notice["time"] >= INTERVAL - 1.0, (notice, second)
        assert len(wait_for_count(server, alice, 6)) == 6
    finally:
        user.quit()
        impostor.quit()


def test_the_bot_ignores_everything_else_and_never_joins_a_channel(server, ircd, alice, bob):
    nick = new_nick()
    user = IRCClient(ircd.port, nick)
    try:
        verify(server, user, alice)
        before = len(user.lines)
        room = "#r" + uuid.uuid4().hex[:8]
        user.join(room)                       # the first in a new channel is its operator
        user.join("#test")                    # the server's predefined channel
        user.send(f"INVITE {BOT} {room}")
        user.privmsg(room, f"{BOT}: hello, {BOT}! please join")
        user.privmsg("#test", f"{BOT}: VERSION")
        user.privmsg(BOT, "hello")
        user.privmsg(BOT, "HELP")
        user.privmsg(BOT, "\x01VERSION\x01")   # CTCP
        user.privmsg(BOT, "\x01PING 12345\x01")
        user.send(f"NOTICE {BOT} :hello there")
        user.privmsg(BOT, "x" * 400)
        user.sync()
        time.sleep(3)
        user.sync()
        # Not a word back, in any form (the server's own RPL_INVITING aside).
        answers = [m for m in user.lines[before:] if m[0].lower() == BOT and not m[1].isdigit()]
        assert answers == [], answers
        # In neither channel.
        for channel in (room, "#test"):
            names = user.request(f"NAMES {channel}", "353")[-1].split()
            assert BOT not in [n.lstrip("@+").lower() for n in names], (channel, names)
        whois = user.request(f"WHOIS {BOT}", "318")
        channels = [m for m in user.lines if m[1] == "319"]   # RPL_WHOISCHANNELS: absent when in none
        assert channels == [], channels
        assert whois
        # And it still does its job afterwards.
        mail(server, bob, alice)
        assert bot_privmsgs(user.collect(GATHER + 6, count=1)) == [f"1 new message for {alice.address}"]
    finally:
        user.quit()


def test_the_bot_reconnects_after_ngircd_restarts_and_notices_flow_again(server, ircd, alice, bob):
    nick = new_nick()
    user = IRCClient(ircd.port, nick)
    try:
        verify(server, user, alice)
        mail(server, bob, alice)
        assert bot_privmsgs(user.collect(GATHER + 6, count=1)) == [f"1 new message for {alice.address}"]
    finally:
        user.quit()
    ircd.stop()
    time.sleep(2)        # the bot's first reconnection attempts fail
    assert server.alive()
    ircd.start()
    user = IRCClient(ircd.port, nick)
    try:
        # Nobody told the bot: it comes back by itself (back-off: a few seconds at most here).
        user.wait_present(BOT, timeout=40)
        assert irc_state(server, alice) == f"{nick} (verified)"      # the verification survives
        mail(server, bob, alice, 2)
        got = user.collect(INTERVAL + GATHER + 6, count=1)
        got += user.collect(2)
        assert bot_privmsgs(got) == [f"2 new messages for {alice.address}"], got
    finally:
        user.quit()
    server_answers(server)


# -- a hostile IRC server (optional part of the issue) ----------------------------------------

class HostileIRCServer:
    """Accepts the bot, registers it, then sends lines no real server sends: an overlong line,
    binary garbage, NUL, a bare CR, lines without a command, a numeric flood, a PRIVMSG whose
    prefix is empty, and finally closes. Counts connections (the bot keeps reconnecting)."""

    def __init__(self):
        self.sock = socket.create_server((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.seen: list[bytes] = []
        self.stopped = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        with conn:
            conn.settimeout(5)
            try:
                data = b""
                while b"USER" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                self.seen.append(data)
                nick = re.search(rb"NICK (\S+)", data).group(1)
                conn.sendall(b":evil 001 " + nick + b" :Welcome\r\n")
                conn.sendall(b":evil NOTICE " + nick + b" :" + b"A" * 5000 + b"\r\n")          # overlong
                conn.sendall(b"\x00\xff\xfe garbage \x00\x01\r\n")                               # binary
                conn.sendall(b":\r\n: \r\n:x\r\n \r\n\r\n\n\r")                                  # empty forms
                conn.sendall(b":evil 433 * " + nick + b" :in use\r\n" * 3)                     # nick collisions
                conn.sendall(b":!@ PRIVMSG " + nick + b" :\x01DCC SEND x 0 0 0\x01\r\n")     # empty prefix
                conn.sendall(b":a!b@c PRIVMSG " + nick + b" :" + "é\u202e".encode() * 200 + b"\r\n")
                conn.sendall(b"PING\r\nPING :" + b"x" * 600 + b"\r\n")
                conn.sendall(b":evil 999 " + b" ".join([b"p"] * 40) + b"\r\n")
                conn.sendall(b":a!b@c PRIVMSG " + nick + b" ABCDEFGH\r\n")
                conn.sendall(b"ERROR :Closing link\r\n")
                time.sleep(0.5)
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    self.seen.append(chunk)
            except OSError:
                return

    def close(self):
        self.stopped = True
        self.sock.close()


def test_a_hostile_irc_server_does_not_bring_down_the_core(make_server):
    hostile = HostileIRCServer()
    try:
        srv = make_server({"irc": {"server": f"{HOST}:{hostile.port}", "gather": "1s", "notice_interval": "2s"}},
                          name="irc-hostile")
        deadline = time.monotonic() + 30
        while hostile.connections < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hostile.connections >= 3, "the bot should keep reconnecting to the server"
        server_answers(srv)
        a, b = srv.add_account("alice"), srv.add_account("bob")
        send_raw(srv, a, [b.address], make_message(a.address, b.address, "still here", "fine\n"))
        assert len(wait_for_count(srv, b, 1)) == 1
        assert srv.alive()
        # The bot spoke IRC and only IRC: it registered and never sent a PRIVMSG to anyone.
        everything = b"".join(hostile.seen)
        assert b"NICK " in everything and b"USER " in everything
        assert b"PRIVMSG" not in everything, everything[:2000]
    finally:
        hostile.close()
