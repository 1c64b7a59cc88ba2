"""Messages, comparison, and small SMTP/POP3 helpers shared by the interop tests."""
from __future__ import annotations

import base64
import contextlib
import email.utils
import poplib
import re
import smtplib
import socket
import time
import uuid
from dataclasses import dataclass, field

from harness import HOST, Account, PosternServer

CRLF = b"\r\n"


# -- messages -------------------------------------------------------------------------------------

def token(prefix: str = "tok") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def make_message(sender: str, to: str | list[str], subject: str, body: bytes | str,
                 extra_headers: list[tuple[str, str]] = (), display_name: str | None = None) -> bytes:
    """An RFC 5322 message with CRLF line ends; the body's line ends are turned into CRLF."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not body.endswith(CRLF):
        body += CRLF
    rcpts = [to] if isinstance(to, str) else list(to)
    frm = f'"{display_name}" <{sender}>' if display_name else f"<{sender}>"
    hdr = [("From", frm), ("To", ", ".join(rcpts)), ("Subject", subject),
           ("Date", email.utils.format_datetime(email.utils.localtime())),
           ("Message-ID", f"<{uuid.uuid4().hex}@client.example>"), ("MIME-Version", "1.0"),
           ("Content-Type", "text/plain; charset=utf-8"), ("Content-Transfer-Encoding", "8bit"),
           *extra_headers]
    head = b"".join(f"{k}: {v}".encode("utf-8") + CRLF for k, v in hdr)
    return head + CRLF + body


def split_message(raw: bytes) -> tuple[bytes, bytes]:
    """(header, body) split at the first empty line; CRLF and (for client-mangled copies) LF."""
    i = raw.find(b"\r\n\r\n")
    j = raw.find(b"\n\n")
    if i >= 0 and (j < 0 or i <= j):
        return raw[:i + 2], raw[i + 4:]
    if j >= 0:
        return raw[:j + 1], raw[j + 2:]
    return raw, b""


def header_fields(raw: bytes) -> list[tuple[str, str]]:
    """Unfolded (name, value) pairs of the header section, in order."""
    head, _ = split_message(raw)
    text = head.decode("utf-8", "replace").replace("\r\n", "\n")
    fields: list[tuple[str, str]] = []
    for line in text.split("\n"):
        if not line:
            continue
        if line[0] in " \t" and fields:
            n, v = fields[-1]
            fields[-1] = (n, v + " " + line.strip())
        elif ":" in line:
            n, v = line.split(":", 1)
            fields.append((n.strip(), v.strip()))
    return fields


def header(raw: bytes, name: str) -> str | None:
    for n, v in header_fields(raw):
        if n.lower() == name.lower():
            return v
    return None


def body_of(raw: bytes) -> bytes:
    return split_message(raw)[1]


def assert_same_message(sent: bytes, got: bytes, *, sender: str, what: str = "message") -> None:
    """THE comparison of a submitted message with what a client fetched back.

    Today the server stores the submitted message unchanged. The privacy policy (PRIV-1/2) will
    rewrite headers later, so only this is required: the BODY is byte-exact, the Subject is the
    same, and the From address is the sender's (display name may change). Tighten here, once.
    """
    sent_body, got_body = body_of(sent), body_of(got)
    if sent_body != got_body:
        raise AssertionError(f"{what}: body differs\n sent {len(sent_body)} octets: {sent_body[:300]!r}"
                             f"\n  got {len(got_body)} octets: {got_body[:300]!r}\n full got: {got[:800]!r}")
    assert header(got, "Subject") == header(sent, "Subject"), \
        f"{what}: Subject {header(got, 'Subject')!r} != sent {header(sent, 'Subject')!r}"
    frm = header(got, "From")
    assert frm is not None, f"{what}: no From header in {got[:500]!r}"
    addr = email.utils.parseaddr(frm)[1]
    assert addr.lower() == sender.lower(), f"{what}: From {frm!r} is not the sender {sender}"


def find_by_token(messages: list[bytes], tok: str) -> list[bytes]:
    b = tok.encode()
    return [m for m in messages if b in m]


# -- SMTP -----------------------------------------------------------------------------------------

ENH_RE = re.compile(r"^(\d)\.(\d{1,3})\.(\d{1,3})$")


@dataclass
class Reply:
    code: int
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def enhanced(self) -> str | None:
        """The enhanced status code (RFC 2034) of the last line, e.g. '5.7.1'."""
        if not self.lines:
            return None
        parts = self.lines[-1][4:].split(" ", 1)
        return parts[0] if parts and ENH_RE.match(parts[0]) else None

    def __str__(self) -> str:
        return self.text


class Closed(Exception):
    pass


class RawSMTP:
    """A byte-level SMTP client: it sends exactly what it is given, reads replies verbatim."""

    def __init__(self, port: int, timeout: float = 15.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""
        self.banner = self.read_reply()

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed(f"connection closed by server (pending {self.buf!r})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def read_reply(self) -> Reply:
        lines = []
        while True:
            line = self._line().decode("utf-8", "replace")
            if len(line) < 3 or not line[:3].isdigit():
                raise AssertionError(f"malformed reply line {line!r}")
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                return Reply(int(line[:3]), lines)

    def cmd(self, line: str | bytes) -> Reply:
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + CRLF)
        return self.read_reply()

    def is_closed(self, wait: float = 5.0) -> bool:
        """True if the server closes the connection (EOF) within `wait` seconds."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except OSError:
            return True

    def login(self, acct: Account) -> None:
        r = self.cmd("EHLO client.example")
        assert r.code == 250, r
        r = self.cmd("AUTH PLAIN " + b64plain(acct.address, acct.password))
        assert r.code == 235, f"AUTH PLAIN for {acct}: {r}"


