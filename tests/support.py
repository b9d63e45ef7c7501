"""Shared test data: the county the benchmarks use too (``api/bench/county.py``)."""

from api.bench.county import (  # noqa: F401
    COUNTY_CSV,
    DEFAULT_POLICY,
    PEOPLE,
    RANKS,
    UNITS,
    ZHANG_SAN,
    act,
    actor,
    envelope,
    report,
    seed,
)


def png(width: int = 2, height: int = 2, shade: int = 0) -> bytes:
    """A real (tiny) PNG: signature, IHDR, IDAT, IEND; ``shade`` varies its colour (its hash)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + bytes([shade % 256, 80, 160] * width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def photo(app, shade: int = 0) -> str:
    """A small photo kept as evidence by ``app``; its SHA-256 (what ``attachments`` name)."""
    from datetime import UTC, datetime

    return str(app.evidence.put(png(shade=shade), "wang", datetime.now(UTC))["sha256"])
