"""Postern on a real I2P router (issue 8, I2P-1..3): one offline i2pd 2.45 (tests/peers/i2pd-start.sh)
with many local destinations. Mail clients reach SMTP and POP3 through Postern's own SAM publishing
and through i2pd's server tunnels from `postern i2p tunnels`; the gateway round trip runs with the
core⇄gateway link over I2P; a stranger destination is refused on the link; the router restarts under
a running core and the services come back. Figures go to the end-of-run summary.

Every new SAM session takes 20 s on i2pd 2.45, so sessions are made in parallel where possible.
"""
from __future__ import annotations

import http.client
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import FIGURES
from harness import HOST, REPO
from internet import GATEWAY_ADDRESS, OFFLINE_I2P_OPTIONS, POSTFIX_ADDRESS, Lab, lab_folder
from sink import free_port, stop_process_group

PEERS = REPO / "tests" / "peers"
sys.path.insert(0, str(PEERS))
import sam  # noqa: E402  (the kit's SAM client: a stranger's destination, client tunnels)


class Router:
    def __init__(self):
        if os.geteuid() != 0:
            raise AssertionError("the I2P suite needs root (the kit's i2pd scripts): run it as CI does")
        self.folder = lab_folder() / "i2pd"
        self.sam_port, self.ntcp2_port = free_port(), free_port()
        self.started_at = 0.0

    @property
    def sam(self) -> str:
        return f"127.0.0.1:{self.sam_port}"

    def start(self) -> "Router":
        self.started_at = time.monotonic()
        cp = subprocess.run([str(PEERS / "i2pd-start.sh"), str(self.folder), str(self.sam_port), str(self.ntcp2_port)],
                            capture_output=True, text=True, timeout=180)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        return self

    def stop(self) -> None:
        subprocess.run([str(PEERS / "i2pd-stop.sh"), str(self.folder)], capture_output=True, timeout=60)

    def reload_tunnels(self, text: str) -> None:
        (self.folder / "tunnels.conf").write_text(text)
        os.kill(int((self.folder / "pid").read_text().split()[0]), signal.SIGHUP)  # i2pd reloads its tunnels


class ClientTunnel:
    """sam.py connect: a local port whose connections become streams to DEST (retried until the
    destination is reachable)."""

    def __init__(self, router: Router, dest: str):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(PEERS / "sam.py"), "connect", "--sam", router.sam, "--dest", dest,
             "--listen", f"127.0.0.1:{self.port}", "--retry", "90"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            if line.startswith(b"listening"):
                self.ready.set()

    def wait(self, timeout: float = 120) -> "ClientTunnel":
        assert self.ready.wait(timeout), "the SAM client tunnel did not come up"
        return self

    def close(self) -> None:
        stop_process_group(self.proc)


