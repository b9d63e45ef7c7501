"""Domain errors with stable codes.

The code is the contract: the HTTP layer maps codes to problem types, the CLI
prints them, tests assert them. Messages may change; codes never do.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule refused a command. ``code`` is stable; ``details`` explain it."""

    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class InvalidTransition(DomainError):
    """The case is not in a state where this action is allowed."""

    code = "invalid_transition"


class EscalationCeiling(DomainError):
    """小事不出村、大事不出乡: escalation above the severity's ceiling."""

    code = "escalation_ceiling"


class ValidationFailed(DomainError):
    """The command is well-formed but its content breaks a rule."""

    code = "validation"


class PointOutsideRegions(ValidationFailed):
    """A report located by a map point whose point lies in no region's geometry."""

    code = "point_outside_regions"


class NotPermitted(DomainError):
    """The actor may not do this (wrong role, rank or unit)."""

    code = "forbidden"


class NotFound(DomainError):
    """No such case, region, unit or policy version."""

    code = "not_found"


class VersionConflict(DomainError):
    """The command expected another version of the case (optimistic concurrency)."""

    code = "version_conflict"


class IdempotencyKeyInUse(DomainError):
    """The command id a key derives to was recorded by someone else (never revealed)."""

    code = "idempotency_key_in_use"


class EvidenceTooLarge(DomainError):
    """An evidence file larger than the deployment takes."""

    code = "payload_too_large"


class EvidenceType(DomainError):
    """An evidence file whose content is not a type the engine keeps (by its magic bytes)."""

    code = "unsupported_media_type"


class EvidenceAltered(DomainError):
    """A stored evidence file no longer matches the SHA-256 it was kept (and chained) under."""

    code = "evidence_altered"
