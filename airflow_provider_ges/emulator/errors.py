"""The GES error every layer of the emulator raises (kept apart so that any module can import it)."""

from __future__ import annotations


class GesError(Exception):
    """A GES error reply with HTTP ``status``: ``{"errorCode": code, "errorMessage": message}`` on v1,
    ``{"error_code": code, "error_msg": message}`` on v2."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status
