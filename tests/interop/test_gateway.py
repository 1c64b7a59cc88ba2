"""The Internet gateway end to end (issue 6, GW-1..3, PRIV-4, PRIV-5), with real programs only:
dnsmasq as the DNS, Postfix as the Internet mail server of example.test (STARTTLS), the core and
`postern gateway` as two processes, swaks and Python's smtplib/poplib as users, dkimpy as the
DKIM verifier. See internet.py for the addresses.
"""
from __future__ import annotations

import email
import email.policy
import poplib
import re
import smtplib
import socket
import subprocess
import time
import uuid

import pytest

from internet import (BROKEN_TLS_MX, GATEWAY_ADDRESS, LINK_SECRET, LISTED_CLIENT, POSTFIX_ADDRESS, STRANGER, Lab)

dkim = pytest.importorskip("dkim", reason="dkimpy is not installed — run scripts/install-test-deps")
import dns.resolver  # noqa: E402  (dnspython comes with dkimpy)

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def lab(make_server):
    lab = Lab(make_server)
    yield lab
    lab.close()


@pytest.fixture
def user(lab):
    return lab.core.take_account("gwuser")


def swaks(*args: str, check_rc: bool = True) -> subprocess.CompletedProcess:
    cp = subprocess.run(["swaks", "--timeout", "30", *args], capture_output=True, text=True, timeout=90)
    if check_rc:
        assert cp.returncode == 0, cp.stdout + cp.stderr
    return cp


def submit(lab, account, to: str, subject: str, body: str = "Hello from I2P.\n", extra: tuple = ()):
    swaks("--server", f"{HOST}:{lab.core.smtp_port}", "--auth", "PLAIN", "--auth-user", account.name,
          "--auth-password", account.password, "--from", account.address, "--to", to,
          "--header", f"Subject: {subject}", "--body", body, *extra)


def pop3_messages(lab, account) -> list[bytes]:
    box = poplib.POP3(HOST, lab.core.pop3_port, timeout=30)
    try:
        box.user(account.name)
        box.pass_(account.password)
        return [b"\r\n".join(box.retr(i + 1)[1]) for i in range(len(box.list()[1]))]
    finally:
        box.quit()


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_mail(lab, account, containing: bytes, timeout: float = 60) -> bytes:
    return wait_for(lambda: next((m for m in pop3_messages(lab, account) if containing in m), None), timeout,
                    f"a message with {containing!r} in {account}'s mailbox")


def postfix_maildir_message(lab, user: str, marker: str) -> bytes:
    def find():
        for path in lab.postfix.mailbox(user):
            data = path.read_bytes()
            if marker.encode() in data:
                return data
        return None
    return wait_for(find, 60, f"{marker} in Postfix's mailbox of {user}")


