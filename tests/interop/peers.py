"""Real third-party daemons for the interop tests, started and stopped through the kit's scripts in
tests/peers (each keeps its state under its own folder, writes DIR/pid, stops exactly that PID):

  Ngircd  ngircd on 127.0.0.1:PORT (tests/peers/ngircd-start.sh / ngircd-stop.sh), the IRC server
          of the new-mail bot; `IRCClient` (tests/peers/irc.py) is a user on it
  Clamd   clamd on 127.0.0.1:PORT with a database of only the EICAR signatures
          (tests/peers/clamd-start.sh / clamd-stop.sh); `eicar` is the 68-byte test file

Both can be stopped and started again on the same port (the restart and "scanner down" tests).
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from harness import REPO
from sink import free_port

PEERS = REPO / "tests" / "peers"
sys.path.insert(0, str(PEERS))
import irc as _irc  # noqa: E402  (tests/peers/irc.py)
import clamd as _clamd  # noqa: E402  (tests/peers/clamd.py)


def _run(script: str, *args: str, timeout: float = 120) -> str:
    cp = subprocess.run([str(PEERS / script), *args], capture_output=True, text=True, timeout=timeout)
    if cp.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
    return cp.stdout


class _Daemon:
    start_script = stop_script = ""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.running = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self):
        _run(self.start_script, str(self.folder), str(self.port))
        self.running = True
        return self

    def stop(self) -> None:
        _run(self.stop_script, str(self.folder), timeout=60)
        self.running = False
        # The port is free again once nothing accepts there.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._accepts():
            time.sleep(0.05)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False


class Ngircd(_Daemon):
    start_script, stop_script = "ngircd-start.sh", "ngircd-stop.sh"

    def log(self) -> str:
        try:
            return (self.folder / "ngircd.log").read_text(errors="replace")
        except OSError:
            return ""


class Clamd(_Daemon):
    start_script, stop_script = "clamd-start.sh", "clamd-stop.sh"

    @property
    def eicar(self) -> bytes:
        return (self.folder / "eicar.txt").read_bytes()

    def scan(self, data: bytes) -> str:
        return _clamd.instream(data, ("127.0.0.1", self.port))

    def log(self) -> str:
        try:
            return (self.folder / "clamd.log").read_text(errors="replace")
        except OSError:
            return ""


class IRCClient(_irc.IRC):
    """The kit's IRC client that also keeps every line the server sent (NOTICEs, INVITEs, CTCP
    replies: anything the bot might answer with), as (prefix nick, COMMAND, args)."""

    def __init__(self, port: int, nick: str, timeout: float = 15):
        self.lines: list[tuple[str, str, list[str]]] = []
        super().__init__(("127.0.0.1", port), nick, timeout=timeout)

    def _read(self):
        msg = super()._read()
        self.lines.append(msg)
        return msg

    def request(self, line: str, until: str, timeout: float = 15) -> list[str]:
        """Send LINE, return the args of the first reply whose command is UNTIL."""
        self.send(line)
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        while time.monotonic() < deadline:
            _, cmd, args = self._read()
            if cmd == until:
                return args
        raise AssertionError(f"no {until} reply to {line!r}")

    def present(self, nick: str) -> bool:
        """ISON (RFC 2812 4.9): is NICK on the server now?"""
        args = self.request(f"ISON {nick}", "303")
        return nick.lower() in args[-1].lower().split()

    def wait_present(self, nick: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.present(nick):
            if time.monotonic() > deadline:
                raise AssertionError(f"{nick} is not on the IRC server after {timeout} s")
            time.sleep(0.3)

    def collect(self, seconds: float, count: int | None = None) -> list[dict]:
        """The PRIVMSGs received within the next SECONDS (and any already waiting); with COUNT,
        returns as soon as that many have come."""
        return list(self.messages(seconds=seconds, count=count))

    def from_nick(self, nick: str) -> list[tuple[str, str, list[str]]]:
        """Every line seen so far whose source is NICK (any command)."""
        return [m for m in self.lines if m[0].lower() == nick.lower()]
