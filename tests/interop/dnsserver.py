"""dnsmasq as the DNS of the test Internet (what ../shared/peers/kit/dns-start.sh does, kept here).

DnsServer(folder, records).start() runs dnsmasq on a free loopback port, answering only from
`records` (no upstream, no /etc/hosts): ("MX", name, host, pref), ("A", name, ip),
("AAAA", name, ip), ("TXT", name, text), ("CNAME", name, target). Everything else is NXDOMAIN.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from sink import free_port, stop_process_group


class DnsServer:
    def __init__(self, folder: Path, records: list[tuple], address: str = "127.0.0.1", port: int | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.records = records
        # Postfix (libresolv) asks port 53 only: the gateway suite runs this on 127.0.0.2:53.
        self.address = address
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    def config(self) -> str:
        lines = [f"listen-address={self.address}", f"port={self.port}", "bind-interfaces", "no-resolv", "no-hosts",
                 "user=nobody", "group=nogroup", "pid-file=", "log-queries", f"log-facility={self.folder}/dnsmasq.log",
                 "address=/#/"]
        for kind, name, *rest in self.records:
            if kind in ("A", "AAAA"):
                lines.append(f"host-record={name},{rest[0]}")
            elif kind == "MX":
                lines.append(f"mx-host={name},{rest[0]},{rest[1] if len(rest) > 1 else 10}")
            elif kind == "TXT":
                chunks = [rest[0][i:i + 255] for i in range(0, len(rest[0]), 255)] or [""]
                lines.append(f"txt-record={name}," + ",".join(f'"{c}"' for c in chunks))
            elif kind == "CNAME":
                lines.append(f"cname={name},{rest[0]}")
            else:
                raise ValueError(kind)
        return "\n".join(lines) + "\n"

    def start(self) -> "DnsServer":
        binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        if not Path(binary).exists():
            raise AssertionError("dnsmasq is not installed (Debian package dnsmasq-base) — run scripts/install-test-deps")
        conf = self.folder / "dnsmasq.conf"
        conf.write_text(self.config())
        log = open(self.folder / "dnsmasq.out", "ab")
        self.proc = subprocess.Popen([binary, "-k", "-C", str(conf)], stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 10
        query = bytes.fromhex("abcd0100000100000000000004746573740000010001")  # "test" A
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("dnsmasq exited: " + (self.folder / "dnsmasq.out").read_text(errors="replace"))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.2)
                try:
                    s.sendto(query, (self.address, self.port))
                    s.recvfrom(512)
                    return self
                except OSError:
                    time.sleep(0.05)
        raise AssertionError("dnsmasq did not answer")

    def stop(self) -> None:
        stop_process_group(self.proc)
        self.proc = None
