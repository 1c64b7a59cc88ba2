"""Postfix's smtp-sink as the next hop of Postern's outbound queue (issue 5).

SmtpSink runs `smtp-sink` on a free loopback port with a dump directory: every transaction it
accepts becomes one file holding smtp-sink's own records (X-Helo-Args, X-Mail-Args, X-Rcpt-Args,
a Received header) followed by the message exactly as Postern sent it. Options such as
`-r RCPT` (soft reject), `-f RCPT -B "550 ..."` (hard reject), `-Q DATA` (421 and disconnect) or
`-w 5` (slow DATA) make it misbehave on purpose. It announces AUTH and accepts any credentials.
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def stop_process_group(proc: subprocess.Popen | None) -> None:
    """SIGTERM to a helper started with start_new_session, and wait for it."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Dumped:
    helo: str
    mail_args: str
    rcpt_args: list[str]
    message: bytes            # the message as Postern sent it (smtp-sink stores lines with LF)
    arrived: float            # wall-clock time the dump file was last written
    path: Path = field(repr=False, default=None)

    def header(self, name: str) -> str | None:
        head = self.message.split(b"\n\n", 1)[0].decode("utf-8", "replace")
        value = None
        for line in head.split("\n"):
            if line[:1] in (" ", "\t") and value is not None:
                value += " " + line.strip()
                continue
            if value is not None:
                return value
            k, _, v = line.partition(":")
            if k.lower() == name.lower():
                value = v.strip()
        return value


class SmtpSink:
    def __init__(self, folder: Path, *options: str, port: int | None = None):
        self.folder = Path(folder)
        self.dump_dir = self.folder / "dump"
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.options = list(options)
        self.proc: subprocess.Popen | None = None

    def start(self, *options: str) -> "SmtpSink":
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        if not Path(binary).exists():
            raise AssertionError("smtp-sink is not installed (Debian package postfix) — run scripts/install-test-deps")
        opts = list(options) if options else self.options
        # -u is required when running as root; -d dumps each transaction to its own file.
        cmd = [binary, "-u", getpass.getuser(), "-d", f"{self.dump_dir}/%H%M%S.", *opts, f"127.0.0.1:{self.port}", "100"]
        self.log = open(self.folder / "smtp-sink.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"smtp-sink exited: {(self.folder / 'smtp-sink.log').read_text(errors='replace')}")
                time.sleep(0.05)
        raise AssertionError("smtp-sink did not start listening")

    def stop(self) -> None:
        stop_process_group(self.proc)
        self.proc = None
        # the port must be free again before a new sink takes it
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                time.sleep(0.05)
            except OSError:
                return

    def restart(self, *options: str) -> "SmtpSink":
        self.stop()
        return self.start(*options)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def messages(self) -> list[Dumped]:
        """Every dumped transaction, in arrival order."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"smtp-sink died (exit status {self.proc.returncode}): "
                                 + (self.folder / "smtp-sink.log").read_text(errors="replace")[-2000:])
        out = []
        for p in self.dump_dir.iterdir():
            if time.time() - p.stat().st_mtime < 0.3:
                continue  # may still be being written
            raw = p.read_bytes()
            records, rest = {}, raw
            rcpts = []
            # smtp-sink's records, then its 3-line Received header, then the message
            while rest:
                line, _, rest = rest.partition(b"\n")
                text = line.rstrip(b"\r").decode("utf-8", "replace")
                if text.startswith("Received:"):
                    for _ in range(2):
                        _, _, rest = rest.partition(b"\n")
                    break
                k, _, v = text.partition(": ")
                if k == "X-Rcpt-Args":
                    rcpts.append(v)
                else:
                    records[k] = v
            if "X-Mail-Args" not in records:
                continue  # a transaction smtp-sink cut short
            # smtp-sink ends each dump with an empty line of its own
            message = rest[:-1] if rest.endswith(b"\n\n") else rest
            out.append(Dumped(records.get("X-Helo-Args", ""), records.get("X-Mail-Args", ""), rcpts, message,
                              p.stat().st_mtime, p))
        return sorted(out, key=lambda d: d.path.stat().st_mtime_ns)

    def wait_subject(self, subject: str, timeout: float) -> list[Dumped]:
        """The copies of the message with this Subject, once at least one has arrived."""
        deadline = time.monotonic() + timeout
        while True:
            got = [d for d in self.messages() if d.header("Subject") == subject]
            if got or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def wait_for(self, count: int, timeout: float) -> list[Dumped]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.messages()
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.05)
