"""When and how long to wait before a call is tried again."""

import random
from dataclasses import dataclass, field
from typing import Callable, FrozenSet

import grpc

__all__ = ["Retry", "DEFAULT_RETRY", "NO_RETRY"]


@dataclass(frozen=True)
class Retry:
    """Exponential backoff with jitter for transient failures.

    A call is tried at most ``max_attempts`` times. Before retry ``n`` (1, 2,
    ...) the client waits ``min(max_backoff, initial_backoff * multiplier **
    (n - 1))`` seconds, scaled by a random factor in ``[1 - jitter, 1 +
    jitter]`` so that many clients do not retry in step.

    Only ``codes`` are retried: UNAVAILABLE (nothing was recorded, or the
    reply was lost) and DEADLINE_EXCEEDED (the reply was late). Emits are safe
    to retry because every attempt of one emit carries the same idempotency
    key.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2
    codes: FrozenSet[grpc.StatusCode] = field(
        default=frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
    )

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("Retry.max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("Retry backoffs may not be negative")
        if self.multiplier < 1:
            raise ValueError("Retry.multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("Retry.jitter must be between 0 and 1")

    def should_retry(self, code: grpc.StatusCode, attempt: int) -> bool:
        """Whether a call whose attempt number ``attempt`` failed with
        ``code`` gets another attempt."""
        return code in self.codes and attempt < self.max_attempts

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return base * (1 - self.jitter + 2 * self.jitter * rand())


DEFAULT_RETRY = Retry()
NO_RETRY = Retry(max_attempts=1)
