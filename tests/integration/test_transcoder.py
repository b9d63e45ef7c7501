"""The engine's JSON transcoder (``engine.service.OneShotJSONTranscoder``) writes, for every
event and snapshot a demo season stores, the bytes eventsourcing's own ``JSONTranscoder``
writes: stored events (and so the hash chain) are as they were."""

from __future__ import annotations

import math

from eventsourcing.persistence import JSONTranscoder

from engine.privacy import SealedText, protect, seal_text
from engine.service import OneShotJSONTranscoder
from engine.store import StoreConfig
from tests.integration.test_demo import run_demo


def test_the_one_shot_encoder_writes_the_library_s_bytes(tmp_path, monkeypatch):
    encoded = [0]
    encode = OneShotJSONTranscoder.encode

    def both(self, obj):
        ours = encode(self, obj)
        assert ours == JSONTranscoder.encode(self, obj)
        encoded[0] += 1
        return ours

    monkeypatch.setattr(OneShotJSONTranscoder, "encode", both)
    app, _ = run_demo(StoreConfig(f"sqlite:///{tmp_path / 'demo.db'}"), scale=0.1)
    try:
        assert isinstance(app.mapper.transcoder, OneShotJSONTranscoder)
        odd = {
            "text": '第1次 "引号" \\ \n\t\u2028 😀',
            "numbers": [0, -1, 2**70, 1.5, 1e-7, 1e300, math.inf, -math.inf],
            "flags": [True, False, None],
            "nested": {"a": [{"b": []}, {}], "时间": app.clock.now()},
            "actor": app.case(next(app.case_ids())).reporter,
            "sealed": [
                seal_text(app, next(app.case_ids()), "请回电13812345678，谢谢"),  # a comment's
                *protect(app, [{"name": "张三", "role": "applicant", "phone": "13800000001"}]),
            ],
        }
        assert isinstance(odd["sealed"][0], SealedText)
        assert app.mapper.transcoder.encode(odd)  # checked against the library's, as above
        stored = app.recorder.select_notifications(1, 1_000_000)
        topics = {notification.topic for notification in stored}
    finally:
        app.close()
    assert encoded[0] > len(stored) and len(topics) >= 40, sorted(topics)  # every event
    # written went through it: reports, acts, timers' warnings and breaches, the books
