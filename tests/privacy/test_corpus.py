"""The privacy sanitiser on a corpus of real client messages (issue 3; SPEC PRIV-1, PRIV-2, PRIV-3).

Every message in tests/corpus/messages (written by mutt, neomutt, s-nail, mailutils, git
send-email + msmtp, curl, swaks and Python's email package; see tests/corpus/generate.sh) is
submitted over SMTP with AUTH as alice@mail.i2p, exactly as the client sent it, and fetched back
from bob's mailbox over POP3. The fetched copy must:

  * carry only the PRIV-1 header fields (no Bcc, Received, User-Agent, X-*, ...), and only the
    PRIV-3 fields in MIME part headers;
  * leak nothing in its header or part headers: no IPv4/IPv6 address, no host name (the one the
    client ran on, its HELO, this machine's), no client name/version, no original Message-ID, no
    time zone other than +0000, no Content-Disposition date parameter -- and no original MIME
    boundary anywhere;
  * have Date = release time, UTC, seconds :00, and a fresh random Message-ID @mail.i2p (PRIV-2);
  * keep From's display name with the address forced to alice@mail.i2p;
  * decode to the same bytes, part by part; keep RFC 2047 subjects, RFC 2231 file names and
    In-Reply-To/References;
  * still verify (multipart/signed: the signed part is byte-identical) and still decrypt.

What is inside the signed part of a multipart/signed (its boundaries, part headers, file dates)
is exempt from the leak checks: the signature covers those bytes, so they must not change.
"""
from __future__ import annotations

import datetime
import email.utils
import json
import re
import smtplib
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import mimecheck as mc
from harness import HOST
from mailutil import pop_login, retr_bytes

REPO = Path(__file__).resolve().parents[2]
MESSAGES = REPO / "tests" / "corpus" / "messages"
INDEX = json.loads((MESSAGES / "index.json").read_text(encoding="utf-8"))
ENTRIES = INDEX["messages"]
IDS = [e["file"][:-4] for e in ENTRIES]
SIGNED = [e for e in ENTRIES if e["signed"]]
ENCRYPTED = [e for e in ENTRIES if e["encrypted"]]
PART_FIELDS = {"content-type", "content-transfer-encoding", "content-disposition", "content-id",
               "content-description"}
TEST_HELO = "corpus-submitter.example"
ALICE = "alice@mail.i2p"


def ids(entries):
    return [e["file"][:-4] for e in entries]


# -- submission and retrieval ---------------------------------------------------------------------

@dataclass
class Delivery:
    original: bytes
    fetched: bytes | None
    sent_at: float
    fetched_at: float
    error: str | None = None
    # Message-IDs Postern had given alice's earlier messages at the time this one was sent:
    # original id -> replacement. Postern rewrites In-Reply-To/References with them (threading
    # across its Message-ID replacement, PRIV-2).
    replaced: dict = field(default_factory=dict)

    def got(self) -> bytes:
        if self.error is not None:
            raise AssertionError(self.error)
        return self.fetched


def submit(srv, password: str, entry: dict, raw: bytes) -> None:
    opts = []
    if entry["needs_smtputf8"]:
        opts.append("SMTPUTF8")
    if entry["has_8bit"]:
        opts.append("BODY=8BITMIME")
    with smtplib.SMTP(HOST, srv.smtp_port, local_hostname=TEST_HELO, timeout=30) as s:
        s.ehlo()
        s.login(ALICE, password)
        refused = s.sendmail(ALICE, entry["envelope"]["rcpt_to"], raw, mail_options=opts)
        assert not refused, f"recipients refused: {refused}"