def dkim_dns(name, timeout=5):
    """dkimpy's key lookup, through the lab's dnsmasq."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.2"]
    name = name.decode() if isinstance(name, bytes) else name
    try:
        answer = resolver.resolve(name.rstrip("."), "TXT", lifetime=timeout)
    except Exception:  # noqa: BLE001 - no key is what the verifier reports
        return b""
    return b"".join(b"".join(r.strings) for r in answer)


def assert_nothing_kept(lab):
    # GW-3: once mail has left, the gateway's data folder holds nothing of it.
    wait_for(lambda: not lab.gateway.stored_files(), 30, "an empty gateway data folder")


# -- outbound: I2P user → core → gateway → Postfix -------------------------------------------

def test_outbound_mail_reaches_postfix_signed_over_tls_without_a_trace_of_the_core(lab, user):
    marker = f"out-{uuid.uuid4().hex[:10]}"
    submit(lab, user, "alice@example.test", marker, extra=("--header", "X-Mailer: LeakyClient 1.0"))
    delivered = postfix_maildir_message(lab, "alice", marker)
    message = email.message_from_bytes(delivered, policy=email.policy.compat32)
    internet_address = f"{user.name}@i2pmail.org"
    # PRIV-4: Return-Path (the envelope sender Postfix recorded) and From at the Internet domain.
    assert message["Return-Path"] == f"<{internet_address}>"
    assert internet_address in message["From"]
    assert message["Message-ID"].endswith("@i2pmail.org>")
    # Postfix's own trace says the gateway used TLS, and came from the gateway's address.
    received = message.get_all("Received")[0]
    assert "with ESMTPS" in received and "using TLS" in received, received
    assert f"[{GATEWAY_ADDRESS}]" in received
    # Both DKIM signatures verify with dkimpy, keys from DNS.
    signatures = [i for i, (k, _) in enumerate(message.items()) if k.lower() == "dkim-signature"]
    assert len(signatures) == 2
    verifier = dkim.DKIM(delivered)
    assert verifier.verify(idx=0, dnsfunc=dkim_dns) and verifier.verify(idx=1, dnsfunc=dkim_dns)
    algorithms = set(re.findall(rb"a=([a-z0-9-]+);", delivered))
    assert algorithms == {b"rsa-sha256", b"ed25519-sha256"}
    # Timing: the signature time is to the minute, like Date (PRIV-2): no second-exact clock.
    times = [int(t) for t in re.findall(rb"\bt=(\d+);", delivered)]
    assert len(times) == 2 and all(t % 60 == 0 for t in times), times
    assert re.search(r"\d\d:\d\d:00 \+0000$", message["Date"]), message["Date"]
    # No trace of the core: its domain, its host name, its loopback address, the client's header.
    lowered = delivered.lower()
    assert b"mail.i2p" not in lowered
    host = socket.gethostname().lower()
    readable = "\n".join(f"{k}: {v}" for k, v in message.items() if k.lower() != "dkim-signature").lower()
    readable += "\n" + message.get_payload()
    assert not re.search(rf"(?<![a-z0-9.-]){re.escape(host)}(?![a-z0-9-])", readable), f"the host name {host!r} leaked"
    assert b"127.0.0.1" not in delivered
    assert b"leakyclient" not in lowered
    assert_nothing_kept(lab)


def test_outbound_with_a_broken_starttls_is_retried_in_clear(lab, user):
    remote = lab.remotes["brokentls"]
    before = (remote.starttls_tries, len(remote.received))
    marker = f"tls-{uuid.uuid4().hex[:10]}"
    submit(lab, user, "someone@brokentls.test", marker)
    wait_for(lambda: len(remote.received) > before[1], 60, "the message in clear at the broken-TLS MX")
    assert remote.starttls_tries > before[0], "STARTTLS was not tried first"
    assert marker.encode() in remote.received[-1]
    assert_nothing_kept(lab)


def test_a_remote_refusal_bounces_to_the_sender_with_codes_only(lab, user):
    marker = f"refused-{uuid.uuid4().hex[:10]}"
    submit(lab, user, "nobody@refuse.test", marker)
    report = wait_for_mail(lab, user, b"Status: 5.1.1")
    text = report.decode("utf-8", "replace")
    assert "multipart/report" in text and "report-type=delivery-status" in text
    assert "Final-Recipient: rfc822; nobody@refuse.test" in text
    assert "Diagnostic-Code: smtp; 550 5.1.1" in text
    assert marker in text  # the original header comes back
    # Codes only: the remote MX's text (its host name, its address) never reaches the sender.
    assert "mx.refuse.test" not in text and "127.0.0.6" not in text and "no mailbox here" not in text
    assert_nothing_kept(lab)


def test_a_garbage_answering_mx_is_retried_then_reported(lab, user):
    remote = lab.remotes["garbage"]
    before = remote.connections
    submit(lab, user, "someone@garbage.test", f"garbage-{uuid.uuid4().hex[:10]}")
    delayed = wait_for_mail(lab, user, b"Action: delayed", timeout=30).decode()
    assert "Final-Recipient: rfc822; someone@garbage.test" in delayed and "Will-Retry-Until:" in delayed
    failed = wait_for_mail(lab, user, b"Status: 5.4.7", timeout=60).decode()
    assert "Action: failed" in failed and "could not be delivered in time" in failed
    assert remote.connections - before >= 3, "the gateway should have retried"
    assert_nothing_kept(lab)


# -- inbound: Postfix → gateway → core ---------------------------------------------------------

def test_inbound_mail_from_postfix_lands_rewritten_with_authentication_results(lab, user):
    marker = f"in-{uuid.uuid4().hex[:10]}"
    swaks("--server", f"{POSTFIX_ADDRESS}:25", "--from", "bob@example.test", "--to", f"{user.name}@i2pmail.org",
          "--header", f"Subject: {marker}", "--header", f"Cc: {user.name}@i2pmail.org, carol@example.test",
          "--header", "Disposition-Notification-To: bob@example.test", "--body", "Hello from the Internet.\n")
    stored = wait_for_mail(lab, user, marker.encode())
    message = email.message_from_bytes(stored, policy=email.policy.compat32)
    # PRIV-5: the recipient in To/Cc rewritten to the core's domain; no read receipt request.
    assert message["To"] == f"{user.name}@mail.i2p"
    assert f"{user.name}@mail.i2p" in message["Cc"] and "carol@example.test" in message["Cc"]
    assert message["Disposition-Notification-To"] is None
    assert message["Return-Path"] == "<bob@example.test>"
    results = message["Authentication-Results"]
    assert results.startswith("i2pmail.org;"), results
    assert re.search(r"spf=pass .*smtp\.mailfrom=example\.test", results), results
    assert "dkim=none" in results
    # The gateway's own trace names no address; Postfix used TLS to reach it.
    own = message.get_all("Received")[0]
    assert own.startswith("by i2pmail.org with ESMTPS"), own
    assert GATEWAY_ADDRESS.encode() not in stored and b"mx.i2pmail.org" not in stored
    lab.postfix.wait_for_log(rf"TLS connection established to mx\.i2pmail\.org\[{re.escape(GATEWAY_ADDRESS)}\]:25")
    assert_nothing_kept(lab)


def test_inbound_dkim_signature_of_the_sender_is_verified(lab, user):
    # example.test signs with its own key (dkimpy, a real signer); SPF passes from Postfix's address.
    marker = f"signed-{uuid.uuid4().hex[:10]}"
    message = (f"From: Bob <bob@example.test>\r\nTo: {user.name}@i2pmail.org\r\nSubject: {marker}\r\n"
               f"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\nMessage-ID: <{marker}@example.test>\r\n\r\n"
               "Signed by the sender's domain.\r\n").encode()
    signed = dkim.sign(message, b"ext", b"example.test", lab.sender_key, include_headers=[b"from", b"to", b"subject", b"date"])
    with smtplib.SMTP(GATEWAY_ADDRESS, 25, source_address=(POSTFIX_ADDRESS, 0), timeout=30) as smtp:
        smtp.starttls()
        smtp.sendmail("bob@example.test", [f"{user.name}@i2pmail.org"], signed + message)
    stored = wait_for_mail(lab, user, marker.encode())
    results = email.message_from_bytes(stored, policy=email.policy.compat32)["Authentication-Results"]
    assert "dkim=pass header.d=example.test header.s=ext" in results, results
    assert re.search(r"spf=pass .*smtp\.mailfrom=example\.test", results), results
    # The same message altered on the way: the gateway says so.
    tampered = signed + message.replace(b"Signed by", b"Forged by").replace(marker.encode(), (marker + "-t").encode())
    with smtplib.SMTP(GATEWAY_ADDRESS, 25, source_address=(POSTFIX_ADDRESS, 0), timeout=30) as smtp:
        smtp.sendmail("bob@example.test", [f"{user.name}@i2pmail.org"], tampered)
    stored = wait_for_mail(lab, user, (marker + "-t").encode())
    results = email.message_from_bytes(stored, policy=email.policy.compat32)["Authentication-Results"]
    assert "dkim=fail" in results, results


def test_a_client_opening_too_many_connections_is_slowed_down(lab):
    # connections_per_minute (30 by default), per address, in memory.
    refused = 0
    for _ in range(35):
        with socket.create_connection((GATEWAY_ADDRESS, 25), timeout=30, source_address=("127.0.0.10", 0)) as s:
            greeting = s.makefile("rb").readline()
            if greeting.startswith(b"421 4.7.0"):
                refused += 1
            else:
                assert greeting.startswith(b"220"), greeting
                s.sendall(b"QUIT\r\n")
    assert refused == 5
    # Another address is not affected.
    with socket.create_connection((GATEWAY_ADDRESS, 25), timeout=30, source_address=("127.0.0.11", 0)) as s:
        assert s.makefile("rb").readline().startswith(b"220")


def test_unknown_user_is_refused_in_postfix_session_and_nothing_bounces_from_the_gateway(lab, user):
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@i2pmail.org"
    swaks("--server", f"{POSTFIX_ADDRESS}:25", "--from", "dave@example.test", "--to", unknown, "--body", "x\n")
    line = lab.postfix.wait_for_log(rf"to=<{re.escape(unknown)}>, relay=mx\.i2pmail\.org\[{re.escape(GATEWAY_ADDRESS)}\]:25.*")
    assert "dsn=5.1.1" in line.group(0) and "said: 550 5.1.1 No such user here" in line.group(0), line.group(0)
    # The gateway never took the message: nothing queued, so no bounce of its own can follow.
    assert not lab.gateway.stored_files()
    assert "mail.i2p" not in line.group(0)
    # The refusal reached the sender through Postfix itself (its own bounce to dave, the real sender).
    bounce = postfix_maildir_message(lab, "dave", unknown)
    assert b"MAILER-DAEMON@example.test" in bounce


def test_a_stranger_cannot_relay_through_the_gateway(lab):
    with smtplib.SMTP(GATEWAY_ADDRESS, 25, source_address=(STRANGER, 0), timeout=30) as smtp:
        smtp.ehlo("stranger.test")
        assert smtp.mail("someone@nospf.test")[0] == 250
        code, text = smtp.rcpt("alice@example.test")
        assert (code, text[:5]) == (550, b"5.7.1"), text
        code, _ = smtp.rcpt("someone@mail.i2p")
        assert code == 550
    # The core's door: nothing without the link's login, and never with a wrong one.
    with smtplib.SMTP(HOST, lab.door, timeout=30) as smtp:
        smtp.ehlo("stranger.test")
        code, text = smtp.mail("someone@i2pmail.org")
        assert code == 530, text
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login("core", "wrong-password")
    with smtplib.SMTP(HOST, lab.door, timeout=30) as smtp:
        smtp.login("core", LINK_SECRET)
        assert smtp.mail("someone@i2pmail.org")[0] == 250
        assert smtp.rcpt("alice@mail.i2p")[0] == 550          # never back into I2P
        assert smtp.rcpt("alice@i2pmail.org")[0] == 550
    with smtplib.SMTP(HOST, lab.door, timeout=30) as smtp:
        smtp.login("core", LINK_SECRET)
        assert smtp.mail("stranger@example.test")[0] == 250
        assert smtp.rcpt("alice@example.test")[0] == 553      # only the core's users send


def test_spf_fail_and_blocklisted_clients_are_refused(lab, user):
    recipient = f"{user.name}@i2pmail.org"
    # example.test's SPF allows only Postfix's address.
    with smtplib.SMTP(GATEWAY_ADDRESS, 25, source_address=(STRANGER, 0), timeout=30) as smtp:
        smtp.ehlo("forger.test")
        code, text = smtp.mail("bob@example.test")
        assert (code, text[:6]) == (550, b"5.7.23"), text
    # Nobody on the Internet sends as the core's domain or any .i2p name (SPF cannot vouch for them).
    with smtplib.SMTP(GATEWAY_ADDRESS, 25, source_address=(STRANGER, 0), timeout=30) as smtp:
        smtp.ehlo("forger.test")
        for inside in ("bob@mail.i2p", "someone@postman.i2p"):
            code, text = smtp.mail(inside)
            assert (code, text[:5]) == (550, b"5.7.1") and b"not an Internet address" in text, text
    with smtplib.SMTP(GATEWAY_ADDRESS, 25, source_address=(LISTED_CLIENT, 0), timeout=30) as smtp:
        smtp.ehlo("listed.test")
        code, text = smtp.mail("someone@nospf.test")
        assert (code, text[:5]) == (550, b"5.7.1") and b"bl.test" in text, text
    # A sender without SPF from an unlisted address is fine (spf=none) and is checked live.
    with smtplib.SMTP(GATEWAY_ADDRESS, 25, source_address=(STRANGER, 0), timeout=30) as smtp:
        smtp.ehlo("plain.test")
        assert smtp.mail("someone@nospf.test")[0] == 250
        assert smtp.rcpt(recipient)[0] == 250
        assert smtp.rcpt("nobody-at-all@i2pmail.org")[0] == 550
        code, _ = smtp.data(f"From: someone@nospf.test\r\nTo: {recipient}\r\nSubject: spf-none\r\n\r\nhi\r\n".encode())
        assert code == 250
    stored = wait_for_mail(lab, user, b"Subject: spf-none")
    assert b"spf=none" in stored


def test_bad_input_on_the_mx_gets_the_right_codes(lab, user):
    recipient = f"{user.name}@i2pmail.org"
    second = f"{lab.core.take_account('gwother').name}@i2pmail.org"
    with smtplib.SMTP(GATEWAY_ADDRESS, 25, source_address=(STRANGER, 0), timeout=30) as smtp:
        smtp.ehlo("bad.test")
        # SIZE declared over the limit (64 KiB here): 552 at MAIL (RFC 1870).
        code, _ = smtp.mail("someone@nospf.test", ["SIZE=10000000"])
        assert code == 552
        assert smtp.mail("someone@nospf.test")[0] == 250
        assert smtp.rcpt(recipient)[0] == 250
        assert smtp.rcpt(recipient)[0] == 250  # a repeated recipient counts once
        assert smtp.rcpt(second)[0] == 250
        # More than max_recipients (2 here): 452 4.5.3 (RFC 5321 4.5.3.1.10).
        code, text = smtp.rcpt("a-third@i2pmail.org")
        assert (code, text[:5]) == (452, b"4.5.3"), text
        # Oversize data: 552 5.3.4 at the end, the session goes on.
        code, _ = smtp.data(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 80)
        assert code == 552
        assert smtp.noop()[0] == 250
    # Bare LF in the data: 521 and the connection is closed (SMTP smuggling defence).
    with socket.create_connection((GATEWAY_ADDRESS, 25), timeout=30) as s:
        s.settimeout(30)
        f = s.makefile("rb")
        def reply():
            lines = []
            while True:
                line = f.readline()
                lines.append(line)
                if line[3:4] != b"-":
                    return b"".join(lines)
        assert reply().startswith(b"220")
        for command in (b"EHLO bad.test", b"MAIL FROM:<someone@nospf.test>", f"RCPT TO:<{recipient}>".encode(), b"DATA"):
            s.sendall(command + b"\r\n")
            assert reply()[:1] in (b"2", b"3")
        s.sendall(b"Subject: smuggle\r\n\r\nline\n.\nMAIL FROM:<x@y>\r\n.\r\n")
        assert reply().startswith(b"521")
        assert f.readline() == b""
    assert_nothing_kept(lab)


def test_the_gateway_logs_no_address_above_debug_and_keeps_nothing(lab):
    # GW-3: after all of the above, the log (info level) names no address and no IP of anyone,
    # and the data folder is empty.
    log = lab.gateway.log()
    assert "gateway serving" in log
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.-]+", log), "an address in the gateway's log"
    assert not re.search(r"\b127\.0\.0\.\d+\b", log), "an IP address in the gateway's log"
    assert not lab.gateway.stored_files()
