"""Domain errors. They carry meaning, never HTTP: ``api/errors.py`` maps them."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The object does not exist (or is not visible to the caller)."""


class Conflict(DomainError):
    """The request clashes with the current state of the object."""


class DuplicateRequest(Conflict):
    """Another request with the same idempotency key was stored first."""


class InvalidInput(DomainError):
    """The request is well-formed but breaks a business rule."""


class LLMError(DomainError):
    """A model call failed. ``retryable`` errors (timeouts, rate limits, 5xx) may succeed
    when tried again; the others (bad credentials, bad request) will not. ``provider``
    names the model provider when the failure came from one (``openai``, ...)."""

    def __init__(self, detail: str, *, retryable: bool, provider: str | None = None) -> None:
        super().__init__(detail)
        self.retryable = retryable
        self.provider = provider


class Unavailable(DomainError):
    """Something the request needs (an MCP server, say) cannot be reached now."""


class TooManyRequests(DomainError):
    """A quota of the caller is used up; ``retry_after`` seconds is a fair wait."""

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Forbidden(DomainError):
    """The caller is known but its role does not allow this."""
