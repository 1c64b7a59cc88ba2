"""The live binary's life cycle (CLI-2, OPS-4) and the account CLI used while the server runs
(ACCT-1..4, CLI-1), checked through the real protocols."""
import poplib
import signal
import smtplib

import pytest

from harness import HOST, LISTEN_RE
from mailutil import RawSMTP, fetch_all, make_message, pop_login, send_raw, smtp_connect, token


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_and_restart(make_server, sig):
    srv = make_server(name=f"life-{sig.name}")
    lines = [ln for ln in srv.stdout_lines if LISTEN_RE.match(ln)]
    assert sorted(ln.split()[0] for ln in lines) == ["pop3", "smtp", "web"], srv.stdout_lines
    assert all(f"{HOST}:" in ln for ln in lines), lines
    a, b = srv.add_account("alice"), srv.add_account("bob")
    msg = make_message(a.address, b.address, "survives restart", f"persist {token()}\n")
    send_raw(srv, a, [b.address], msg)
    idle_smtp = RawSMTP(srv.smtp_port)            # open sessions must not block the shutdown
    idle_pop = pop_login(srv, b)
    try:
        rc = srv.stop(sig, timeout=15)
        assert rc == 0, f"{sig.name}: exit status {rc} (None = had to be killed)\n{srv.log_tail()}"
    finally:
        idle_smtp.close()
        idle_pop.sock.close()
    srv.start()
    got = fetch_all(srv, b)
    assert len(got) == 1 and got[0].split(b"\r\n\r\n", 1)[1] == msg.split(b"\r\n\r\n", 1)[1]


def test_account_add_rules(server):
    ok = server.add_account("rules")
    assert server.cli("account", "add", ok.name, input="another-long-password\n", check=False).returncode != 0, \
        "adding an existing account succeeded"
    short = server.cli("account", "add", "shortpw", input="short\n", check=False)
    assert short.returncode != 0, "a password of 5 characters was accepted (minimum 10)"
    bad_names = ("postmaster", "abuse", "root", "admin", "hostmaster", "webmaster", "mailer-daemon", "noreply",
                 "x", "_underscore", ".dot-first", "has space", "a" * 33, "bad!char", "ümlaut")
    for bad in bad_names:
        cp = server.cli("account", "add", bad, input="long-enough-password\n", check=False)
        assert cp.returncode != 0, f"account name {bad!r} was accepted"
    upper = server.cli("account", "add", "MiXeD-Case", input="long-enough-password\n", check=False)
    assert upper.returncode == 0, upper.stderr
    listing = server.cli("account", "list").stdout
    assert ok.name in listing and "mixed-case" in listing, listing
    listed = set(listing.replace("@", " ").split())
    assert not listed & {b.lower() for b in bad_names}, f"refused names appear in the list: {listing}"
    assert "shortpw" not in listed


def test_account_show_and_list_reveal_no_password(server):
    a = server.add_account("show")
    for cp in (server.cli("account", "show", a.name), server.cli("account", "list")):
        assert a.name in cp.stdout
        assert a.password not in cp.stdout + cp.stderr, "the CLI prints the password"


def test_full_address_form_works(server):
    a = server.add_account("full")
    shown = server.cli("account", "show", a.address)
    assert a.name in shown.stdout


def test_passwd_while_running(server):
    a, b = server.add_account("pw"), server.add_account("pw")
    new = "brand-new-password-1"
    server.cli("account", "passwd", b.name, input=new + "\n")
    with pytest.raises(poplib.error_proto):
        pop_login(server, b)                      # old password
    b.password = new
    pop_login(server, b).quit()
    with smtp_connect(server, b):
        pass


def test_delete_while_running(server):
    a, b = server.add_account("del"), server.add_account("del")
    send_raw(server, a, [b.address], make_message(a.address, b.address, "to be deleted", "bye\n"))
    server.cli("account", "delete", b.name, input="y\n")
    with pytest.raises(poplib.error_proto):
        pop_login(server, b)
    with smtp_connect(server, a) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail(a.address, [b.address], make_message(a.address, b.address, "x", "x\n"))
        code, text = e.value.recipients[b.address]
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)
    again = server.cli("account", "add", b.name, input="yet-another-password\n", check=False)
    assert again.returncode != 0, "a deleted name could be registered again at once (ACCT-4 quarantine)"

