"""DKIM signatures made by Postern, checked by a real verifier (Python's dkimpy; issue 6 groundwork).

`postern gateway dkim-keygen` makes an RSA-2048 and an Ed25519 key and prints their DNS TXT
records; `postern gateway dkim-sign` signs a message with one. dkimpy verifies each signature with
the printed record as the DNS answer — on a plain message and on every message of the real-client
corpus — and rejects it once the body, a signed field or the number of From fields changes.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness import postern_bin

dkim = pytest.importorskip("dkim", reason="dkimpy is not installed — run scripts/install-test-deps")

REPO = Path(__file__).resolve().parents[2]
CORPUS = sorted((REPO / "tests" / "corpus" / "messages").glob("*.eml"))
MESSAGE = (b"From: Alice <alice@i2pmail.org>\r\nTo: bob@example.com\r\nSubject: DKIM test\r\n"
           b"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\nMessage-ID: <dkim-test@i2pmail.org>\r\n\r\n"
           b"Hello,  Bob.\t \r\n\r\n\r\n")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dkim")
    cp = subprocess.run([str(postern_bin()), "gateway", "dkim-keygen", "--selector", "t", "--domain", "i2pmail.org",
                         "--dir", str(folder)], capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    records = dict(re.findall(r'^(\S+)\. IN TXT "(.*)"$', cp.stdout, re.M))
    assert set(records) == {"t-rsa._domainkey.i2pmail.org", "t-ed25519._domainkey.i2pmail.org"}, cp.stdout
    for name in ("t-rsa", "t-ed25519"):
        assert (folder / f"{name}.key").stat().st_mode & 0o777 == 0o600
    again = subprocess.run([str(postern_bin()), "gateway", "dkim-keygen", "--selector", "t", "--dir", str(folder)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "not overwritten" in again.stderr
    return folder, records


def sign(folder: Path, selector: str, message: bytes) -> bytes:
    cp = subprocess.run([str(postern_bin()), "gateway", "dkim-sign", "--key", str(folder / f"{selector}.key"),
                         "--selector", selector, "--domain", "i2pmail.org"], input=message, capture_output=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def verifies(message: bytes, records: dict) -> bool:
    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return records.get(name.rstrip("."), "").encode()
    return bool(dkim.verify(message, dnsfunc=dnsfunc))


@pytest.mark.parametrize("selector", ["t-rsa", "t-ed25519"])
def test_dkimpy_accepts_the_signature(keys, selector):
    folder, records = keys
    signed = sign(folder, selector, MESSAGE)
    assert signed.startswith(b"DKIM-Signature: v=1; a=" + (b"rsa-sha256" if selector == "t-rsa" else b"ed25519-sha256"))
    assert verifies(signed, records)
    # Tampering breaks it: the body, a signed field, a second From on top (From is oversigned).
    assert not verifies(signed.replace(b"Hello,", b"Hullo,"), records)
    assert not verifies(signed.replace(b"Subject: DKIM test", b"Subject: DKIM best"), records)
    assert not verifies(b"From: mallory@example.com\r\n" + signed, records)
    # Whitespace the relaxed canonicalization forgives still verifies.
    assert verifies(signed.replace(b"Subject: DKIM test", b"Subject:   DKIM   test"), records)


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_every_corpus_message_verifies_with_both_keys(keys, path):
    folder, records = keys
    message = path.read_bytes()
    both = sign(folder, "t-ed25519", sign(folder, "t-rsa", message))
    # dkimpy checks the first signature; strip the top one to check the other.
    assert verifies(both, records)
    assert verifies(both[both.index(b"DKIM-Signature: v=1; a=rsa"):], records)


# -- verification: signatures made by dkimpy, keys from dnsmasq -----------------------------------

import base64  # noqa: E402

from dnsserver import DnsServer  # noqa: E402
from sink import free_port  # noqa: E402


@pytest.fixture(scope="module")
def published(keys, tmp_path_factory):
    """dnsmasq publishing the generated keys; yields (folder, resolver "host:port")."""
    folder, records = keys
    dns = DnsServer(tmp_path_factory.mktemp("dkim-dns"), [("TXT", name, text) for name, text in records.items()]).start()
    yield folder, f"127.0.0.1:{dns.port}"
    dns.stop()


def dkimpy_sign(folder: Path, selector: str, message: bytes, canon: tuple[bytes, bytes]) -> bytes:
    pem = (folder / f"{selector}.key").read_bytes()
    if selector.endswith("ed25519"):
        der = base64.b64decode(b"".join(l for l in pem.splitlines() if not l.startswith(b"-----")))
        key, algorithm = base64.b64encode(der[-32:]), b"ed25519-sha256"
    else:
        key, algorithm = pem, b"rsa-sha256"
    signature = dkim.sign(message, selector.encode(), b"i2pmail.org", key, canonicalize=canon,
                          signature_algorithm=algorithm, include_headers=[b"from", b"to", b"subject", b"date"])
    return signature + message


def postern_verify(message: bytes, resolver: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(postern_bin()), "gateway", "dkim-verify", "--resolver", resolver], input=message,
                          capture_output=True, timeout=60)


@pytest.mark.parametrize("selector", ["t-rsa", "t-ed25519"])
@pytest.mark.parametrize("canon", [(b"relaxed", b"relaxed"), (b"simple", b"simple"), (b"relaxed", b"simple")],
                         ids=["relaxed-relaxed", "simple-simple", "relaxed-simple"])
def test_postern_verifies_what_dkimpy_signs(published, selector, canon):
    folder, resolver = published
    signed = dkimpy_sign(folder, selector, MESSAGE, canon)
    cp = postern_verify(signed, resolver)
    assert cp.returncode == 0 and cp.stdout.decode().strip() == f"dkim=pass header.d=i2pmail.org header.s={selector}", cp.stdout + cp.stderr
    bad = postern_verify(signed.replace(b"Hello,", b"Hullo,"), resolver)
    assert bad.returncode == 1 and b"dkim=fail (body hash did not verify)" in bad.stdout
    bad = postern_verify(signed.replace(b"Subject: DKIM test", b"Subject: DKIM best"), resolver)
    assert bad.returncode == 1 and b"dkim=fail (signature did not verify)" in bad.stdout


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_postern_verifies_corpus_messages_both_ways(published, path):
    folder, resolver = published
    message = path.read_bytes()
    theirs = dkimpy_sign(folder, "t-rsa", message, (b"relaxed", b"relaxed"))
    ours = sign(folder, "t-ed25519", message)
    for signed in (theirs, ours):
        cp = postern_verify(signed, resolver)
        assert cp.returncode == 0 and cp.stdout.decode().startswith("dkim=pass"), cp.stdout + cp.stderr


def test_a_body_length_limit_is_honoured(published):
    """l= (RFC 6376 3.5): only that much of the body is signed; text added after it still
    verifies, a change inside it does not."""
    folder, resolver = published
    pem = (folder / "t-rsa.key").read_bytes()
    signed = dkim.sign(MESSAGE, b"t-rsa", b"i2pmail.org", pem, length=True) + MESSAGE
    assert b" l=" in signed or b";l=" in signed or b"\tl=" in signed
    cp = postern_verify(signed + b"Appended by a list.\r\n", resolver)
    assert cp.returncode == 0 and cp.stdout.startswith(b"dkim=pass"), cp.stdout
    cp = postern_verify(signed.replace(b"Hello,", b"Hullo,"), resolver)
    assert b"dkim=fail (body hash did not verify)" in cp.stdout


def test_missing_keys_and_dns_failures_are_told_apart(published):
    folder, resolver = published
    signed = sign(folder, "t-rsa", MESSAGE).replace(b"s=t-rsa;", b"s=nobody;")
    cp = postern_verify(signed, resolver)
    assert b"dkim=permerror (no key) header.d=i2pmail.org header.s=nobody" in cp.stdout
    cp = postern_verify(sign(folder, "t-rsa", MESSAGE), f"127.0.0.1:{free_port()}")
    assert b"dkim=temperror (key lookup failed)" in cp.stdout
    cp = postern_verify(MESSAGE, resolver)
    assert cp.stdout.strip() == b"dkim=none"  # RFC 8601 2.7.1: not signed
    # RFC 6376 6.1.1: a signature whose h= leaves out From is ignored.
    no_from = sign(folder, "t-rsa", MESSAGE).replace(b"h=from:from:", b"h=")
    assert postern_verify(no_from, resolver).stdout.strip() == b"dkim=permerror (From not signed)"
