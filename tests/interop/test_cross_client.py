"""A message sent by one real client is fetched by another and compared (bodies byte-exact)."""
import email.policy
from email.message import EmailMessage

from clients import curl_pop3, curl_smtp_send, fetchmail, mutt_send, out, swaks_auth
from mailutil import assert_same_message, fetch_all, find_by_token, make_message, smtp_connect, token
from test_mutt import mutt_expected

TRICKY_BODY = ("line one {tok}\n"
               ".leading dot (dot-stuffing both ways)\n"
               "..two leading dots\n"
               ".\n"
               "\n"
               "From a line that mbox would mangle\n"
               "trailing spaces   \n"
               "\ttab-indented\n"
               "Grüße ☃\n"
               + "y" * 990 + "\n"          # 990 + CRLF: a long but legal line
               + "last line\n")


def test_swaks_to_curl(server, tmp_path, tool, alice, bob):
    tool("swaks"), tool("curl")
    tok = token("swaks2curl")
    msg = make_message(alice.address, bob.address, "swaks to curl", TRICKY_BODY.format(tok=tok))
    cp = swaks_auth(server, tmp_path, alice, "PLAIN", to=bob.address, data=msg)
    assert cp.returncode == 0, out(cp)
    got = curl_pop3(server, bob, "/1")
    assert got.returncode == 0, out(got)
    assert tok.encode() in got.stdout
    assert_same_message(msg, got.stdout, sender=alice.address, what="swaks -> curl")


def test_curl_to_poplib(server, tmp_path, tool, alice, bob):
    tool("curl")
    tok = token("curl2pop")
    msg = make_message(alice.address, bob.address, "curl to poplib", TRICKY_BODY.format(tok=tok))
    cp = curl_smtp_send(server, tmp_path, alice, [bob.address], msg)
    assert cp.returncode == 0, out(cp)
    got = fetch_all(server, bob)
    assert len(got) == 1
    assert_same_message(msg, got[0], sender=alice.address, what="curl -> poplib")


def test_smtplib_to_fetchmail(server, tmp_path, tool, alice, bob):
    tool("fetchmail")
    tok = token("smtplib2fm")
    m = EmailMessage(policy=email.policy.SMTPUTF8)
    m["From"], m["To"], m["Subject"] = alice.address, bob.address, "smtplib to fetchmail"
    m.set_content(TRICKY_BODY.format(tok=tok), cte="8bit")
    with smtp_connect(server, alice) as s:
        assert s.send_message(m, mail_options=["SMTPUTF8", "BODY=8BITMIME"]) == {}
        sent = s.sent_data[0]
    cp, delivered = fetchmail(server, tmp_path / "fm", bob, keep=False)
    assert cp.returncode == 0, out(cp)
    found = find_by_token(delivered, tok)
    assert len(found) == 1, f"fetchmail delivered {len(delivered)} message(s), {len(found)} with the token"
    assert_same_message(sent, found[0], sender=alice.address, what="smtplib -> fetchmail")


def test_mutt_to_poplib(server, tmp_path, tool, alice, bob):
    tool("mutt")
    tok = token("mutt2pop")
    text = f"from mutt {tok}\n.dot\n..dots\nFrom here\nbye\n".encode()
    cp = mutt_send(server, tmp_path / "mutt", alice, bob.address, "mutt to poplib", text)
    assert cp.returncode == 0, out(cp)
    got = fetch_all(server, bob)
    assert len(got) == 1
    assert_same_message(mutt_expected(alice.address, "mutt to poplib", text), got[0], sender=alice.address,
                        what="mutt -> poplib")


def test_mutt_to_curl_and_fetchmail(server, tmp_path, tool, alice, bob):
    """The same stored message is byte-identical through curl, poplib and fetchmail."""
    tool("mutt"), tool("curl"), tool("fetchmail")
    tok = token("mutt3")
    text = f"three readers {tok}\n.x\n".encode()
    assert mutt_send(server, tmp_path / "mutt", alice, bob.address, "three readers", text).returncode == 0
    via_pop = fetch_all(server, bob)
    via_curl = curl_pop3(server, bob, "/1").stdout
    cp, via_fm = fetchmail(server, tmp_path / "fm", bob, keep=True)
    assert cp.returncode == 0, out(cp)
    assert len(via_pop) == 1 and len(via_fm) == 1
    assert via_curl == via_pop[0], "curl and poplib see different bytes for the same message"
    assert via_fm[0] == via_pop[0], "fetchmail and poplib see different bytes for the same message"
