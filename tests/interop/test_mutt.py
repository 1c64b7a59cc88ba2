"""mutt sending through Postern's SMTP with AUTH (SMTP-1..3), fetched back with poplib."""
import pytest

from clients import mutt_send, out
from mailutil import assert_same_message, body_of, fetch_all, header, token


@pytest.fixture(autouse=True)
def _mutt(tool):
    tool("mutt")


def mutt_expected(sender: str, subject: str, text: bytes) -> bytes:
    """What mutt submits, as far as assert_same_message looks: its From, Subject and the body
    with CRLF line ends (mutt sends a plain us-ascii/utf-8 text body unchanged)."""
    body = text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return (f"From: Interop Tester <{sender}>\r\nSubject: {subject}\r\n\r\n").encode() + body


@pytest.mark.parametrize("mech", ["plain", "login"])
def test_mutt_send(server, tmp_path, alice, bob, mech):
    tok = token("mutt")
    subject = f"sent by mutt {mech}"
    text = f"Hello from mutt {tok}\n.a line with a leading dot\nlast line\n".encode()
    cp = mutt_send(server, tmp_path / "mutt", alice, bob.address, subject, text, mech=mech)
    assert cp.returncode == 0, f"mutt exit {cp.returncode}\n{out(cp)}"
    got = fetch_all(server, bob)
    assert len(got) == 1, f"bob has {len(got)} messages"
    assert_same_message(mutt_expected(alice.address, subject, text), got[0], sender=alice.address, what="mutt")
    assert header(got[0], "To") and bob.address in header(got[0], "To")


def test_mutt_wrong_password_fails(server, tmp_path, alice, bob):
    alice.password = "not-alices-password"
    cp = mutt_send(server, tmp_path / "mutt", alice, bob.address, "nope", b"nope\n")
    assert cp.returncode != 0, f"mutt reported success with a wrong password\n{out(cp)}"
    assert fetch_all(server, bob) == []


def test_mutt_utf8_body(server, tmp_path, alice, bob):
    tok = token("mutt8")
    subject = "mutt utf-8"
    text = f"Grüße, ☃ — {tok}\n".encode()
    cp = mutt_send(server, tmp_path / "mutt", alice, bob.address, subject, text)
    assert cp.returncode == 0, f"mutt exit {cp.returncode}\n{out(cp)}"
    got = fetch_all(server, bob)
    assert len(got) == 1
    # mutt may choose 8bit or quoted-printable for a non-ASCII body; the token survives either way
    assert tok.encode() in body_of(got[0])
    assert header(got[0], "Subject") == subject
