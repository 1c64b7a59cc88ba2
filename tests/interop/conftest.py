"""Fixtures for the interop suite: a live `postern serve` per test module, fresh accounts per test.

Env:
  POSTERN_BIN          binary under test (default <repo>/.build/debug/postern)
  POSTERN_KILL_ROUNDS  kill -9 rounds in test_durability (default 1)
"""
from __future__ import annotations

import shutil

import pytest

from harness import PosternServer, ServerError, postern_bin

# Figures that tests want printed at the end of the run (e.g. the kill -9 counts).
FIGURES: list[str] = []


def pytest_report_header(config):
    b = postern_bin()
    return f"postern under test: {b} ({'present' if b.exists() else 'MISSING'})"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if FIGURES:
        terminalreporter.section("interop figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def _require_binary():
    if not postern_bin().exists():
        pytest.fail(f"postern binary not found at {postern_bin()} — run `swift build` or set POSTERN_BIN",
                    pytrace=False)


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed — run scripts/install-test-deps", pytrace=False)
    return path


@pytest.fixture(scope="session")
def tool():
    return _require_tool


@pytest.fixture(scope="module")
def make_server(tmp_path_factory):
    """Factory: make_server(overrides={...}) -> started PosternServer, stopped at module end."""
    servers: list[PosternServer] = []

    def factory(overrides: dict | None = None, name: str = "server", start: bool = True) -> PosternServer:
        _require_binary()
        srv = PosternServer(tmp_path_factory.mktemp(name), overrides)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield factory
    problems = []
    for srv in servers:
        srv.close_pool()
        if srv.proc is not None and srv.proc.poll() is None:
            rc = srv.stop()
            if rc != 0:
                problems.append(f"{srv.folder}: SIGTERM gave exit status {rc} (expected 0)\n{srv.log_tail()}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def server(make_server) -> PosternServer:
    """The module's shared server on default limits (auth back-off capped at 1 s)."""
    return make_server()


@pytest.fixture(autouse=True)
def _server_survives(request):
    """After every test that used the shared server: it must still be running (a crash is a
    failure of that test); restart it so later tests still run."""
    yield
    if "server" not in request.fixturenames:
        return
    try:
        srv: PosternServer = request.getfixturevalue("server")
    except Exception:  # the server fixture itself failed: already reported
        return
    if srv.proc is not None and not srv.alive():
        rc = srv.proc.returncode
        tail = srv.log_tail()
        try:
            srv.start()
        except ServerError as e:
            tail += f"\n(restart failed: {e})"
        pytest.fail(f"postern serve died during this test (exit status {rc})\n{tail}", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        srv = item.funcargs.get("server") if hasattr(item, "funcargs") else None
        if isinstance(srv, PosternServer):
            rep.sections.append(("postern serve logs", srv.log_tail(25)))


# Fresh accounts per test on the module's server.
@pytest.fixture
def alice(server):
    return server.take_account("alice")


@pytest.fixture
def bob(server):
    return server.take_account("bob")


@pytest.fixture
def carol(server):
    return server.take_account("carol")
