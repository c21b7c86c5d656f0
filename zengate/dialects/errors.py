"""The error raised by validation and translation: an HTTP status and a message naming the field."""

from __future__ import annotations


class ProtocolError(Exception):
    """Bad input, as the client's API should report it (status, message, offending field)."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
