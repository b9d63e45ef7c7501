"""Shared set-up for the fault tests (no tests here): a private PostgreSQL cluster the
tests may restart, stop and freeze, a `fengqiao serve` subprocess they may kill -9,
and clients that retry with Idempotency-Keys.

The shared PostgreSQL on 127.0.0.1:5432 is never touched: other tests run on it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
FENGQIAO = [sys.executable, "-m", "api.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    which = shutil.which("pg_ctl")
    if which is None:
        pytest.fail("no PostgreSQL server binaries (pg_ctl, initdb) to start a private cluster", pytrace=False)
    return Path(which).parent


class PrivatePostgres:
    """A throw-away PostgreSQL cluster in a temp dir on a free port (trust auth)."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="fq-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0  # initdb refuses root
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, cwd=self.dir)

    def _ctl(self, action: str, *extra: str) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w",
                  *extra, action)

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def url(self, schema: str = "public", db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}?schema={schema}"

    def sql(self, statement: str, db: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/{db}", autocommit=True,
                             connect_timeout=5) as conn:
            conn.execute(statement)

    def processes(self) -> list[int]:
        """The postmaster and every backend of this cluster."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        return [postmaster, *map(int, children)]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The database stops answering (SIGSTOP to all its processes), then resumes."""
        pids = self.processes()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    yield cluster
    cluster.destroy()


class Server:
    """`fengqiao serve` in a subprocess on a free port, over ``url``."""

    def __init__(self, url: str, workers: bool = True, env: dict[str, str] | None = None) -> None:
        self.url = url
        self.port = free_port()
        self.workers = workers
        self.env = {**os.environ, "FENGQIAO_DATABASE_URL": url, "PYTHONPATH": str(ROOT),
                    "FENGQIAO_LOG_LEVEL": "warning", "PYTHONFAULTHANDLER": "1", **(env or {})}
        self.process: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkdtemp(prefix="fq-serve-")) / "serve.log"

    def start(self, timeout: float = 30) -> None:
        command = [*FENGQIAO, "serve", "--port", str(self.port), "--workers" if self.workers else "--no-workers"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"fengqiao serve exited with {self.process.returncode}: {self.log_tail()}")
            time.sleep(0.1)
        self.process.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack to the log
        self.process.wait(10)
        raise TimeoutError(f"fengqiao serve did not start: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


def cli(url: str, *args: str, check: bool = True) -> str:
    """Run `fengqiao …` against ``url``; its stdout."""
    env = {**os.environ, "FENGQIAO_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([*FENGQIAO, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"fengqiao {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def seeded_store(url: str, users: list[tuple[str, str, str]]) -> dict[str, str]:
    """Seed the county into ``url`` and add users (name, role, region); their tokens."""
    from engine.service import Fengqiao
    from engine.store import StoreConfig
    from engine.users import UserStore
    from tests.support import seed

    engine = seed(Fengqiao(StoreConfig(url)))
    store = UserStore(engine)
    try:
        return {name: store.add(name, role, region, by="test") for name, role, region in users}
    finally:
        engine.close()
