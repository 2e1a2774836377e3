from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.embedder.logic import plan_batches


@given(
    counts=st.lists(st.integers(min_value=0, max_value=600), max_size=200),
    max_tokens=st.integers(min_value=1, max_value=4096),
    max_size=st.integers(min_value=1, max_value=64),
)
def test_plan_covers_every_index_once_in_order_within_limits(
    counts: list[int], max_tokens: int, max_size: int
) -> None:
    plan = plan_batches(counts, max_batch_tokens=max_tokens, max_batch_size=max_size)
    assert [i for batch in plan for i in batch] == list(range(len(counts)))
    for batch in plan:
        assert 1 <= len(batch) <= max_size
        # Only a single item bigger than the whole budget may exceed it, and then it travels alone.
        assert sum(counts[i] for i in batch) <= max_tokens or len(batch) == 1


@given(counts=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=100))
def test_plan_is_greedy_no_two_neighbours_could_merge(counts: list[int]) -> None:
    plan = plan_batches(counts, max_batch_tokens=250, max_batch_size=8)
    for left, right in itertools.pairwise(plan):
        merged_tokens = sum(counts[i] for i in left) + counts[right[0]]
        assert len(left) == 8 or merged_tokens > 250


def test_plan_examples() -> None:
    assert plan_batches([100, 100, 100, 5000, 1], max_batch_tokens=250, max_batch_size=10) == [
        [0, 1],
        [2],
        [3],
        [4],
    ]
    assert plan_batches([1] * 5, max_batch_tokens=100, max_batch_size=2) == [[0, 1], [2, 3], [4]]
    assert plan_batches([], max_batch_tokens=100, max_batch_size=2) == []


def test_plan_refuses_nonpositive_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_batches([1], max_batch_tokens=0, max_batch_size=1)
