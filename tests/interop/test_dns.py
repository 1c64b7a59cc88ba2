"""The gateway's DNS stub resolver against dnsmasq (issue 6 groundwork): MX routes by preference
(RFC 5321 5.1), the implicit MX, NXDOMAIN as a permanent answer, long TXT records (a DKIM key; one
too long for UDP, asked again over TCP), and a resolver that does not answer as a temporary failure.
"""
from __future__ import annotations

import subprocess
import time

import pytest

from dnsserver import DnsServer
from harness import postern_bin
from sink import free_port

LONG_TXT = "v=DKIM1; k=rsa; p=" + "A" * 392
# Three records of 500 octets: more than EDNS's 1232 octets of UDP, so dnsmasq truncates the
# answer and it comes again over TCP.
HUGE_TXT = ["x" * 500, "y" * 500, "z" * 500]


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    server = DnsServer(tmp_path_factory.mktemp("dns"), [
        ("MX", "example.test", "mx2.example.test", 20),
        ("MX", "example.test", "mx1.example.test", 10),
        ("A", "mx1.example.test", "127.0.0.1"),
        ("A", "mx2.example.test", "127.0.0.2"),
        ("AAAA", "mx2.example.test", "::1"),
        ("A", "nomx.test", "127.0.0.5"),
        ("TXT", "postern-rsa._domainkey.i2pmail.org", LONG_TXT),
        ("TXT", "example.test", "v=spf1 ip4:127.0.0.1 -all"),
        *[("TXT", "huge.test", text) for text in HUGE_TXT],
    ]).start()
    yield server
    server.stop()


def postern(*args, timeout=30):
    return subprocess.run([str(postern_bin()), "gateway", *args], capture_output=True, text=True, timeout=timeout)


def test_mx_route_by_preference_with_addresses(dns):
    cp = postern("mx", "example.test", "--resolver", f"127.0.0.1:{dns.port}")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == ["mx1.example.test\t127.0.0.1", "mx2.example.test\t127.0.0.2 0:0:0:0:0:0:0:1"]


def test_implicit_mx_and_no_such_domain(dns):
    cp = postern("mx", "nomx.test", "--resolver", f"127.0.0.1:{dns.port}")
    assert cp.returncode == 0 and cp.stdout.strip() == "nomx.test\t127.0.0.5", cp.stdout + cp.stderr
    cp = postern("mx", "nowhere.test", "--resolver", f"127.0.0.1:{dns.port}")
    assert cp.returncode == 2 and "does not exist" in cp.stdout


def test_txt_records_long_and_short(dns):
    cp = postern("dns", "txt", "postern-rsa._domainkey.i2pmail.org", "--resolver", f"127.0.0.1:{dns.port}")
    assert cp.returncode == 0 and f'\tTXT\t"{LONG_TXT}"' in cp.stdout, cp.stdout + cp.stderr
    cp = postern("dns", "txt", "example.test", "--resolver", f"127.0.0.1:{dns.port}")
    assert '"v=spf1 ip4:127.0.0.1 -all"' in cp.stdout


def test_a_truncated_answer_is_asked_again_over_tcp(dns):
    cp = postern("dns", "txt", "huge.test", "--resolver", f"127.0.0.1:{dns.port}")
    assert cp.returncode == 0, cp.stderr
    assert sorted(line.split("\t")[2].strip('"') for line in cp.stdout.splitlines()) == HUGE_TXT
    log = (dns.folder / "dnsmasq.log").read_text(errors="replace")
    assert log.count("query[TXT] huge.test") == 2, "expected the UDP query and the TCP one"


def test_a_silent_resolver_is_a_temporary_failure(dns):
    started = time.monotonic()
    cp = postern("mx", "example.test", "--resolver", f"127.0.0.1:{free_port()}")
    assert cp.returncode == 1 and "would be retried later" in cp.stderr, cp.stdout + cp.stderr
    assert time.monotonic() - started < 15
