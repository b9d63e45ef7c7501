"""Domain errors with stable codes.

The code is the contract: the HTTP layer maps codes to problem types, the CLI
prints them, tests assert them. Messages may change; codes never do.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule refused a command. ``code`` is stable; ``details`` explain it."""

    code = "domain_error"

    def __init_subclass__(cls, code: str | None = None, **kwargs: Any) -> None:
        """``class NotFound(DomainError, code="not_found")``: a subclass names its code."""
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class InvalidTransition(DomainError, code="invalid_transition"):
    """The case is not in a state where this action is allowed."""


class EscalationCeiling(DomainError, code="escalation_ceiling"):
    """小事不出村、大事不出乡: escalation above the severity's ceiling."""


class ValidationFailed(DomainError, code="validation"):
    """The command is well-formed but its content breaks a rule."""


class PointOutsideRegions(ValidationFailed, code="point_outside_regions"):
    """A report located by a map point whose point lies in no region's geometry."""


class NotPermitted(DomainError, code="forbidden"):
    """The actor may not do this (wrong role, rank or unit)."""


class NotFound(DomainError, code="not_found"):
    """No such case, region, unit or policy version."""


class VersionConflict(DomainError, code="version_conflict"):
    """The command expected another version of the case (optimistic concurrency)."""


class IdempotencyKeyInUse(DomainError, code="idempotency_key_in_use"):
    """The command id a key derives to was recorded by someone else (never revealed)."""


class EvidenceTooLarge(DomainError, code="payload_too_large"):
    """An evidence file larger than the deployment takes."""


class EvidenceType(DomainError, code="unsupported_media_type"):
    """An evidence file whose content is not a type the engine keeps (by its magic bytes)."""


class EvidenceAltered(DomainError, code="evidence_altered"):
    """A stored evidence file no longer matches the SHA-256 it was kept (and chained) under."""
