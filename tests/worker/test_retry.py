"""The retry policy (durably.retry): when, or whether, a step's next attempt runs."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest

import durably
from durably import FatalError, RetryableError, Workflows
from durably.errors import PayloadTooLargeError, SerializationError, StepTimeoutError
from durably.retry import DEFAULT_RETRY, NOT_RETRYABLE, RetryPolicy
from durably.runtime.instance import StepSpec

NOW = 1_000_000.0


def test_the_default_is_three_retries_from_one_second_up_to_five_minutes() -> None:
    assert RetryPolicy(max_retries=3, backoff=1.0, max_delay=300.0) == DEFAULT_RETRY
    assert StepSpec("s", None, None).max_retries == DEFAULT_RETRY.max_retries
    assert StepSpec("s", None, None).retry == DEFAULT_RETRY


def test_the_public_signatures_default_to_the_one_policy() -> None:
    step = inspect.signature(Workflows.step).parameters["max_retries"]
    run_step = inspect.signature(durably.run_step).parameters["max_retries"]
    assert step.default == run_step.default == DEFAULT_RETRY.max_retries == 3


def test_backoff_doubles_from_its_base_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=20)
    delays = [policy.next_attempt(ConnectionError(), n, NOW) for n in range(1, 12)]
    assert [d - NOW for d in delays if d is not None] == [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0
    ]  # fmt: skip


def test_a_step_retry_after_sets_the_backoff_base_only() -> None:
    policy = StepSpec("s", None, None, max_retries=5, retry_after=0.5).retry
    assert policy == RetryPolicy(max_retries=5, backoff=0.5, max_delay=300.0)
    assert policy.next_attempt(ValueError(), 1, NOW) == NOW + 0.5
    assert policy.next_attempt(ValueError(), 3, NOW) == NOW + 2.0
    assert RetryPolicy.of(2, None) == RetryPolicy(max_retries=2)


@pytest.mark.parametrize(
    "error",
    [FatalError("no"), SerializationError("bad"), PayloadTooLargeError("big")],
)
def test_errors_no_attempt_can_fix_fail_at_once(error: Exception) -> None:
    assert isinstance(error, NOT_RETRYABLE)
    assert DEFAULT_RETRY.next_attempt(error, 1, NOW) is None


def test_a_timeout_is_retried_like_any_other_error() -> None:
    assert DEFAULT_RETRY.next_attempt(StepTimeoutError("slow"), 1, NOW) == NOW + 1.0


def test_retryable_error_runs_no_sooner_than_its_retry_after() -> None:
    # retry_after replaces the backoff, whether it is longer or shorter.
    assert DEFAULT_RETRY.next_attempt(RetryableError(retry_after="10m"), 1, NOW) == NOW + 600
    assert DEFAULT_RETRY.next_attempt(RetryableError(retry_after=0.1), 3, NOW) == NOW + 0.1
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert DEFAULT_RETRY.next_attempt(RetryableError(retry_after=at), 1, NOW) == at.timestamp()
    # Without retry_after it backs off like any error.
    assert DEFAULT_RETRY.next_attempt(RetryableError("later"), 2, NOW) == NOW + 2.0


def test_a_bad_retry_after_is_a_configuration_error() -> None:
    with pytest.raises(durably.ConfigurationError):
        DEFAULT_RETRY.next_attempt(RetryableError(retry_after=datetime(2030, 1, 1)), 1, NOW)


def test_exhausted_attempts_fail_the_step_even_a_retryable_error() -> None:
    policy = RetryPolicy(max_retries=2)
    assert policy.next_attempt(ValueError(), 2, NOW) == NOW + 2.0
    assert policy.next_attempt(ValueError(), 3, NOW) is None
    assert policy.next_attempt(RetryableError(retry_after="1s"), 3, NOW) is None
    assert RetryPolicy(max_retries=0).next_attempt(ValueError(), 1, NOW) is None


def test_may_run_counts_the_first_attempt_and_the_retries() -> None:
    policy = RetryPolicy(max_retries=2)
    assert [policy.may_run(n) for n in (1, 2, 3, 4)] == [True, True, True, False]