def drain(srv, acct, wait: float = 10.0) -> list[bytes]:
    """All messages in acct's mailbox (waits for at least one), then deletes them."""
    deadline = time.monotonic() + wait
    while True:
        p = pop_login(srv, acct)
        try:
            count, _ = p.stat()
            if count or time.monotonic() > deadline:
                msgs = [retr_bytes(p, i) for i in range(1, count + 1)]
                for i in range(1, count + 1):
                    p.dele(i)
                return msgs
        finally:
            p.quit()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def delivered(corpus_server):
    """delivered(entry) -> Delivery: the message submitted once, fetched from bob once."""
    srv, accts = corpus_server
    cache: dict[str, Delivery] = {}
    replaced: dict[str, str] = {}

    def get(entry: dict) -> Delivery:
        name = entry["file"]
        if name in cache:
            return cache[name]
        raw = (MESSAGES / name).read_bytes()
        t0 = time.time()
        try:
            submit(srv, accts["alice"].password, entry, raw)
            got = drain(srv, accts["bob"])
            for r in entry["envelope"]["rcpt_to"]:
                if r.startswith("carol@"):
                    drain(srv, accts["carol"], wait=2)
            if len(got) != 1:
                raise AssertionError(f"bob's mailbox holds {len(got)} messages after submitting {name} (expected 1)")
            d = Delivery(raw, got[0], t0, time.time(), replaced=dict(replaced))
            oh, _ = mc.split_entity(raw)
            gh, _ = mc.split_entity(got[0])
            orig_id, new_id = mc.get_field(oh, "Message-ID"), mc.get_field(gh, "Message-ID")
            if orig_id and new_id:
                replaced[" ".join(orig_id.split())] = " ".join(new_id.split())
        except (smtplib.SMTPException, OSError, AssertionError) as e:
            d = Delivery(raw, None, t0, time.time(), f"{name}: submission/retrieval failed: {e!r}\n{srv.log_tail(15)}")
        cache[name] = d
        return d

    return get


# -- the corpus itself (no server) ----------------------------------------------------------------

def test_corpus_shape():
    files = sorted(p.name for p in MESSAGES.glob("*.eml"))
    assert files == sorted(e["file"] for e in ENTRIES), "index.json and messages/*.eml disagree"
    assert 20 <= len(files) <= 40, f"{len(files)} messages"
    clients = {e["client"] for e in ENTRIES}
    assert len(clients) >= 6, f"only {len(clients)} clients: {clients}"
    sizes = {f: (MESSAGES / f).stat().st_size for f in files}
    assert all(s <= 500_000 for s in sizes.values()), sizes
    assert sum(sizes.values()) <= 2_000_000
    for f in files:
        raw = (MESSAGES / f).read_bytes()
        assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b""), f"{f}: not CRLF throughout"
    for e in ENTRIES:
        assert e["envelope"]["mail_from"] == ALICE and "bob@mail.i2p" in e["envelope"]["rcpt_to"], e["file"]
    assert SIGNED and ENCRYPTED


@pytest.mark.parametrize("entry", SIGNED, ids=ids(SIGNED))
def test_corpus_signature_valid(entry, gnupghome, tmp_path):
    raw = (MESSAGES / entry["file"]).read_bytes()
    (signed, sig), = mc.signed_entities(raw)
    verify(gnupghome, tmp_path, signed, sig)


# -- PRIV-1: the header allow-list ----------------------------------------------------------------

@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_header_allow_list(entry, delivered):
    got = delivered(entry).got()
    head, _ = mc.split_entity(got)
    names = [n for n, _ in mc.header_fields(head)]
    extra = [n for n in names if n.lower() not in mc.ALLOWED_FIELDS]
    assert not extra, f"fields outside the PRIV-1 allow-list: {extra}\nheader:\n{head.decode('utf-8', 'replace')}"
    lower = [n.lower() for n in names]
    for bad in ("bcc", "received", "user-agent", "x-mailer", "sender", "organization"):
        assert bad not in lower, f"{bad} kept"
    assert not [n for n in names if n.lower().startswith("x-")], "X-* fields kept"
    for single in ("from", "date", "message-id", "subject"):
        assert lower.count(single) <= 1, f"{single} appears {lower.count(single)} times"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_part_headers_reduced(entry, delivered):
    """PRIV-3: part headers (outside signed parts) hold only the five MIME fields."""
    got = delivered(entry).got()
    root = mc.walk_raw(got)
    extra = []
    for e in mc.entities(root):
        if e.depth == 0 or e.in_signed:
            continue
        extra += [n for n, _ in mc.header_fields(e.head) if n.lower() not in PART_FIELDS]
    assert not extra, f"part header fields outside the PRIV-3 set: {sorted(set(extra))}"