def wait_line(server, pattern: str, timeout: float = 120, after: int = 0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(server.stdout_lines)[after:]:
            m = re.match(pattern, line)
            if m:
                return m
        time.sleep(0.2)
    raise AssertionError(f"no line /{pattern}/ from postern within {timeout} s:\n" + server.log_tail())


def smtp_round(port: int, account, marker: str, retry_for: float = 60) -> float:
    """One authenticated SMTP transaction to the account itself; its duration in seconds. A new
    tunnel resets connections until its own tunnels are built, hence the retries."""
    deadline = time.monotonic() + retry_for
    while True:
        started = time.monotonic()
        try:
            with smtplib.SMTP(HOST, port, timeout=30) as smtp:
                smtp.login(account.name, account.password)
                smtp.sendmail(account.address, [account.address],
                              f"From: {account.address}\r\nTo: {account.address}\r\nSubject: {marker}\r\n\r\nover I2P\r\n")
            return time.monotonic() - started
        except (smtplib.SMTPServerDisconnected, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def pop3_subjects(port: int, account, retry_for: float = 60) -> list[str]:
    """The Subject lines in the account's mailbox (retried while a new tunnel resets connections)."""
    deadline = time.monotonic() + retry_for
    while True:
        try:
            box = poplib.POP3(HOST, port, timeout=30)
            try:
                box.user(account.name)
                box.pass_(account.password)
                return [line.decode() for i in range(len(box.list()[1])) for line in box.top(i + 1, 0)[1]
                        if line.startswith(b"Subject:")]
            finally:
                try:
                    box.quit()
                except (poplib.error_proto, OSError):
                    pass
        except (poplib.error_proto, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.fixture(scope="module")
def router():
    r = Router().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def published(router, make_server):
    """A core publishing SMTP, POP3 and the account pages on I2P through SAM, and client tunnels
    to SMTP and POP3."""
    keys = router.folder.parent / "core-keys"
    core = make_server({"i2p": {"sam": router.sam, "publish": ["smtp", "pop3", "web"], "keys_dir": str(keys),
                                "options": OFFLINE_I2P_OPTIONS}}, name="i2pcore")
    smtp_name = wait_line(core, r"^smtp on I2P at (\S+)$").group(1)
    pop3_name = wait_line(core, r"^pop3 on I2P at (\S+)$").group(1)
    core.web_name = wait_line(core, r"^web on I2P at (\S+)$").group(1)
    tunnels = [ClientTunnel(router, smtp_name), ClientTunnel(router, pop3_name)]
    yield core, keys, tunnels, (smtp_name, pop3_name)
    for t in tunnels:
        t.close()


def test_smtp_and_pop3_through_postern_own_sam_publishing(router, published):
    core, keys, (smtp_tunnel, pop3_tunnel), (smtp_name, pop3_name) = published
    # I2P-1: one destination per service, keys kept (0600) in i2pd's format, names as b32.
    assert smtp_name != pop3_name and all(n.endswith(".b32.i2p") and len(n) == 60 for n in (smtp_name, pop3_name))
    assert (keys / "smtp.dat").stat().st_mode & 0o777 == 0o600
    account = core.take_account("i2puser")
    smtp_tunnel.wait()
    pop3_tunnel.wait()
    first = smtp_round(smtp_tunnel.port, account, "first over I2P")
    FIGURES.append(f"I2P: router start → first mail delivered over I2P: {time.monotonic() - router.started_at:.1f} s")
    assert "Subject: first over I2P" in pop3_subjects(pop3_tunnel.port, account)
    # The added latency of one SMTP transaction over I2P (zero-hop tunnels here) against loopback.
    over_i2p = [smtp_round(smtp_tunnel.port, account, f"timed {i}") for i in range(5)]
    direct = [smtp_round(core.smtp_port, account, f"direct {i}") for i in range(5)]
    FIGURES.append(f"I2P: one SMTP transaction (AUTH, MAIL, RCPT, DATA, QUIT): median {statistics.median(over_i2p) * 1000:.0f} ms over I2P, "
                   f"{statistics.median(direct) * 1000:.0f} ms on loopback (first {first * 1000:.0f} ms)")
    # The core learns nothing of who connected: the SAM forward is silent, every stream comes from
    # the bridge on loopback, and nothing of it is logged.
    log = core.log_tail(400)
    assert ".b32.i2p" not in log.replace(smtp_name, "").replace(pop3_name, "").replace(core.web_name, "")


def test_account_pages_and_the_webmail_over_i2p(router, published, tmp_path):
    """I2P-1 for the web: the account pages on their own destination, and `postern webmail`
    reaching the core's SMTP and POP3 destinations through SAM instead of client tunnels."""
    from test_web_accounts import Client
    from test_webmail import WebmailProcess

    core, _, _, (smtp_name, pop3_name) = published
    assert len({core.web_name, smtp_name, pop3_name}) == 3
    web = ClientTunnel(router, core.web_name).wait()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                resp, page = Client(web.port).get("/signup")
                break
            except (ConnectionError, OSError, http.client.HTTPException):
                assert time.monotonic() < deadline, "the account pages never answered over I2P"
                time.sleep(1)
        assert resp.status == 200 and "Create an account" in page
    finally:
        web.close()
    account = core.take_account("webmaili2p")
    smtp_round(core.smtp_port, account, "waiting for the webmail")
    webmail = WebmailProcess(tmp_path, core, overrides={
        "i2p": {"sam": router.sam, "options": OFFLINE_I2P_OPTIONS},
        "webmail": {"smtp_destination": smtp_name, "pop3_destination": pop3_name, "smtp": None, "pop3": None}})
    try:
        c = Client(webmail.port)
        token = c.csrf("/login")
        deadline = time.monotonic() + 120
        while True:  # the webmail's own session and tunnels take a while on a fresh router
            resp, page = c.post("/login", {"csrf": token, "user": account.name, "password": account.password})
            if resp.status == 303:
                break
            assert resp.status == 401 and "cannot be reached" in page, page[:2000]
            assert time.monotonic() < deadline, "the webmail never reached POP3 over I2P"
            time.sleep(2)
        resp, page = c.get("/inbox?refresh=1")
        assert resp.status == 200 and "waiting for the webmail" in page
        token = c.csrf("/compose")
        resp, page = c.post("/compose", {"csrf": token, "to": account.address, "subject": "sent by the webmail over I2P",
                                         "body": "hello", "action": "send"})
        assert resp.status == 303, page[:2000]
        assert "Subject: sent by the webmail over I2P" in pop3_subjects(core.pop3_port, account)
    finally:
        assert webmail.stop() == 0


def test_i2pd_server_tunnels_from_postern_i2p_tunnels(router, make_server):
    keys = router.folder.parent / "tunnel-keys"
    # Fixed ports: i2pd's server tunnels point at them.
    core = make_server({"i2p": {"sam": router.sam, "publish": [], "keys_dir": str(keys), "options": OFFLINE_I2P_OPTIONS},
                        "smtp": {"listen": f"127.0.0.1:{free_port()}"}, "pop3": {"listen": f"127.0.0.1:{free_port()}"}},
                       name="tunnelcore")
    names = dict(line.split() for line in core.cli("i2p", "name", "smtp", "pop3").stdout.splitlines())
    conf = core.cli("i2p", "tunnels").stdout
    assert "keys = postern-smtp.dat" in conf and f"port = {core.smtp_port}" in conf and "inbound.length = 0" in conf
    # As the printed comment says: i2pd reads keys files from its data directory.
    for service in ("smtp", "pop3"):
        shutil.copy(keys / f"{service}.dat", router.folder / f"postern-{service}.dat")
    smtp_port, pop3_port = free_port(), free_port()
    clients = "".join(f"\n[client-{service}]\ntype = client\naddress = 127.0.0.1\nport = {port}\ndestination = {names[service]}\n"
                      f"keys = transient-{service}\n" + "".join(f"{k} = {v}\n" for k, v in OFFLINE_I2P_OPTIONS.items())
                      for service, port in (("smtp", smtp_port), ("pop3", pop3_port)))
    router.reload_tunnels(conf + clients)
    account = core.take_account("tunneluser")
    smtp_round(smtp_port, account, "through i2pd tunnels", retry_for=120)
    assert "Subject: through i2pd tunnels" in pop3_subjects(pop3_port, account)
    router.reload_tunnels("")


def test_a_stranger_destination_is_refused_on_the_link_and_the_gateway_round_trip_runs_over_i2p(router, make_server):
    # The stranger's session is made while the lab starts (20 s each, in parallel).
    stranger: list = []
    maker = threading.Thread(target=lambda: stranger.append(sam.Session(("127.0.0.1", router.sam_port), options=OFFLINE_I2P_OPTIONS)))
    maker.start()
    lab = Lab(make_server, sam=router.sam)
    try:
        wait_line(lab.core, r"^gateway link on I2P at (\S+)$")
        assert lab.gateway.door_name == lab.door_name
        # No address of either side on the other: the core's config names no gateway host, the
        # gateway's none of the core's (only destinations).
        gateway_section = lab.gateway.config_path.read_text().split("[gateway]")[1].split("\n[")[0]
        assert "core_listen" not in gateway_section and not re.search(r"^core = ", gateway_section, re.M)
        assert not re.search(r"127\.0\.0\.1:\d+", gateway_section.replace(f"{GATEWAY_ADDRESS}", ""))
        assert "address" not in lab.core.config_path.read_text().split("[relay]")[1].split("[")[0]
        account = lab.core.take_account("linkuser")
        # Outbound: the core's runner reaches the gateway's door over I2P.
        marker = f"i2p-out-{uuid.uuid4().hex[:8]}"
        subprocess.run(["swaks", "--server", f"{HOST}:{lab.core.smtp_port}", "--auth", "PLAIN", "--auth-user", account.name,
                        "--auth-password", account.password, "--from", account.address, "--to", "bob@example.test",
                        "--header", f"Subject: {marker}", "--body", "over the I2P link\n"], check=True, capture_output=True, timeout=90)
        deadline = time.monotonic() + 120
        while not any(marker.encode() in p.read_bytes() for p in lab.postfix.mailbox("bob")):
            assert time.monotonic() < deadline, "the message never reached Postfix over the I2P link\n" + lab.gateway.log()
            time.sleep(0.5)
        # Inbound: Postfix → the gateway's MX → over I2P → the core's mailbox.
        marker = f"i2p-in-{uuid.uuid4().hex[:8]}"
        subprocess.run(["swaks", "--server", f"{POSTFIX_ADDRESS}:25", "--from", "carol@example.test", "--to",
                        f"{account.name}@i2pmail.org", "--header", f"Subject: {marker}", "--body", "from the Internet\n"],
                       check=True, capture_output=True, timeout=90)
        deadline = time.monotonic() + 120
        while not any(marker in s for s in pop3_subjects(lab.core.pop3_port, account)):
            assert time.monotonic() < deadline, "the Internet message never reached the core over I2P\n" + lab.gateway.log()
            time.sleep(0.5)
        # I2P-2: a stranger's stream to the core's link destination is closed before any SMTP.
        maker.join(120)
        assert stranger, "the stranger's SAM session could not be made"
        sock = stranger[0].connect(lab.link_name)
        sock.settimeout(30)
        assert sock.recv(100) == b"", "a stranger got a byte from the core's link destination"
        sock.close()
        stranger[0].close()
        assert "I2P stream from an unknown destination refused" in lab.core.log_tail(400)
    finally:
        lab.close()


def test_the_router_restarts_and_the_services_come_back(router, published):
    core, _, tunnels, (smtp_name, pop3_name) = published
    announced = len(core.stdout_lines)
    router.stop()
    started = time.monotonic()
    router.start()
    # Postern creates its sessions again by itself (no restart of Postern).
    wait_line(core, rf"^smtp on I2P at {re.escape(smtp_name)}$", after=announced, timeout=180)
    wait_line(core, rf"^pop3 on I2P at {re.escape(pop3_name)}$", after=announced, timeout=180)
    FIGURES.append(f"I2P: router restart → SMTP and POP3 on I2P again after {time.monotonic() - started:.1f} s")
    # The old client tunnels died with the router; new ones reach the same names.
    for t in tunnels:
        t.close()
    smtp_tunnel, pop3_tunnel = ClientTunnel(router, smtp_name), ClientTunnel(router, pop3_name)
    tunnels[:] = [smtp_tunnel, pop3_tunnel]
    account = core.take_account("afterrestart")
    smtp_round(smtp_tunnel.wait().port, account, "after the restart", retry_for=120)
    assert "Subject: after the restart" in pop3_subjects(pop3_tunnel.wait().port, account)
    # Loopback kept working throughout.
    smtp_round(core.smtp_port, account, "loopback")
