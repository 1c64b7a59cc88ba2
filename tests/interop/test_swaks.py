"""swaks against Postern's submission port (SMTP-1..4): AUTH PLAIN/LOGIN, and every refusal with its
code. swaks exit codes: 23 MAIL refused, 24 no RCPT accepted, 26 refused after DATA, 28 AUTH failed."""
import re

import pytest

from clients import out, swaks, swaks_auth
from mailutil import assert_same_message, fetch_all, make_message, pop_stat, token


@pytest.fixture(autouse=True)
def _swaks(tool):
    tool("swaks")


def swaks_reply_lines(text: str) -> list[str]:
    """Server lines of a swaks transcript ('<~ 250 ...' or '<** 550 ...')."""
    return [m.group(1) for m in re.finditer(r"^\s*<[-~*]+\s+(\d{3}[ -].*)$", text, re.M)]


def assert_reply_in(text: str, code: str, enhanced: str):
    lines = swaks_reply_lines(text)
    assert any(ln.startswith(f"{code} {enhanced}") or ln.startswith(f"{code}-{enhanced}") for ln in lines), \
        f"expected a '{code} {enhanced}' reply; server said:\n" + "\n".join(lines) + f"\n--- swaks output:\n{text}"


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_auth_success_delivers(server, tmp_path, alice, bob, mech):
    tok = token("swaks-" + mech.lower())
    msg = make_message(alice.address, bob.address, f"swaks AUTH {mech}", f"hello via swaks {tok}\n.leading dot\n")
    cp = swaks_auth(server, tmp_path, alice, mech, to=bob.address, data=msg)
    text = out(cp)
    assert cp.returncode == 0, f"swaks exit {cp.returncode}\n{text}"
    assert any(ln.startswith("235") for ln in swaks_reply_lines(text)), f"no 235 after AUTH:\n{text}"
    assert re.search(rf"^\s*[-~]> AUTH {mech}", text, re.M), f"swaks did not use AUTH {mech}:\n{text}"
    got = fetch_all(server, bob)
    assert len(got) == 1, f"bob has {len(got)} messages"
    assert_same_message(msg, got[0], sender=alice.address, what=f"swaks AUTH {mech}")


def test_wrong_password(server, tmp_path, alice, bob):
    cp = swaks_auth(server, tmp_path, alice, "PLAIN", to=bob.address, password="wrong-password-123")
    text = out(cp)
    assert cp.returncode == 28, f"swaks exit {cp.returncode} (expected 28: AUTH error)\n{text}"
    assert_reply_in(text, "535", "5.7.8")
    assert pop_stat(server, bob)[0] == 0


def test_wrong_password_login_mech(server, tmp_path, alice, bob):
    cp = swaks_auth(server, tmp_path, alice, "LOGIN", to=bob.address, password="wrong-password-123")
    text = out(cp)
    assert cp.returncode == 28, f"swaks exit {cp.returncode} (expected 28: AUTH error)\n{text}"
    assert_reply_in(text, "535", "5.7.8")


def test_mail_before_auth(server, tmp_path, alice, bob):
    cp = swaks(server, tmp_path, "--from", alice.address, "--to", bob.address)
    text = out(cp)
    assert cp.returncode == 23, f"swaks exit {cp.returncode} (expected 23: MAIL refused)\n{text}"
    assert_reply_in(text, "530", "5.7.0")
    assert pop_stat(server, bob)[0] == 0


def test_envelope_sender_mismatch(server, tmp_path, alice, bob, carol):
    # logged in as alice, MAIL FROM carol
    cp = swaks_auth(server, tmp_path, alice, "PLAIN", frm=carol.address, to=bob.address)
    text = out(cp)
    assert cp.returncode == 23, f"swaks exit {cp.returncode} (expected 23: MAIL refused)\n{text}"
    assert_reply_in(text, "553", "5.7.1")
    assert pop_stat(server, bob)[0] == 0


def test_header_from_mismatch(server, tmp_path, alice, bob, carol):
    # envelope is alice (correct) but the header From: is carol -> refused after DATA (SMTP-3)
    msg = make_message(carol.address, bob.address, "forged From", f"forged {token()}\n")
    cp = swaks_auth(server, tmp_path, alice, "PLAIN", to=bob.address, data=msg)
    text = out(cp)
    assert cp.returncode == 26, f"swaks exit {cp.returncode} (expected 26: refused after DATA)\n{text}"
    assert_reply_in(text, "553", "5.7.1")
    assert pop_stat(server, bob)[0] == 0


def test_relay_attempt_foreign_domain(server, tmp_path, alice):
    cp = swaks_auth(server, tmp_path, alice, "PLAIN", to="victim@example.com")
    text = out(cp)
    assert cp.returncode == 24, f"swaks exit {cp.returncode} (expected 24: no RCPT accepted)\n{text}"
    assert_reply_in(text, "550", "5.7.1")


def test_unknown_local_user(server, tmp_path, alice):
    cp = swaks_auth(server, tmp_path, alice, "PLAIN", to="nobody-here@mail.i2p")
    text = out(cp)
    assert cp.returncode == 24, f"swaks exit {cp.returncode} (expected 24: no RCPT accepted)\n{text}"
    assert_reply_in(text, "550", "5.1.1")


def test_display_name_in_from_is_allowed(server, tmp_path, alice, bob):
    msg = make_message(alice.address, bob.address, "display name", f"named {token()}\n", display_name="Alice A.")
    cp = swaks_auth(server, tmp_path, alice, "LOGIN", to=bob.address, data=msg)
    assert cp.returncode == 0, out(cp)
    got = fetch_all(server, bob)
    assert len(got) == 1
    assert_same_message(msg, got[0], sender=alice.address)
