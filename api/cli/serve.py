"""``fengqiao serve``: the HTTP API on the configured store, with uvicorn."""

from __future__ import annotations

import atexit
import json
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import structlog
import typer

from api.cli.common import read_settings
from engine.logs import configure_logging
from engine.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

log = structlog.get_logger("fengqiao.serve")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    processes: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="server processes on the one socket and store (uvicorn's workers); each takes part "
        "in the background workers' leader election, so each kind runs in one of them",
    ),
    background: bool = typer.Option(
        True,
        " /--no-workers",
        help="run no projections and timers here (run `fengqiao worker` beside it)",
    ),
) -> None:
    """Serve the HTTP API v1 (OpenAPI at /openapi.json)."""
    run_server(host, port, processes, background)


def run_server(host: str, port: int, processes: int = 1, background: bool = True) -> None:
    """Serve with uvicorn: in this process, or (``processes`` > 1) in that many child
    processes sharing the socket, each with its own engine on the store."""
    import uvicorn

    settings = read_settings("fengqiao serve")  # checked here: a bad value stops before forking
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        **server_options(settings),
    }
    if processes > 1:
        run_processes(host, port, processes, background, options)
        return
    app, close = serving_app(settings, background, process_id=False)
    try:
        uvicorn.run(app, **options)
    finally:
        close()