def b64plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def expect(reply: Reply, first_digit: int, enhanced: str | None = None, *, what: str = "") -> None:
    """Strict on the first digit and the enhanced code's class (or the full enhanced code when a
    dotted code is given); tolerant on the text."""
    ctx = f"{what}: " if what else ""
    assert reply.code // 100 == first_digit, f"{ctx}expected {first_digit}xx, got {reply.text!r}"
    if enhanced is not None:
        got = reply.enhanced
        assert got is not None, f"{ctx}no enhanced status code in {reply.text!r}"
        if "." in enhanced:
            assert got == enhanced, f"{ctx}expected enhanced {enhanced}, got {reply.text!r}"
        else:
            assert got.split(".")[0] == enhanced, f"{ctx}expected enhanced class {enhanced}.x.x, got {reply.text!r}"


def expect_code(reply: Reply, code: int, enhanced: str | None = None, *, what: str = "") -> None:
    ctx = f"{what}: " if what else ""
    assert reply.code == code, f"{ctx}expected {code} {enhanced or ''}, got {reply.text!r}"
    if enhanced is not None:
        assert reply.enhanced == enhanced, f"{ctx}expected {code} {enhanced}, got {reply.text!r}"


def dot_stuff(data: bytes) -> bytes:
    lines = data.split(CRLF)
    return CRLF.join(b"." + ln if ln.startswith(b".") else ln for ln in lines)


class RecordingSMTP(smtplib.SMTP):
    """smtplib.SMTP that remembers the exact message bytes handed to DATA (before dot-stuffing),
    i.e. what the server must store."""

    def __init__(self, *a, **kw):
        self.sent_data: list[bytes] = []
        super().__init__(*a, **kw)

    def data(self, msg):
        if isinstance(msg, str):
            msg = smtplib._fix_eols(msg).encode("ascii")
        stored = msg if msg.endswith(CRLF) else msg + CRLF
        code, resp = super().data(msg)
        if code == 250:
            self.sent_data.append(stored)
        return code, resp


def smtp_connect(server: PosternServer, acct: Account | None = None, timeout: float = 20.0) -> RecordingSMTP:
    s = RecordingSMTP(HOST, server.smtp_port, local_hostname="client.example", timeout=timeout)
    s.ehlo()
    if acct is not None:
        s.login(acct.address, acct.password)
    return s


def send_raw(server: PosternServer, acct: Account, rcpts: list[str], data: bytes) -> None:
    """Submit exactly `data` (CRLF message) from acct; raises on any refusal."""
    with smtp_connect(server, acct) as s:
        refused = s.sendmail(acct.address, rcpts, data)
        assert not refused, f"recipients refused: {refused}"


# -- POP3 -----------------------------------------------------------------------------------------

def pop_login(server: PosternServer, acct: Account, timeout: float = 20.0, in_use_wait: float = 10.0) -> poplib.POP3:
    """USER/PASS login; retries while the mailbox is still [IN-USE] by a session that just ended
    (the server may notice a closed connection a moment later)."""
    deadline = time.monotonic() + in_use_wait
    while True:
        p = poplib.POP3(HOST, server.pop3_port, timeout=timeout)
        try:
            p.user(acct.address)
            p.pass_(acct.password)
            return p
        except poplib.error_proto as e:
            with contextlib.suppress(Exception):
                p.close()
            if b"[IN-USE]" in e.args[0] and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise


def retr_bytes(p: poplib.POP3, n: int) -> bytes:
    """RETR n as the message bytes (poplib strips CRLF and undoes dot-stuffing)."""
    resp, lines, _octets = p.retr(n)
    assert resp.startswith(b"+OK"), resp
    return b"".join(line + CRLF for line in lines)


def fetch_all(server: PosternServer, acct: Account, delete: bool = False) -> list[bytes]:
    p = pop_login(server, acct)
    try:
        count, _ = p.stat()
        msgs = [retr_bytes(p, i) for i in range(1, count + 1)]
        if delete:
            for i in range(1, count + 1):
                p.dele(i)
    finally:
        p.quit()
    return msgs


def pop_stat(server: PosternServer, acct: Account) -> tuple[int, int]:
    p = pop_login(server, acct)
    try:
        return p.stat()
    finally:
        p.quit()


def wait_for_count(server: PosternServer, acct: Account, n: int, timeout: float = 10.0) -> list[bytes]:
    """Poll until the mailbox holds at least n messages; return them all."""
    deadline = time.monotonic() + timeout
    while True:
        count, _ = pop_stat(server, acct)
        if count >= n or time.monotonic() > deadline:
            msgs = fetch_all(server, acct)
            assert len(msgs) >= n, f"{acct}: expected {n} message(s), mailbox has {len(msgs)}"
            return msgs
        time.sleep(0.1)


def server_answers(server: PosternServer) -> None:
    """The server is alive and serves a fresh SMTP and POP3 connection."""
    assert server.alive(), "postern serve is no longer running\n" + server.log_tail()
    with RawSMTP(server.smtp_port, timeout=10) as c:
        expect(c.banner, 2, what="banner on a new connection")
        expect(c.cmd("EHLO client.example"), 2, what="EHLO on a new connection")
        expect(c.cmd("QUIT"), 2, what="QUIT")
    p = poplib.POP3(HOST, server.pop3_port, timeout=10)
    assert p.getwelcome().startswith(b"+OK")
    p.quit()
