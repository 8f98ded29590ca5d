"""A refusal the simulator answers with; each dialect renders it in its own error format."""

from __future__ import annotations


class SimError(Exception):
    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