# -- leaks ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_no_leaks(entry, delivered):
    """Nothing in the header or MIME structure that identifies the sender's machine or client."""
    got = delivered(entry).got()
    text = mc.header_text(got)
    m = entry["leak_markers"]
    problems = []
    ips = mc.ip_addresses(text)
    if ips:
        problems.append(f"IP addresses: {ips}")
    hosts = {h for h in [*m["hostnames"], m["helo"], socket.gethostname(), socket.getfqdn()] if h}
    for h in sorted(hosts):
        if mc.token_re(h, "A-Za-z0-9-").search(text):
            problems.append(f"host name {h!r}")
    for s in m["client_strings"]:
        if mc.token_re(s).search(text):
            problems.append(f"client string {s!r}")
    if m["message_id"]:
        mid = m["message_id"].strip("<>")
        if mid and mid in text:
            problems.append(f"original Message-ID {m['message_id']}")
    outside = mc.outside_signed_text(got)
    for b in m["boundaries"]:
        if b.encode("utf-8", "surrogateescape") in outside:
            problems.append(f"original boundary {b!r}")
    for p in mc.DATE_PARAMS:
        if re.search(re.escape(p), text, re.IGNORECASE):
            problems.append(f"MIME date parameter {p}")
    zones = mc.foreign_zones(text)
    if zones:
        problems.append(f"time zones other than +0000: {zones}")
    assert not problems, ("leaks in the sanitised header / MIME structure:\n  " + "\n  ".join(problems)
                          + "\nheaders as fetched:\n" + text)


# -- PRIV-2: Date and Message-ID ------------------------------------------------------------------

DATE_RE = re.compile(r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                     r"\d{4} \d{2}:\d{2}:00 \+0000")
MSGID_RE = re.compile(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@mail\.i2p>")


def timestamp_like(text: str, around: float) -> list[str]:
    """Digit runs that encode a time within 3 days of `around` (epoch s/ms/us/ns, YYYYMMDD...)."""
    hits = []
    days = {datetime.datetime.fromtimestamp(around + d * 86400, datetime.timezone.utc).strftime("%Y%m%d")
            for d in (-3, -2, -1, 0, 1, 2, 3)}
    for run in re.findall(r"\d{8,}", text):
        if any(d in run for d in days):
            hits.append(run)
            continue
        for i in range(0, len(run) - 9):
            if abs(int(run[i:i + 10]) - around) < 3 * 86400:
                hits.append(run)
                break
    return hits


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_date_and_message_id(entry, delivered):
    d = delivered(entry)
    got = d.got()
    head, _ = mc.split_entity(got)
    date = mc.get_field(head, "Date")
    assert date is not None, "no Date"
    assert DATE_RE.fullmatch(date), f"Date {date!r}: not RFC 5322 UTC to the minute (… HH:MM:00 +0000)"
    when = email.utils.parsedate_to_datetime(date).timestamp()
    assert d.sent_at - 120 <= when <= d.fetched_at + 60, \
        f"Date {date!r} is not the release time (submitted {time.ctime(d.sent_at)})"
    mid = mc.get_field(head, "Message-ID")
    assert mid is not None, "no Message-ID"
    assert MSGID_RE.fullmatch(mid), f"Message-ID {mid!r} is not <random@mail.i2p>"
    assert mid != entry["leak_markers"]["message_id"], "Message-ID not replaced"
    stamps = timestamp_like(mid, d.sent_at)
    assert not stamps, f"Message-ID {mid!r} carries a timestamp: {stamps}"


# -- From -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_from_is_the_account(entry, delivered):
    got = delivered(entry).got()
    head, _ = mc.split_entity(got)
    froms = [v for n, v in mc.header_fields(head) if n.lower() == "from"]
    assert len(froms) == 1, f"{len(froms)} From fields"
    addrs = email.utils.getaddresses([mc.fix8(froms[0])])
    assert len(addrs) == 1 and addrs[0][1].lower() == ALICE, f"From {froms[0]!r} is not {ALICE}"
    want = entry["from_display_name"]
    if want:
        assert mc.decode_words(addrs[0][0]) == " ".join(want.split()), \
            f"display name {mc.decode_words(addrs[0][0])!r} != original {want!r}"


# -- PRIV-3 correctness: bodies, names, threading -------------------------------------------------

@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_parts_decode_identically(entry, delivered):
    d = delivered(entry)
    got = d.got()
    a, b = mc.leaves(d.original), mc.leaves(got)
    assert [p.get_content_type() for p in b] == [p.get_content_type() for p in a], "MIME structure differs"
    for i, (pa, pb) in enumerate(zip(a, b)):
        what = f"leaf {i} ({pa.get_content_type()})"
        assert pb.get_content_charset() == pa.get_content_charset(), f"{what}: charset changed"
        assert mc.filename(pb) == mc.filename(pa), f"{what}: file name {mc.filename(pb)!r} != {mc.filename(pa)!r}"
        da, db = pa.get_payload(decode=True), pb.get_payload(decode=True)
        assert db == da, f"{what}: decoded body differs ({len(db or b'')} vs {len(da or b'')} octets)"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_subject_and_threading_kept(entry, delivered):
    d = delivered(entry)
    got = d.got()
    oh, _ = mc.split_entity(d.original)
    gh, _ = mc.split_entity(got)
    assert mc.decode_words(mc.get_field(gh, "Subject")) == mc.decode_words(mc.get_field(oh, "Subject"))
    if entry["subject"] is not None:
        assert mc.decode_words(mc.get_field(gh, "Subject")) == " ".join(entry["subject"].split())
    for f in ("In-Reply-To", "References"):
        o, g = mc.get_field(oh, f), mc.get_field(gh, f)
        # Unchanged, except that ids of alice's own earlier messages point at the Message-IDs
        # Postern gave them, so her threads still hold together.
        expected = " ".join(d.replaced.get(i, i) for i in o.split()) if o else None
        assert (" ".join(g.split()) if g else None) == expected, f"{f} changed"


# -- PGP/MIME -------------------------------------------------------------------------------------

def gpg(home, *args, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--status-fd", "2", "--trust-model", "always",
                           "--pinentry-mode", "loopback", "--passphrase", "", *args],
                          input=input, capture_output=True, timeout=60)


