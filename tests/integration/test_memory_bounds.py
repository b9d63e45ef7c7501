"""The server's per-process caches stay within their bounds after more entries than the
bound pass through them (object counts, not RSS; the RSS run is api/bench/bench_memory.py).

* the case cache (``FENGQIAO_CASE_CACHE``): aggregates the engine last wrote;
* the feed's whereabouts cache (``FENGQIAO_FEED_CACHE``): where each case is;
* the personal-data key cache (``FENGQIAO_KEY_CACHE``): one key a person read;
* the projection runner's decoded values (``FENGQIAO_DECODER_CACHE``): timestamps
  and actors, one or more new ones an event;
* and glibc's malloc arenas of ``fengqiao serve`` / ``fengqiao worker`` (``engine.memory``).

Each bound is made small here so that a few dozen cases pass it; the code path is the
one a server runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from engine import privacy
from engine.feed import Feed
from engine.privacy import open_party, protect
from projections import decoding
from tests.support import act, report

BOUND = 8
PASSING = 3 * BOUND


def test_the_case_cache_keeps_at_most_its_bound(app) -> None:
    app.case_cache.size = BOUND
    ids = [report(app).case_id for _ in range(PASSING)]
    for case_id in ids:
        act(app, case_id, "comment", "wang", text="回访")
    held = list(app.case_cache._entries)
    assert len(held) == BOUND  # full, not more
    assert held == ids[-BOUND:]  # the most recently written, oldest first
    assert app.case_cache.take(ids[-1]).version == 2  # as saved by the last command


def with_setting(app, monkeypatch, **values) -> None:
    """The engine's settings with ``values`` changed (what ``FENGQIAO_<NAME>`` would set)."""
    monkeypatch.setattr(app, "settings", app.settings.model_copy(update=values))


def test_the_feed_whereabouts_cache_keeps_at_most_its_bound(app, monkeypatch) -> None:
    with_setting(app, monkeypatch, feed_cache=BOUND)
    for _ in range(PASSING):
        report(app)
    feed = Feed(app)
    page = feed.page(0, 500)
    assert len({event["subject"] for event in page.events}) >= PASSING
    assert len(feed._whereabouts.entries) == BOUND


def test_the_person_key_cache_keeps_at_most_its_bound(app, monkeypatch) -> None:
    with_setting(app, monkeypatch, key_cache=BOUND)
    app.__dict__.pop("_person_keys", None)  # the key table is made with the engine's bound
    parties = protect(
        app,
        [
            {"name": f"当事人{n}", "role": "applicant", "id_number": f"4109281990010{n:05d}"}
            for n in range(PASSING)
        ],
    )
    opened = [open_party(app, party) for party in parties]
    assert [party["name"] for party in opened] == [f"当事人{n}" for n in range(PASSING)]
    cache = privacy.person_keys(app)._cache
    assert len(cache) == BOUND
    assert list(cache) == [party.person for party in parties[-BOUND:]]  # the most recently read


def test_the_decoders_value_cache_keeps_at_most_its_bound(app, clock) -> None:
    for _ in range(PASSING):  # a new timestamp each
        clock.advance(timedelta(seconds=1))
        report(app)
    decoder = decoding.EventDecoder(app.mapper, cache_limit=BOUND)
    held = []
    for notification in app.recorder.select_notifications(1, 100_000):
        decoder.decode(notification)
        held.append(len(decoder._values))
    assert max(held) == BOUND  # it filled, and never went past its bound


def test_the_decoders_default_bound_is_small() -> None:
    """~240 bytes a value: the default keeps a decoder's cache within a few MB."""
    assert (
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from engine.settings import Settings; "
                "bound = Settings.from_environment().decoder_cache; assert bound <= 10_000, bound",
            ],
            cwd=ROOT,
            env=_env(),
        ).returncode
        == 0
    )


ROOT = Path(__file__).resolve().parents[2]
ARENAS = """
import ctypes, os, sys, tempfile, threading
from engine.memory import limit_malloc_arenas
from engine.settings import Settings
print(limit_malloc_arenas(Settings.from_environment().malloc_arenas))  # as fengqiao serve / worker do
def work():
    for _ in range(3000):
        [bytearray(4000) for _ in range(10)]
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
c = ctypes.CDLL(None)
c.fdopen.restype = ctypes.c_void_p
with tempfile.TemporaryFile() as f:
    out = c.fdopen(os.dup(f.fileno()), b"w")
    c.malloc_info(0, ctypes.c_void_p(out))
    c.fclose(ctypes.c_void_p(out))
    f.seek(0)
    print(f.read().count(b"<heap nr="))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MALLOC_ARENA_MAX", "FENGQIAO_MALLOC_ARENAS")
    }
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def _arenas(**extra: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", ARENAS],
        cwd=ROOT,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    capped, heaps = done.stdout.split()
    return capped, int(heaps)


def _glibc() -> bool:
    try:
        return "glibc" in (os.confstr("CS_GNU_LIBC_VERSION") or "")
    except (AttributeError, ValueError, OSError):
        return False


@pytest.mark.skipif(not _glibc(), reason="malloc arenas are glibc's")
def test_the_server_caps_mallocs_arenas() -> None:
    capped, heaps = _arenas()
    assert capped == "2" and heaps <= 2  # 8 threads allocating at once share two arenas
    assert _arenas(FENGQIAO_MALLOC_ARENAS="0")[0] == "None"  # glibc's default left as it is
    assert _arenas(MALLOC_ARENA_MAX="3")[0] == "None"  # glibc's own variable wins


def test_the_timer_worker_counts_what_it_issues_and_keeps_none_of_it(app, clock) -> None:
    """The worker's tick (``tick_counting``) issues what ``tick`` would, without a list of
    every command: after a backlog one tick runs for minutes (MAX_ROUNDS rounds of a batch)."""
    from workflows.timers import TimerService

    case_id = report(app, "dispute", "minor").case_id
    act(app, case_id, "assign", "li", assignee="wang")
    before = len(app.history(case_id))
    clock.advance(timedelta(days=30))  # every threshold of the case overdue at once
    timers = TimerService(app)
    try:
        issued = timers.tick_counting()
        assert issued > 0
        assert issued == len(app.history(case_id)) - before  # one event a command
        assert timers.tick() == []  # nothing left, as after a tick that kept its list
    finally:
        timers.close()
