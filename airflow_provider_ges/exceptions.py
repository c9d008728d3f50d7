"""Errors raised by the GES provider: one base class, a few kinds a caller may branch on."""

from __future__ import annotations


class GesApiError(Exception):
    """A GES or IAM call failed.

    Carries what the server said (HTTP status, GES/APIGW/IAM error code and message) and which
    call it was (method and path, never a header, so never a token).
    """

    #: Whether retrying the same call may succeed.
    transient: bool = False

    def __init__(
        self,
        reason: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.reason = reason
        self.status_code = status_code
        self.error_code = error_code
        self.error_message = error_message
        self.method = method
        self.path = path
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        call = f"{self.method} {self.path}: " if self.method and self.path else ""
        status = f"HTTP {self.status_code} " if self.status_code is not None else ""
        repeats_status = self.error_code == str(self.status_code)  # IAM's {"error": {"code": 401}}
        code = f"{self.error_code}: " if self.error_code and not repeats_status else ""
        return f"{call}{status}{code}{self.error_message or self.reason}"


class GesAuthError(GesApiError):
    """Authentication or permission failed (IAM 401, APIGW 401, 403). Never retried blindly."""


class GesNotFoundError(GesApiError):
    """The project, graph, backup or job does not exist."""


class GesTransientError(GesApiError):
    """Throttling, a server error, a dropped connection or a garbled reply: worth retrying."""

    transient = True
