"""What business logic raises when a request cannot be served, by kind.

Each error carries the machine `code` customers see (`invalid_phone`, `unknown_call`, …)
and a message; the HTTP layer alone decides the status of each kind
(`switchboard_shared.http.errors.DOMAIN_ERROR_STATUS`), so service logic knows no HTTP.
"""

from __future__ import annotations


class DomainError(Exception):
    """A request that cannot be served as it stands."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidRequest(DomainError):
    """Understood, but refused by a rule: a bad phone number, an unknown agent, a limit."""


class MalformedInput(DomainError):
    """The input cannot be understood at all (a callback body of the wrong shape)."""


class NotAuthenticated(DomainError):
    """The sender could not be verified (a bad or missing signature)."""


class NotFound(DomainError):
    """What the request names does not exist (or is not the caller's to see)."""


class Conflict(DomainError):
    """The request conflicts with the current state."""


class InvalidBatch(InvalidRequest):
    """A batch refused as a whole: `rows` names the first bad rows, each with its code."""

    def __init__(self, message: str, rows: list[tuple[int, str, str]]) -> None:
        super().__init__("invalid_batch", message)
        self.rows = rows  # (row number from 1, error code, message)
