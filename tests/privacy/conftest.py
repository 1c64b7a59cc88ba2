"""Fixtures for the privacy suite: a live `postern serve` with the corpus's own accounts.

The corpus (tests/corpus/messages) was written by real clients as alice@mail.i2p to bob@ and
carol@mail.i2p, so this suite needs accounts with exactly those names (the interop suite's
`add_account` makes alice-001 etc.). The server itself is started with tests/interop/harness.py.

Env: POSTERN_BIN  binary under test (default <repo>/.build/debug/postern)
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# harness/mailutil from the interop suite; mimecheck from here (this folder is a package, so pytest
# does not put it on sys.path itself).
sys.path.insert(0, str(REPO / "tests" / "interop"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Account, PosternServer, ServerError, postern_bin  # noqa: E402

CORPUS = REPO / "tests" / "corpus"
PASSWORDS = {"alice": "alice-corpus-pw-1", "bob": "bob-corpus-pw-2", "carol": "carol-corpus-pw-3"}


def pytest_report_header(config):
    b = postern_bin()
    return f"postern under test: {b} ({'present' if b.exists() else 'MISSING'})"


def require_binary():
    if not postern_bin().exists():
        pytest.fail(f"postern binary not found at {postern_bin()} — run `swift build` or set POSTERN_BIN",
                    pytrace=False)


def add_exact_account(srv: PosternServer, name: str, password: str) -> Account:
    srv.cli("account", "add", name, input=password + "\n")
    acct = Account(name, password)
    srv.accounts.append(acct)
    return acct


@pytest.fixture(scope="module")
def make_server(tmp_path_factory):
    """Factory: make_server(overrides) -> started PosternServer, stopped (SIGTERM) at module end."""
    servers: list[PosternServer] = []

    def factory(overrides: dict | None = None, name: str = "server") -> PosternServer:
        require_binary()
        srv = PosternServer(tmp_path_factory.mktemp(name), overrides)
        servers.append(srv)
        srv.start()
        return srv

    yield factory
    for srv in servers:
        if srv.alive():
            srv.stop()


@pytest.fixture(scope="module")
def corpus_server(make_server):
    """One server for the whole corpus, with accounts alice, bob and carol @mail.i2p."""
    srv = make_server(name="corpus")
    accts = {n: add_exact_account(srv, n, pw) for n, pw in PASSWORDS.items()}
    return srv, accts


@pytest.fixture(scope="session")
def gnupghome(tmp_path_factory):
    """A GNUPGHOME with the corpus's test keys (public and secret: verify and decrypt)."""
    gpg = shutil.which("gpg")
    if not gpg:
        pytest.fail("gpg is not installed (Debian package gnupg)", pytrace=False)
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    for f in ("pubkey.asc", "seckey.asc"):
        cp = subprocess.run([gpg, "--homedir", str(home), "--batch", "--import", str(CORPUS / "gpg" / f)],
                            capture_output=True, timeout=60)
        assert cp.returncode == 0, f"gpg --import {f}: {cp.stderr.decode(errors='replace')}"
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=30)
