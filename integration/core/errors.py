"""How a failure should be treated: the only vocabulary the engine needs from a pipeline.

A pipeline's handlers raise these; the engine retries ``TransientError`` with backoff and
dead-letters ``PermanentError``. Anything else is a bug, also dead-lettered, with its traceback
logged once.
"""

from __future__ import annotations


class IntegrationError(Exception):
    """Base class: ``str(error)`` is one readable line fit for a log or a dead letter."""


class TransientError(IntegrationError):
    """Worth retrying: timeouts, connection errors, 5xx, 429.

    ``retry_after`` is the peer's own hint (seconds), honoured as a lower bound on the next wait.
    ``maybe_applied`` says the request may have taken effect although it failed (the answer was
    lost or was a 5xx after the write), so a non-idempotent effect must be checked before it is
    attempted again.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        maybe_applied: bool = True,
        status: int | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied
        self.status = status
        self.body = body
        """The answer's body when the peer answered (a 429's says which limit refused it)."""
        """The peer's HTTP status when it answered (5xx, 429); None when no answer came back
        (a timeout, a dropped connection), so a read it served may never have reached us."""


class PermanentError(IntegrationError):
    """Retrying cannot help: 4xx answers, data the target refuses.

    ``blocking`` says whether later items of the same key must wait behind this one. A failed
    effect (the chat could not be created) blocks, because applying what follows would be out of
    order; input that can never be applied at all (an unknown event type, a malformed record) does
    not, because nothing after it depends on it.
    """

    def __init__(self, message: str, *, blocking: bool = True) -> None:
        super().__init__(message)
        self.blocking = blocking


class InvalidInput(PermanentError):
    """Input that fails validation: dead-lettered, never blocks the key."""

    def __init__(self, message: str) -> None:
        super().__init__(message, blocking=False)
