"""A small test Internet for the gateway suite (issue 6), all on loopback addresses of this host:

  127.0.0.2:53  dnsmasq: MX/A/TXT for example.test, i2pmail.org (SPF, both DKIM keys), refuse.test,
                garbage.test, brokentls.test, and the blocklist bl.test (it lists 127.0.0.9)
  127.0.0.3:25  `postern gateway`'s MX (mx.i2pmail.org); its door for the core on a free port
  127.0.0.4:25  Postfix, the MX of example.test (tests/peers/internet-mx-start.sh), STARTTLS,
                Maildirs for alice bob carol dave postmaster; it relays 127/8's mail by DNS MX
  127.0.0.6:25  a remote MX that refuses every recipient (550)
  127.0.0.7:25  a remote MX that answers garbage
  127.0.0.8:25  a remote MX whose STARTTLS handshake breaks; mail in clear is taken

The core (`postern serve`, harness.PosternServer) relays Internet mail to the gateway's door; the
gateway reaches the core's SMTP port with the link's login. Needs root (port 25, Postfix).
"""
from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socketserver
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from dnsserver import DnsServer
from harness import REPO, ServerError, _retry_busy, postern_bin, render_config
from sink import free_port

PEERS = REPO / "tests" / "peers"
DNS_ADDRESS = "127.0.0.2"
GATEWAY_ADDRESS = "127.0.0.3"
POSTFIX_ADDRESS = "127.0.0.4"
REFUSING_MX = "127.0.0.6"
GARBAGE_MX = "127.0.0.7"
BROKEN_TLS_MX = "127.0.0.8"
LISTED_CLIENT = "127.0.0.9"
STRANGER = "127.0.0.5"
LINK_SECRET = "link-secret-for-tests-0123456789"
GATEWAY_LISTEN_RE = re.compile(r"^(mx|core link) (?:listening on (\S+):(\d+)|on I2P at (\S+))\s*$")
# Options for sessions on the one offline i2pd router of the tests (see tests/peers/i2pd-start.sh).
OFFLINE_I2P_OPTIONS = {"inbound.length": "0", "outbound.length": "0", "inbound.quantity": "1", "outbound.quantity": "1",
                       "i2cp.leaseSetType": "1", "i2cp.leaseSetEncType": "0"}


def lab_folder() -> Path:
    """A folder Postfix can traverse (a plain mktemp -d is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="postern-internet-", dir="/var/tmp"))
    folder.chmod(0o755)
    return folder


def dkim_keys(folder: Path) -> dict[str, str]:
    cp = subprocess.run([str(postern_bin()), "gateway", "dkim-keygen", "--dir", str(folder), "--domain", "i2pmail.org"],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    return dict(re.findall(r'^(\S+)\. IN TXT "(.*)"$', cp.stdout, re.M))


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def i2p_name(sam: str, keys_dir: Path, service: str) -> str:
    """`postern i2p name SERVICE`: the keys made through the SAM bridge, the .b32.i2p name printed."""
    config = keys_dir.parent / f"{keys_dir.name}.toml"
    config.write_text(render_config({"i2p": {"sam": sam, "keys_dir": str(keys_dir)}}))
    cp = subprocess.run([str(postern_bin()), "i2p", "name", service, "--config", str(config)],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    name = cp.stdout.split()[1]
    assert name.endswith(".b32.i2p") and (keys_dir / f"{service}.dat").stat().st_mode & 0o777 == 0o600
    return name


def sender_key(folder: Path) -> tuple[bytes, str]:
    """An RSA key of example.test's own (PKCS#1 PEM for dkimpy) and its DKIM TXT record."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / "example.test.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"], check=True, capture_output=True, timeout=60)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True,
                         timeout=60).stdout
    return key.read_bytes(), "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def zone(records: dict[str, str]) -> list[tuple]:
    out = [
        ("MX", "example.test", "mx.example.test", 10), ("A", "mx.example.test", POSTFIX_ADDRESS),
        ("TXT", "example.test", f"v=spf1 ip4:{POSTFIX_ADDRESS} -all"),
        ("MX", "i2pmail.org", "mx.i2pmail.org", 10), ("A", "mx.i2pmail.org", GATEWAY_ADDRESS),
        ("TXT", "i2pmail.org", f"v=spf1 ip4:{GATEWAY_ADDRESS} -all"),
        ("TXT", "_dmarc.i2pmail.org", "v=DMARC1; p=reject"),
        ("MX", "refuse.test", "mx.refuse.test", 10), ("A", "mx.refuse.test", REFUSING_MX),
        ("MX", "garbage.test", "mx.garbage.test", 10), ("A", "mx.garbage.test", GARBAGE_MX),
        ("MX", "brokentls.test", "mx.brokentls.test", 10), ("A", "mx.brokentls.test", BROKEN_TLS_MX),
        ("A", ".".join(reversed(LISTED_CLIENT.split("."))) + ".bl.test", "127.0.0.2"),
    ]
    out += [("TXT", name, text) for name, text in records.items()]
    return out


