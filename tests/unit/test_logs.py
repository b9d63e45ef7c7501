"""The engine's log context: what every line logged during a command carries."""

from __future__ import annotations

import threading

from engine.logs import _merge_log_context, log_context


def merged(**event):
    return dict(_merge_log_context(None, "info", event))


def test_a_command_s_fields_are_on_every_line_inside_it_and_gone_after():
    assert merged(event="before") == {"event": "before"}
    with log_context(case_id="c1", command_id="k1", actor="wang"):
        assert merged(event="case command", version=3) == {
            "event": "case command",
            "version": 3,
            "case_id": "c1",
            "command_id": "k1",
            "actor": "wang",
        }
        with log_context(case_id="c2"):  # a follow-up on another case: its own case id
            assert merged(event="x")["case_id"] == "c2"
            assert merged(event="x")["command_id"] == "k1"
        assert merged(event="x")["case_id"] == "c1"
        assert merged(event="x", actor="zhao")["actor"] == "zhao"  # the call's field wins
        seen = []
        thread = threading.Thread(target=lambda: seen.append(merged(event="other thread")))
        thread.start()
        thread.join()
        assert seen == [{"event": "other thread"}]  # another thread's lines: not this command's
    assert merged(event="after") == {"event": "after"}


def test_the_configured_lines_merge_the_command_s_fields():
    import structlog

    from engine.logs import configure_logging

    configure_logging()
    processors = structlog.get_config()["processors"]
    assert _merge_log_context in processors
    assert processors.index(_merge_log_context) < processors.index(
        structlog.processors.add_log_level
    )  # before the renderer, beside structlog's own context (request id, user)


def test_info_lines_are_asked_for_only_when_the_level_writes_them(monkeypatch):
    """The command path asks ``info_enabled()`` before its ``info`` lines: true at INFO
    (and when structlog was never configured here), false at WARNING."""
    import structlog

    from engine import logs

    config = structlog.get_config()
    monkeypatch.setattr(logs, "_info", logs._info)  # put back after
    monkeypatch.setattr(logs, "_configured", False)
    try:
        logs.configure_logging(json=True, level="WARNING")
        assert not logs.info_enabled()
        monkeypatch.setattr(logs, "_configured", False)
        logs.configure_logging(json=True, level="INFO")
        assert logs.info_enabled()
    finally:
        structlog.configure(**config)