def verify(home, folder: Path, signed: bytes, sigpart: bytes) -> None:
    sig = email.message_from_bytes(sigpart).get_payload(decode=True)
    (folder / "data").write_bytes(signed)
    (folder / "sig.asc").write_bytes(sig)
    cp = gpg(home, "--verify", str(folder / "sig.asc"), str(folder / "data"))
    status = cp.stderr.decode("utf-8", "replace")
    assert cp.returncode == 0 and "[GNUPG:] GOODSIG" in status, f"gpg --verify failed:\n{status}"


@pytest.mark.parametrize("entry", SIGNED, ids=ids(SIGNED))
def test_signature_still_verifies(entry, delivered, gnupghome, tmp_path):
    d = delivered(entry)
    got = d.got()
    fetched = mc.signed_entities(got)
    assert len(fetched) == len(mc.signed_entities(d.original)) == 1, "multipart/signed not found in the fetched copy"
    (signed, sig), = fetched
    (orig_signed, _), = mc.signed_entities(d.original)
    assert signed == orig_signed, "the signed part is not byte-identical"
    verify(gnupghome, tmp_path, signed, sig)


@pytest.mark.parametrize("entry", ENCRYPTED, ids=ids(ENCRYPTED))
def test_encrypted_still_decrypts(entry, delivered, gnupghome):
    d = delivered(entry)
    got = d.got()
    fetched = mc.encrypted_payloads(got)
    assert len(fetched) == 1, "multipart/encrypted not found in the fetched copy"
    (orig,) = mc.encrypted_payloads(d.original)
    want = gpg(gnupghome, "--decrypt", input=orig)
    assert want.returncode == 0, f"the corpus message does not decrypt: {want.stderr.decode(errors='replace')}"
    cp = gpg(gnupghome, "--decrypt", input=fetched[0])
    assert cp.returncode == 0, f"gpg --decrypt failed:\n{cp.stderr.decode(errors='replace')}"
    assert cp.stdout == want.stdout, "decrypted plaintext differs from the original's"
