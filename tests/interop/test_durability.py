"""SMTP-7 / QA-4: kill -9 during concurrent submission loses no message that got its 250.

8 smtplib senders (one account each) submit distinct messages in a loop, each with a unique token
in its body, to two mailboxes (every 5th message to both). A message is "acknowledged" once DATA got
its 250. After ~2 s the server gets SIGKILL mid-load, is restarted on the same data folder, and
everything is fetched over POP3. Every acknowledged message must be there, byte-exact, once per
recipient; nothing present may be corrupt or duplicated. The figures are printed at the end.
"""
import email.utils
import os
import random
import re
import signal
import smtplib
import socket
import threading
import time

from conftest import FIGURES
from mailutil import assert_same_message, fetch_all, header, make_message, smtp_connect, token

SENDERS = 8
TOKEN_RE = re.compile(rb"\r\n\r\ntoken (\S+)\r\n")
LOAD_SECONDS = 2.0


def sizes():
    r = random.Random()
    while True:
        x = r.random()
        yield 200 if x < 0.6 else 4_000 if x < 0.9 else 60_000 if x < 0.98 else 400_000


def body_text(tok: str, n: int) -> str:
    line = "0123456789abcdefghijklmnopqrstuvwxyz-durability-" * 2 + "\n"
    lines = max(1, n // len(line))
    return f"token {tok}\n" + line * lines + f"end {tok}\n"


class Sender(threading.Thread):
    def __init__(self, server, acct, sinks, stop):
        super().__init__(daemon=True)
        self.server, self.acct, self.sinks, self.stop = server, acct, sinks, stop
        self.acked: list[tuple[str, bytes, list]] = []      # (token, message, recipients)
        self.attempted: dict[str, tuple[bytes, list]] = {}
        self.in_flight = False
        self.errors: list[str] = []

    def run(self):
        sz = sizes()
        i = 0
        while not self.stop.is_set():
            try:
                s = smtp_connect(self.server, self.acct, timeout=15)
            except (OSError, smtplib.SMTPException) as e:
                self.errors.append(f"connect: {e!r}")
                return                                          # server is gone
            try:
                for _ in range(500):                            # many messages per login (AUTH is slow by design)
                    if self.stop.is_set():
                        break
                    i += 1
                    rcpts = [self.sinks[i % 2].address] if i % 5 else [s.address for s in self.sinks]
                    tok = token(f"{self.acct.name}-{i}")
                    msg = make_message(self.acct.address, rcpts, f"durability {i}", body_text(tok, next(sz)))
                    self.attempted[tok] = (msg, rcpts)
                    self.in_flight = True
                    s.sendmail(self.acct.address, rcpts, msg)   # returns only after 250 to DATA
                    self.in_flight = False
                    self.acked.append((tok, msg, rcpts))
                s.quit()
            except (OSError, smtplib.SMTPException, socket.timeout) as e:
                self.in_flight = False
                self.errors.append(repr(e))
                if self.stop.is_set() or not self.server.alive():
                    return
                time.sleep(0.05)


def one_round(server, senders_accts, sinks, round_no):
    stop = threading.Event()
    threads = [Sender(server, a, sinks, stop) for a in senders_accts]
    for t in threads:
        t.start()
    # wait until every sender is past its login and submitting, then let the load run
    deadline = time.monotonic() + 30
    while not all(t.acked for t in threads) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(LOAD_SECONDS)
    in_flight = sum(t.in_flight for t in threads)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a sender thread hangs after the kill"
    acked = [a for t in threads for a in t.acked]
    attempted = {k: v for t in threads for k, v in t.attempted.items()}
    return acked, attempted, in_flight


def test_kill_minus_9_loses_no_acknowledged_message(make_server):
    # a large quota so that a fast server does not fill the two sink mailboxes during the load
    server = make_server({"limits": {"mailbox_quota": "2GB"}}, name="durability")
    senders_accts = [server.add_account(f"s{i}") for i in range(SENDERS)]
    sinks = [server.add_account("sink"), server.add_account("sink")]
    rounds = int(os.environ.get("POSTERN_KILL_ROUNDS", "1"))
    all_acked: list = []
    all_attempted: dict = {}
    in_flight_total = 0
    restart_s = 0.0
    for r in range(rounds):
        acked, attempted, in_flight = one_round(server, senders_accts, sinks, r)
        assert acked, "no message was acknowledged before the kill; the test proves nothing\n" + server.log_tail()
        all_acked += acked
        all_attempted.update(attempted)
        in_flight_total += in_flight
        t0 = time.monotonic()
        server.start()
        restart_s = time.monotonic() - t0

    # what is in the mailboxes now
    present: dict[str, list[tuple[str, bytes]]] = {}     # token -> [(sink address, raw)]
    corrupt = []
    for sink in sinks:
        for raw in fetch_all(server, sink):
            m = TOKEN_RE.search(raw)
            if not m or m.group(1).decode() not in all_attempted:
                corrupt.append((sink.address, raw[:200]))
                continue
            present.setdefault(m.group(1).decode(), []).append((sink.address, raw))

    missing, damaged, dup = [], [], []
    acked_tokens = set()
    for tok, msg, rcpts in all_acked:
        acked_tokens.add(tok)
        got = present.get(tok, [])
        for rc in rcpts:
            copies = [raw for addr, raw in got if addr == rc]
            if not copies:
                missing.append((tok, rc))
            elif len(copies) > 1:
                dup.append((tok, rc))
    for tok, copies in present.items():
        msg, rcpts = all_attempted[tok]
        for addr, raw in copies:
            try:
                assert_same_message(msg, raw, sender=email.utils.parseaddr(header(msg, "From"))[1])
            except AssertionError as e:
                damaged.append((tok, addr, str(e)[:300]))
        if len({a for a, _ in copies}) != len(copies):
            dup.append((tok, "several copies"))
    unacked_present = [t for t in present if t not in acked_tokens]
    acked_deliveries = sum(len(r) for _, _, r in all_acked)
    present_deliveries = sum(len(c) for c in present.values())

    figures = (f"kill -9 durability: {rounds} round(s), {SENDERS} senders, ~{LOAD_SECONDS:.0f} s load each; "
               f"acknowledged {len(all_acked)} messages ({acked_deliveries} mailbox deliveries); "
               f"present after restart {len(present)} messages ({present_deliveries} deliveries); "
               f"acknowledged but missing {len(missing)}; unacknowledged but present {len(unacked_present)}; "
               f"damaged {len(damaged)}; duplicated {len(dup)}; unparseable {len(corrupt)}; "
               f"sessions in DATA at the kill {in_flight_total}; restart {restart_s:.2f} s")
    FIGURES.append(figures)
    print(figures)
    assert not missing, f"{len(missing)} acknowledged deliveries lost, e.g. {missing[:5]}\n{figures}"
    assert not damaged, f"{len(damaged)} stored messages differ from what was sent: {damaged[:3]}\n{figures}"
    assert not corrupt, f"{len(corrupt)} stored messages are unrecognisable: {corrupt[:3]}\n{figures}"
    assert not dup, f"{len(dup)} duplicated deliveries: {dup[:5]}\n{figures}"

