"""fetchmail retrieving from Postern's POP3 (POP-1..3): keep and no-keep, delivery via an MDA."""
import pytest

from clients import fetchmail, out
from mailutil import assert_same_message, find_by_token, make_message, pop_stat, send_raw, token


@pytest.fixture(autouse=True)
def _fetchmail(tool):
    tool("fetchmail")


@pytest.fixture
def bob_with_mail(server, alice, bob):
    msgs = []
    for i in range(3):
        tok = token(f"fm{i}")
        body = f"for fetchmail {tok}\n.leading dot line\n..two dots\n\nFrom the start of a line\nend\n"
        m = make_message(alice.address, bob.address, f"fetchmail #{i}", body)
        send_raw(server, alice, [bob.address], m)
        msgs.append((tok, m))
    return bob, msgs, alice


def check_delivered(delivered, msgs, sender):
    assert len(delivered) == len(msgs), f"fetchmail delivered {len(delivered)} of {len(msgs)}"
    for tok, sent in msgs:
        found = find_by_token(delivered, tok)
        assert len(found) == 1, f"message {tok} delivered {len(found)} times"
        assert_same_message(sent, found[0], sender=sender, what=f"fetchmail {tok}")


def test_fetchmail_keep(server, tmp_path, bob_with_mail):
    bob, msgs, alice = bob_with_mail
    cp, delivered = fetchmail(server, tmp_path / "fm", bob, keep=True)
    assert cp.returncode == 0, f"fetchmail exit {cp.returncode}\n{out(cp)}"
    check_delivered(delivered, msgs, alice.address)
    assert pop_stat(server, bob)[0] == 3, "with `keep` the messages must stay on the server"
    # fetchall + keep: a second run fetches them all again
    cp, again = fetchmail(server, tmp_path / "fm", bob, keep=True)
    assert cp.returncode == 0, out(cp)
    check_delivered(again, msgs, alice.address)


def test_fetchmail_no_keep(server, tmp_path, bob_with_mail):
    bob, msgs, alice = bob_with_mail
    cp, delivered = fetchmail(server, tmp_path / "fm", bob, keep=False)
    assert cp.returncode == 0, f"fetchmail exit {cp.returncode}\n{out(cp)}"
    check_delivered(delivered, msgs, alice.address)
    assert pop_stat(server, bob) == (0, 0), "with `no keep` the mailbox must be empty afterwards"
    cp, again = fetchmail(server, tmp_path / "fm", bob, keep=False)
    assert cp.returncode == 1, f"fetchmail on an empty mailbox: exit {cp.returncode} (1 = no mail)\n{out(cp)}"
    assert again == []


def test_fetchmail_wrong_password(server, tmp_path, bob):
    bob.password = "definitely-wrong-pw"
    cp, delivered = fetchmail(server, tmp_path / "fm", bob, keep=True)
    assert cp.returncode == 3, f"fetchmail exit {cp.returncode} (3 = authentication failed)\n{out(cp)}"
    assert delivered == []
