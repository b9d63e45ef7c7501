"""The long-running processes' malloc set-up (``fengqiao serve``, ``fengqiao worker``).

glibc's malloc gives threads that contend for it their own arenas, up to 8 per core
(16 here). A server runs ~35 threads (the API's thread pool, the workers, the database
pools), so its C heap — Python objects larger than 512 bytes, dict and list tables,
psycopg's result buffers — is spread over many arenas, each of which keeps the memory
freed into it for the next allocation *in that arena*: a block freed by one thread's
arena does not serve another's. Under steady load the process's RSS then creeps up for
a long time as each arena grows to its own high-water mark (docs/performance-log.md,
*Memory*). Python holds the GIL for almost every allocation, so the extra arenas buy
next to no concurrency; two are enough.

``FENGQIAO_MALLOC_ARENAS`` sets the number (default 2; ``0`` leaves glibc's default): the
commands pass their setting as ``arenas``.
An explicit ``MALLOC_ARENA_MAX`` in the environment (read by glibc itself) wins.
Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import os

from engine.settings import DEFAULTS

M_ARENA_MAX = -8  # glibc's malloc.h


def limit_malloc_arenas(arenas: int = DEFAULTS.malloc_arenas) -> int | None:
    """Cap glibc's malloc arenas at ``arenas`` (call before the process starts its threads);
    the cap set, or None when nothing was changed."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return None  # glibc read it at start-up (glibc's own variable, not a Fengqiao setting)
    if arenas <= 0:
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None  # not glibc
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return arenas if mallopt(M_ARENA_MAX, arenas) == 1 else None
