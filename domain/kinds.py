"""What a case is: its kind and its severity (the policy's ceilings and clocks are
keyed by them)."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    DISPUTE = "dispute"  # 矛盾纠纷
    HAZARD = "hazard"  # 安全隐患
    PETITION = "petition"  # 诉求 / 信访


class Severity(StrEnum):
    MINOR = "minor"  # 小事
    MAJOR = "major"  # 大事
    CRITICAL = "critical"  # 重大 / 紧急

    @property
    def order(self) -> int:
        return list(Severity).index(self)
