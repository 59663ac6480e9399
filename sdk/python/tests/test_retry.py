"""The retry policy's arithmetic."""

import grpc
import pytest

from rio_client import DEFAULT_RETRY, NO_RETRY, Retry


def test_backoff_grows_exponentially_up_to_the_maximum():
    r = Retry(initial_backoff=0.1, multiplier=2, max_backoff=1.0, jitter=0)
    assert [r.backoff(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_jitter_stays_within_its_bounds():
    r = Retry(initial_backoff=1.0, jitter=0.2)
    assert r.backoff(1, rand=lambda: 0.0) == pytest.approx(0.8)
    assert r.backoff(1, rand=lambda: 1.0) == pytest.approx(1.2)
    samples = {r.backoff(1) for _ in range(200)}
    assert all(0.8 <= s <= 1.2 for s in samples) and len(samples) > 1


def test_only_transient_codes_are_retried_and_attempts_are_bounded():
    assert DEFAULT_RETRY.max_attempts == 5
    assert DEFAULT_RETRY.should_retry(grpc.StatusCode.UNAVAILABLE, 1)
    assert DEFAULT_RETRY.should_retry(grpc.StatusCode.DEADLINE_EXCEEDED, 4)
    assert not DEFAULT_RETRY.should_retry(grpc.StatusCode.UNAVAILABLE, 5)
    for code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT,
                 grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INTERNAL):
        assert not DEFAULT_RETRY.should_retry(code, 1)
    assert not NO_RETRY.should_retry(grpc.StatusCode.UNAVAILABLE, 1)


@pytest.mark.parametrize("kwargs", [
    {"max_attempts": 0}, {"initial_backoff": -1}, {"multiplier": 0.5}, {"jitter": 2},
])
def test_nonsense_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        Retry(**kwargs)
