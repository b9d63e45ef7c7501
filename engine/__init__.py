"""The engine: the application service over the domain, its stores and clock.

``engine`` is where the pure domain meets I/O: the event store (SQLite by
default, PostgreSQL by URL), the injectable clock, logging. It knows nothing of
HTTP; ``api`` does.
"""