def merge_sections(base: dict, extra: dict | None) -> dict:
    """A copy of BASE ({section: {key: value}}) with EXTRA's keys set over it, section by section."""
    out = {section: dict(keys) for section, keys in base.items()}
    for section, keys in (extra or {}).items():
        out.setdefault(section, {}).update(keys)
    return out


class GatewayProcess:
    """`postern gateway --config FILE` on its own folder; waits for its two listening lines."""

    def __init__(self, folder: Path, sections: dict):
        self.folder = folder
        self.config_path = folder / "gateway.toml"
        self.config_path.write_text(render_config(sections))
        self.data_dir = Path(sections["gateway"]["data_dir"])
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.core_port: int | None = None
        self.stderr_path = folder / "gateway.stderr.log"

    def start(self, timeout: float = 90) -> "GatewayProcess":
        err = open(self.stderr_path, "ab")
        self.proc = _retry_busy(lambda: subprocess.Popen(
            [str(postern_bin()), "gateway", "--config", str(self.config_path)], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=err, cwd=self.folder, start_new_session=True))
        err.close()
        seen = threading.Event()

        def read():
            for raw in iter(self.proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip()
                self.lines.append(line)
                m = GATEWAY_LISTEN_RE.match(line)
                if m and m.group(1) == "core link":
                    self.core_port = int(m.group(3)) if m.group(3) else None
                    self.door_name = m.group(4)
                    seen.set()
        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not seen.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerError("postern gateway did not start:\n" + self.log())
        return self

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None

    def log(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stored_files(self) -> list[Path]:
        return [p for p in self.data_dir.rglob("*") if p.is_file()]


class Postfix:
    """The kit's Postfix as example.test's MX (tests/peers/internet-mx-start.sh)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def start(self) -> "Postfix":
        env = dict(os.environ, ADDR=POSTFIX_ADDRESS, NAMESERVER=DNS_ADDRESS)
        cp = subprocess.run([str(PEERS / "internet-mx-start.sh"), str(self.folder), "25", "example.test"], env=env,
                            capture_output=True, text=True, timeout=120)
        if cp.returncode != 0:
            raise AssertionError(f"Postfix did not start:\n{cp.stdout}\n{cp.stderr}")
        return self

    def stop(self) -> None:
        subprocess.run([str(PEERS / "internet-mx-stop.sh"), str(self.folder)], capture_output=True, timeout=60)

    def log(self) -> str:
        try:
            return (self.folder / "log" / "postfix.log").read_text(errors="replace")
        except OSError:
            return ""

    def mailbox(self, user: str) -> list[Path]:
        new = self.folder / "mail" / user / "new"
        return sorted(new.iterdir()) if new.exists() else []

    def wait_for_log(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            time.sleep(0.2)
        raise AssertionError(f"Postfix never logged /{pattern}/:\n" + self.log()[-3000:])


class RemoteMX(socketserver.ThreadingTCPServer):
    """A remote MX that misbehaves on purpose, on ADDRESS:25.

    mode "refuse":    every RCPT gets 550 5.1.1 with a text naming the host (must never reach a DSN)
    mode "garbage":   the greeting is not SMTP
    mode "brokentls": offers STARTTLS, answers 220, then sends bytes that are not TLS; a client
                      that comes back in clear may deliver (recorded in .received)
    """
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str, mode: str):
        self.mode = mode
        self.received: list[bytes] = []
        self.starttls_tries = 0
        self.connections = 0
        super().__init__((address, 25), _RemoteMXHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _RemoteMXHandler(socketserver.StreamRequestHandler):
    timeout = 30

    def send(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        server: RemoteMX = self.server
        server.connections += 1
        if server.mode == "garbage":
            self.wfile.write(b"hello? this is not an SMTP server\r\n")
            self.rfile.readline()
            return
        self.send(f"220 mx.{server.mode}.test ESMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.send(f"250-mx.{server.mode}.test")
                self.send("250-STARTTLS" if server.mode == "brokentls" else "250-8BITMIME")
                self.send("250 SIZE 10000000")
            elif verb == b"STAR":
                server.starttls_tries += 1
                # One write: the client sees cleartext right behind the 220 every time (its guard
                # against injected replies trips), rather than sometimes inside the handshake.
                self.wfile.write(b"220 2.0.0 go ahead\r\n\x15\x03\x03\x00\x02\x02\x28 this is not a TLS handshake\r\n")
                self.wfile.flush()
                return
            elif verb == b"MAIL":
                self.send("250 2.1.0 ok")
            elif verb == b"RCPT":
                if server.mode == "refuse":
                    self.send("550 5.1.1 <x@refuse.test>: no mailbox here at mx.refuse.test [127.0.0.6]")
                else:
                    self.send("250 2.1.5 ok")
            elif verb == b"DATA":
                self.send("354 go ahead")
                data = b""
                while True:
                    chunk = self.rfile.readline()
                    if not chunk or chunk == b".\r\n":
                        break
                    data += chunk
                server.received.append(data)
                self.send("250 2.0.0 taken")
            elif verb == b"QUIT":
                self.send("221 2.0.0 bye")
                return
            else:
                self.send("250 2.0.0 ok")


class Lab:
    """Everything above, started in order and stopped in reverse."""

    def __init__(self, make_server, sam: str | None = None, core_extra: dict | None = None,
                 gateway_extra: dict | None = None):
        """With `sam` ("127.0.0.1:PORT"), the core⇄gateway link runs over I2P (issue 8).
        `core_extra` / `gateway_extra` ({section: {key: value}}) are merged into the
        core's and the gateway's configuration (e.g. `{"scan": {"clamd": "127.0.0.1:PORT"}}`)."""
        if os.geteuid() != 0:
            raise AssertionError("the gateway suite needs root (port 25, Postfix): run it as CI does")
        if shutil.which("postfix") is None:
            raise AssertionError("postfix is not installed — run scripts/install-test-deps")
        self.folder = lab_folder()
        self.keys = dkim_keys(self.folder / "dkim")
        self.sender_key, sender_record = sender_key(self.folder / "example-dkim")
        self.keys["ext._domainkey.example.test"] = sender_record
        self.cert, self.key = self_signed(self.folder, "mx.i2pmail.org")
        self.secret = self.folder / "link.secret"
        self.secret.write_text(LINK_SECRET + "\n")
        self.secret.chmod(0o600)
        self.stopped: list = []
        self.dns = DnsServer(self.folder / "dns", zone(self.keys), address=DNS_ADDRESS, port=53).start()
        self.stopped.append(self.dns.stop)
        self.postfix = Postfix(self.folder / "postfix").start()
        self.stopped.append(self.postfix.stop)
        self.remotes = {mode: RemoteMX(address, mode) for mode, address in
                        (("refuse", REFUSING_MX), ("garbage", GARBAGE_MX), ("brokentls", BROKEN_TLS_MX))}
        for remote in self.remotes.values():
            self.stopped.append(remote.close)
        door = free_port()
        core_overrides = {
            "server": {"internet_domain": "i2pmail.org"},
            "delay": {"default": "none"},
            "relay": {"address": f"127.0.0.1:{door}", "username": "core", "password_file": str(self.secret)},
        }
        gateway_i2p = {}
        if sam:
            # I2P-2: each side knows only the other's destination name, made before either starts.
            core_keys, gateway_keys = self.folder / "core-i2p-keys", self.folder / "gateway-i2p-keys"
            link = i2p_name(sam, core_keys, "link")
            door_name = i2p_name(sam, gateway_keys, "door")
            del core_overrides["relay"]["address"]
            core_overrides["i2p"] = {"sam": sam, "gateway": door_name, "publish": [], "keys_dir": str(core_keys),
                                     "options": OFFLINE_I2P_OPTIONS}
            gateway_i2p = {"i2p": {"sam": sam, "core": link, "keys_dir": str(gateway_keys), "options": OFFLINE_I2P_OPTIONS}}
            self.link_name, self.door_name = link, door_name
        # The core first (the gateway needs its port); it reaches the gateway only when mail is queued.
        self.core = make_server(merge_sections(core_overrides, core_extra), name="core")
        self.gateway_sections = merge_sections({**gateway_i2p,
            "server": {"domain": "mail.i2p", "internet_domain": "i2pmail.org", "log_level": "info"},
            "queue": {"retry_first": "1s", "retry_max": "2s", "delay_notice_after": "3s", "give_up_after": "8s"},
            "gateway": {
                "mx_listen": f"{GATEWAY_ADDRESS}:25", "core_listen": f"127.0.0.1:{door}",
                "core": f"127.0.0.1:{self.core.smtp_port}", "resolver": f"{DNS_ADDRESS}:53",
                "username": "core", "password_file": str(self.secret), "data_dir": str(self.folder / "gateway-data"),
                "dkim_dir": str(self.folder / "dkim"), "tls_cert": str(self.cert), "tls_key": str(self.key),
                "outbound_address": GATEWAY_ADDRESS, "dnsbl": ["bl.test"],
                "max_message_size": "64KiB", "max_recipients": 2,
            } | ({} if not sam else {"core": None, "core_listen": None}),
        }, gateway_extra)
        self.gateway = GatewayProcess(self.folder, self.gateway_sections).start()
        self.stopped.append(lambda: self.gateway.stop())
        self.door = door

    def restart_gateway(self, changes: dict) -> GatewayProcess:
        """Stop the gateway and start it again with CHANGES merged into its configuration (a key
        set to None is left out); its folder, queue and ports stay the same."""
        self.gateway.stop()
        self.gateway_sections = merge_sections(self.gateway_sections, changes)
        self.gateway = GatewayProcess(self.folder, self.gateway_sections).start()
        return self.gateway

    def close(self) -> None:
        for stop in reversed(self.stopped):
            try:
                stop()
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