def run_processes(
    host: str, port: int, processes: int, background: bool, options: dict[str, Any]
) -> None:
    """``serve --workers N``: uvicorn's supervisor (it restarts a process that dies, stops
    them all on SIGINT/SIGTERM), each process on a listening socket of its own
    (:class:`OwnSocket`)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    factory = "app_with_workers" if background else "app_without_workers"
    config = uvicorn.Config(f"api.cli.serve:{factory}", factory=True, workers=processes, **options)
    try:  # a port taken stops here, before any process starts, as uvicorn's own bind would
        reuse_port_socket(host, port).close()
    except OSError as error:
        raise SystemExit(f"fengqiao serve: cannot listen on {host}:{port}: {error}") from None
    Multiprocess(config, sockets=[cast("socket.socket", OwnSocket(host, port))]).run()


class OwnSocket:
    """What ``serve --workers N`` hands uvicorn's supervisor in place of its one shared
    socket: unpickled in a process it starts, it is that process's own listening socket,
    bound with ``SO_REUSEPORT`` (:func:`reuse_port_socket`), and the kernel spreads new
    connections over the processes' sockets by a hash of each connection's addresses.

    On uvicorn's one shared socket, a process woken by a burst of connections accepts every
    one queued (uvloop's accept loop): 15 of 16 keep-alive clients were seen held by one
    process while the other idled (2026-12-07), so a second process added little."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Callable[[str, int], socket.socket], tuple[str, int]]:
        return reuse_port_socket, (self.host, self.port)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` beside others bound the same way (``SO_REUSEPORT``);
    uvicorn makes it listen."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serving_app(
    settings: Settings, background: bool, *, process_id: bool
) -> tuple[FastAPI, Callable[[], None]]:
    """The API on a new engine, with the background workers in a thread when ``background``
    (under the leader election: ``engine.leadership``), and the function that stops both.
    ``process_id``: every log line names this process (several serve one socket)."""
    from api.http.app import create_app
    from engine.memory import limit_malloc_arenas
    from engine.service import Fengqiao

    limit_malloc_arenas(settings.malloc_arenas)  # before any thread starts: see engine/memory.py
    configure_logging(settings=settings, process_id=process_id)
    engine = Fengqiao(settings=settings)
    if settings.tracemalloc:
        trace_allocations(engine, settings.tracemalloc_dir, settings.tracemalloc_frames)
    if settings.memory_dir:
        report_memory_on_signal(engine, settings.memory_dir)
    stop = threading.Event()
    thread = None
    if background:
        from api.workers import run_workers

        thread = threading.Thread(
            target=run_workers, args=(engine, stop), name="fengqiao-workers", daemon=True
        )
        thread.start()
        log.info("workers started in-process")

    def close() -> None:
        stop.set()
        if thread is not None:
            thread.join(timeout=10)
        engine.close()

    try:
        return create_app(engine, settings=settings), close
    except BaseException:
        close()
        raise


def _child_app(background: bool) -> FastAPI:
    """One of ``serve --workers N``'s processes (uvicorn calls this in each, after spawning
    it): its settings from the environment it inherited; closed as the process exits."""
    app, close = serving_app(Settings.from_environment(), background, process_id=True)
    atexit.register(close)
    return app


def app_with_workers() -> FastAPI:
    return _child_app(True)


def app_without_workers() -> FastAPI:
    return _child_app(False)


def server_options(settings: Any) -> dict[str, Any]:
    """uvicorn's proxy options: ``X-Forwarded-For`` is believed only from
    ``FENGQIAO_TRUSTED_PROXIES`` (uvicorn's own default trusts 127.0.0.1)."""
    proxies = settings.trusted_proxies
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": proxies or ""}


def trace_allocations(engine: object, folder: Path, frames: int) -> None:
    """``FENGQIAO_TRACEMALLOC=1`` (off by default; it slows the server): trace allocations from
    start-up; each SIGUSR2 writes a ``tracemalloc`` snapshot and :func:`memory_report` into
    ``FENGQIAO_TRACEMALLOC_DIR`` (``api/bench/bench_memory.py`` diffs them)."""
    import tracemalloc

    tracemalloc.start(frames)
    taken = [0]

    def snapshot(*_: object) -> None:
        taken[0] += 1
        tracemalloc.take_snapshot().dump(str(folder / f"snapshot-{taken[0]}.tracemalloc"))
        (folder / f"snapshot-{taken[0]}.json").write_text(json.dumps(memory_report(engine)))

    signal.signal(signal.SIGUSR2, snapshot)


def report_memory_on_signal(engine: object, folder: Path) -> None:
    """With ``FENGQIAO_MEMORY_DIR`` set: each SIGUSR1 writes :func:`memory_report` as
    ``report-<n>.json`` there (cheap: no heap snapshot; works with tracemalloc off)."""
    taken = [0]

    def report(*_: object) -> None:
        taken[0] += 1
        (folder / f"report-{taken[0]}.json").write_text(json.dumps(memory_report(engine)))

    signal.signal(signal.SIGUSR1, report)


def memory_report(engine: object) -> dict[str, object]:
    """Where this process's memory is: the bounded caches' entry counts (every instance,
    found through the garbage collector), glibc malloc's totals (``mallinfo2``), RSS by
    kind of mapping, and the traced Python heap when tracemalloc is on."""
    import gc
    import tracemalloc
    from collections import Counter

    from engine.case_cache import CaseCache
    from engine.feed import Feed
    from engine.privacy import PersonKeys
    from projections.decoding import EventDecoder

    found: dict[str, list[int]] = {
        "case_cache": [],
        "person_keys": [],
        "feed_whereabouts": [],
        "decoder_values": [],
    }
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        counts[kind.__qualname__] += 1
        if kind is CaseCache:
            found["case_cache"].append(len(obj._entries))
        elif kind is PersonKeys:
            found["person_keys"].append(len(obj._cache))
        elif kind is Feed:
            found["feed_whereabouts"].append(len(obj._whereabouts.entries))
        elif kind is EventDecoder:
            found["decoder_values"].append(len(obj._values))
    report: dict[str, object] = {
        "case_cache": len(engine.case_cache._entries),  # type: ignore[attr-defined]
        "person_keys": len(getattr(engine.__dict__.get("_person_keys"), "_cache", ())),
        "caches": found,
        "gc_objects": sum(counts.values()),
        "gc_types": dict(counts.most_common(25)),
        "threads": threading.active_count(),
        "malloc": _mallinfo(),
        "rss_kb": _rss_by_mapping(),
    }
    if tracemalloc.is_tracing():
        report |= {
            "traced": tracemalloc.get_traced_memory()[0],
            "tracemalloc_overhead": tracemalloc.get_tracemalloc_memory(),
        }
    return report


def _mallinfo() -> dict[str, int]:
    """glibc's ``mallinfo2()`` over all arenas (bytes): ``arena`` obtained by sbrk/arenas,
    ``hblkhd`` in mmapped chunks, ``uordblks`` in use, ``fordblks`` free; {} off glibc."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {field[0]: getattr(info, field[0]) for field in MallInfo2._fields_}


def _rss_by_mapping() -> dict[str, int]:
    """RSS (KiB) of ``/proc/self/smaps`` by kind: the brk heap, anonymous mappings (thread
    arenas, pymalloc arenas, stacks, large blocks), and file-backed mappings."""
    totals = {"heap": 0, "anon": 0, "file": 0, "anon_mappings": 0}
    kind = "anon"
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):  # a mapping's header line
                    parts = line.split()
                    path = parts[5] if len(parts) > 5 else ""
                    kind = (
                        "heap" if path == "[heap]" else "file" if path.startswith("/") else "anon"
                    )
                    totals["anon_mappings"] += kind == "anon"
                elif first == "Rss:":
                    totals[kind] += int(line.split()[1])
    except OSError:
        pass
    return totals
