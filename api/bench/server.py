"""`fengqiao serve` in a subprocess on a free port (the HTTP benchmarks and the
fault tests), and a store seeded with the county and its users."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]  # the checkout, or site-packages when installed
FENGQIAO = [sys.executable, "-m", "api.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_sockets(pid: int, port: int) -> set[str]:
    """The inodes of the TCP sockets listening on ``port`` that process ``pid`` holds."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                listening.add(fields[9])
    held = set()
    with contextlib.suppress(OSError):  # the process exited
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                held.add(os.readlink(fd).removeprefix("socket:[").removesuffix("]"))
    return listening & held


class Server:
    """`fengqiao serve` in a subprocess on a free port, over ``url``: with the background
    ``workers`` or not, in ``processes`` server processes (``--workers N``)."""

    def __init__(
        self,
        url: str,
        workers: bool = True,
        env: dict[str, str] | None = None,
        processes: int = 1,
    ) -> None:
        self.url = url
        self.port = free_port()
        self.workers = workers
        self.processes = processes
        self.env = {
            **os.environ,
            "FENGQIAO_DATABASE_URL": url,
            "PYTHONPATH": str(ROOT),
            "FENGQIAO_LOG_LEVEL": "warning",
            "PYTHONFAULTHANDLER": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkdtemp(prefix="fq-serve-")) / "serve.log"

    @property
    def pid(self) -> int:
        """The server's process id (once started)."""
        assert self.process is not None, "the server has not been started"
        return self.process.pid

    def children(self) -> list[int]:
        """The serving processes' ids: uvicorn's children with ``processes`` > 1, else the server."""
        if self.processes == 1:
            return [self.pid]
        found = []
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                with contextlib.suppress(OSError):  # exited meanwhile
                    if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                        found.append(int(pid))  # not multiprocessing's own helper
        return sorted(found)

    def start(self, timeout: float = 30) -> None:
        command = [
            *FENGQIAO,
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(self.processes),
            *([] if self.workers else ["--no-workers"]),
        ]
        with self.log.open("ab") as log:
            # its own process group: stopping it stops every server process it started
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    if self.all_listening():
                        return
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"fengqiao serve exited with {self.process.returncode}: {self.log_tail()}"
                )
            time.sleep(0.1)
        self.process.send_signal(
            signal.SIGABRT
        )  # faulthandler writes every thread's stack to the log
        self.process.wait(10)
        raise TimeoutError(f"fengqiao serve did not start: {self.log_tail()}")

    def all_listening(self) -> bool:
        """Every server process listens (``/healthz`` answers once the first one does)."""
        if self.processes == 1:
            return True
        listening = self.listening()
        return len(listening) == self.processes and all(listening)

    def listening(self) -> list[set[str]]:
        """Each serving process's listening sockets on the port (:func:`listening_sockets`)."""
        return [listening_sockets(pid, self.port) for pid in self.children()]

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill9(self) -> None:
        """SIGKILL to the server and every process it started (``serve --workers N``)."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):  # none left
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """Stop the server; whatever of its processes outlives it (a server killed while
        starting, a worker process that did not exit) is killed with it, never left to
        hold the store's connections."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.kill9()


def seeded_store(url: str, users: list[tuple[str, str, str]]) -> dict[str, str]:
    """Seed the county into ``url`` and add users (name, role, region); their tokens."""
    from api.bench.county import seed
    from engine.service import Fengqiao
    from engine.store import StoreConfig
    from engine.users import UserStore

    engine = seed(Fengqiao(StoreConfig(url)))
    store = UserStore(engine)
    try:
        return {name: store.add(name, role, region, by="test") for name, role, region in users}
    finally:
        engine.close()
