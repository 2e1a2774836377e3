"""`run_batch`: transient errors retried, poison isolated, and an outage reported rather than
dead-lettered when the caller asks (the Kafka runtime rewinds instead)."""

from __future__ import annotations

from headwater.runtime.batches import BatchRetryPolicy, run_batch

POLICY = BatchRetryPolicy(transient=(TimeoutError,), max_attempts=3, backoff_s=0.0)


def _no_sleep(_: float) -> None:
    return None


def test_a_poison_message_is_isolated_and_the_others_get_results() -> None:
    def handler(batch: list[int]) -> list[int]:
        if 13 in batch:
            raise ValueError("unlucky")
        return [x * 2 for x in batch]

    outcome = run_batch([1, 13, 3], handler, policy=POLICY, isolate_transient=True, sleep=_no_sleep)
    assert outcome.results == {0: 2, 2: 6}
    assert list(outcome.failures) == [1]
    assert isinstance(outcome.failures[1], ValueError)
    assert outcome.unavailable is None


def test_transient_errors_are_retried_within_the_bound() -> None:
    calls = {"n": 0}

    def flaky(batch: list[int]) -> list[int]:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TimeoutError("slow backend")
        return batch

    outcome = run_batch([1, 2], flaky, policy=POLICY, isolate_transient=False, sleep=_no_sleep)
    assert outcome.results == {0: 1, 1: 2}
    assert outcome.retries == 2


def test_an_outage_is_reported_without_giving_anything_up_when_asked() -> None:
    def down(batch: list[int]) -> list[int]:
        raise TimeoutError("backend down")

    outcome = run_batch([1, 2], down, policy=POLICY, isolate_transient=False, sleep=_no_sleep)
    assert isinstance(outcome.unavailable, TimeoutError)
    assert outcome.results == {}
    assert outcome.failures == {}

    isolated = run_batch([1, 2], down, policy=POLICY, isolate_transient=True, sleep=_no_sleep)
    assert isolated.unavailable is None
    assert sorted(isolated.failures) == [0, 1]


def test_a_handler_returning_the_wrong_number_of_results_fails_the_batch() -> None:
    outcome = run_batch([1, 2], lambda batch: [0], policy=POLICY, isolate_transient=True, sleep=_no_sleep)
    assert outcome.results == {0: 0, 1: 0}  # alone, each message gets its one result
    outcome = run_batch([1], lambda batch: [], policy=POLICY, isolate_transient=True, sleep=_no_sleep)
    assert isinstance(outcome.failures[0], RuntimeError)
