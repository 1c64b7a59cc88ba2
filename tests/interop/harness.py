"""Start, stop and administer a live `postern serve` for the interop tests.

A PosternServer owns one folder: config.toml, the data folder and the server's logs. It runs the
binary under test (env POSTERN_BIN, default <repo>/.build/debug/postern), waits for the
`smtp listening on 127.0.0.1:PORT` / `pop3 listening on 127.0.0.1:PORT` lines and exposes the
ports. Accounts are created with the real CLI (`postern account add NAME --config FILE`, password
on stdin), while the server runs.
"""
from __future__ import annotations

import concurrent.futures
import errno
import itertools
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "mail.i2p"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
LISTEN_RE = re.compile(r"^(smtp|pop3|web) listening on (\S+):(\d+)\s*$")


def postern_bin() -> Path:
    return Path(os.environ.get("POSTERN_BIN") or REPO / ".build" / "debug" / "postern")


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table, keys quoted (they may hold dots: "inbound.length")
        return "{ " + ", ".join(f"{toml_value(str(k))} = {toml_value(x)}" for k, x in v.items()) + " }"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def render_config(sections: dict) -> str:
    out = []
    for name, keys in sections.items():
        out.append(f"[{name}]")
        for k, v in keys.items():
            if v is not None:  # None: leave the key out
                out.append(f"{k} = {toml_value(v)}")
        out.append("")
    return "\n".join(out)


def _retry_busy(spawn, wait: float = 60.0):
    """Run spawn(); retry while the binary is being rewritten by a concurrent `swift build`
    (ETXTBSY), which happens on a developer's machine, never in CI."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return spawn()
        except OSError as e:
            if e.errno != errno.ETXTBSY or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@dataclass
class Account:
    name: str          # local part, e.g. "alice-003"
    password: str
    domain: str = DOMAIN

    @property
    def address(self) -> str:
        return f"{self.name}@{self.domain}"

    def __str__(self) -> str:  # shows up in pytest ids / messages
        return self.address


class ServerError(AssertionError):
    pass


class PosternServer:
    """One `postern serve` process on its own folder; start/stop/kill/restart keep the data."""

    _names = itertools.count(1)

    def __init__(self, folder: Path, overrides: dict | None = None, binary: Path | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.binary = Path(binary or postern_bin())
        self.data_dir = self.folder / "data"
        self.config_path = self.folder / "config.toml"
        self.sections = {
            "server": {"domain": DOMAIN, "data_dir": str(self.data_dir)},
            "smtp": {"listen": f"{HOST}:0"},
            "pop3": {"listen": f"{HOST}:0"},
            "web": {"listen": f"{HOST}:0"},
            "limits": {"auth_penalty_max": "1s"},
        }
        for sec, keys in (overrides or {}).items():
            self.sections.setdefault(sec, {}).update(keys)
        self.config_path.write_text(render_config(self.sections))
        self.proc: subprocess.Popen | None = None
        self.smtp_port: int | None = None
        self.pop3_port: int | None = None
        self.web_port: int | None = None
        self.starts = 0
        self.stdout_lines: list[str] = []
        self._seen = threading.Condition()
        self._counter = itertools.count(1)
        self.accounts: list[Account] = []
        self._pool_lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._prefetched: dict[str, list] = {}

    # -- process ------------------------------------------------------------------------------
    @property
    def stderr_path(self) -> Path:
        return self.folder / f"serve-{self.starts}.stderr.log"

    @property
    def stdout_path(self) -> Path:
        return self.folder / f"serve-{self.starts}.stdout.log"

    def start(self, timeout: float = START_TIMEOUT) -> "PosternServer":
        if not self.binary.exists():
            raise ServerError(f"postern binary not found at {self.binary} (build it or set POSTERN_BIN)")
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        self.smtp_port = self.pop3_port = self.web_port = None
        self.stdout_lines = []
        err = open(self.stderr_path, "wb")
        self.proc = _retry_busy(lambda: subprocess.Popen(
            [str(self.binary), "serve", "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
            cwd=self.folder, start_new_session=True))
        err.close()
        out_log = open(self.stdout_path, "w")
        threading.Thread(target=self._read_stdout, args=(self.proc, out_log), daemon=True).start()
        deadline = time.monotonic() + timeout
        with self._seen:
            while self.smtp_port is None or self.pop3_port is None or (self.web_port is None and self._web_enabled()):
                if self.proc.poll() is not None:
                    raise ServerError(f"postern serve exited with {self.proc.returncode} during start-up\n"
                                      + self.log_tail())
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    raise ServerError(f"postern serve did not print both listening lines within {timeout} s\n"
                                      + self.log_tail())
                self._seen.wait(min(left, 0.2))
        return self

    def _read_stdout(self, proc, out_log):
        with out_log:
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                out_log.write(line + "\n")
                out_log.flush()
                m = LISTEN_RE.match(line)
                with self._seen:
                    self.stdout_lines.append(line)
                    if m:
                        port = int(m.group(3))
                        if m.group(1) == "smtp":
                            self.smtp_port = port
                        elif m.group(1) == "web":
                            self.web_port = port
                        else:
                            self.pop3_port = port
                    self._seen.notify_all()

    def _web_enabled(self) -> bool:
        return self.sections.get("web", {}).get("enabled", True) is not False

    @property
    def web_url(self) -> str:
        return f"http://{HOST}:{self.web_port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Send sig and wait; SIGKILL after timeout. Returns the exit status (None if killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> "PosternServer":
        self.stop()
        return self.start()

    def log_tail(self, n: int = 40) -> str:
        parts = []
        for p in (self.stdout_path, self.stderr_path):
            try:
                lines = p.read_text(errors="replace").splitlines()[-n:]
            except OSError:
                continue
            parts.append(f"--- {p} (last {len(lines)} lines)\n" + "\n".join(lines))
        return "\n".join(parts)

    # -- CLI ----------------------------------------------------------------------------------
    def cli(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 60.0) -> subprocess.CompletedProcess:
        cmd = [str(self.binary), *args, "--config", str(self.config_path)]
        cp = _retry_busy(lambda: subprocess.run(cmd, input=input if input is not None else "", capture_output=True,
                                                text=True, timeout=timeout, cwd=self.folder))
        if check and cp.returncode != 0:
            raise ServerError(f"{' '.join(cmd)} exited {cp.returncode}\nstdout: {cp.stdout}\nstderr: {cp.stderr}")
        return cp

    def take_account(self, base: str) -> Account:
        """A fresh account named BASE-NNN; one more is created in the background for the next
        test (scrypt makes each `account add` take a while)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="accounts")
            q = self._prefetched.setdefault(base, [])
            fut = q.pop(0) if q else None
            q.append(self._pool.submit(self.add_account, base))
        return fut.result() if fut is not None else self.add_account(base)

    def close_pool(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
            self._prefetched.clear()

    def add_account(self, base: str, password: str | None = None) -> Account:
        """Create a fresh account named BASE-NNN (unique on this server) via the CLI."""
        with self._pool_lock:
            n = next(self._counter)
        name = f"{base}-{n:03d}"
        acct = Account(name, password or f"correct-horse-{n}")
        self.cli("account", "add", name, input=acct.password + "\n")
        self.accounts.append(acct)
        return acct
