"""The ``checkpoints`` background worker: signs the chain head by the checkpoint
policy (every N events or M minutes, see :func:`checkpoint_if_due`)."""

from __future__ import annotations

import threading
from typing import Any

import structlog

from engine.audit.checkpoints import checkpoint_if_due
from engine.workers import register_worker

log = structlog.get_logger("fengqiao.audit")


def sign_when_due(app: Any) -> None:
    app.recorder.catch_up_tree()  # the tree follows the chain between tree heads too
    signed = checkpoint_if_due(app)
    if signed is not None:
        log.info(
            "checkpoint signed",
            size=signed.size,
            position=signed.position,
            root=signed.root,
            key_id=signed.key_id,
        )


@register_worker("checkpoints")
def run_checkpoints(app: Any, stop: threading.Event) -> None:
    """Check the policy every ``FENGQIAO_CHECKPOINT_POLL_SECONDS`` (default 30) until stopped."""
    while not stop.is_set():
        try:
            sign_when_due(app)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the worker
            log.exception("checkpoint failed; will retry")
        stop.wait(app.settings.checkpoint_poll_seconds)
