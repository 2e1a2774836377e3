"""Replay planning: where each partition starts and ends, which requests make sense, the copy itself."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from headwater.operations import InvalidRequest
from headwater.operations.records import Scope
from headwater.operations.replay import (
    REPLAY_HEADER,
    FromBeginning,
    FromOffset,
    FromTime,
    PartitionMove,
    ReplayRequest,
    end_offsets,
    replay_copy,
    start_offsets,
)

BEGINNING = {0: 0, 1: 40, 2: 5}  # partition 1 lost its first 40 records to retention or compaction
END = {0: 100, 1: 50, 2: 5}  # partition 2 is empty
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_from_the_beginning_is_each_log_start() -> None:
    assert start_offsets(FromBeginning(), beginning=BEGINNING, end=END) == BEGINNING


def test_an_offset_is_kept_inside_each_log() -> None:
    assert start_offsets(FromOffset(45), beginning=BEGINNING, end=END) == {0: 45, 1: 45, 2: 5}
    assert start_offsets(FromOffset(10), beginning=BEGINNING, end=END) == {0: 10, 1: 40, 2: 5}
    assert start_offsets(FromOffset(500), beginning=BEGINNING, end=END) == END


def test_a_time_uses_the_looked_up_offsets_and_the_end_where_nothing_is_that_new() -> None:
    by_time: dict[int, int | None] = {0: 70, 1: None, 2: None}
    assert start_offsets(FromTime(T0), beginning=BEGINNING, end=END, by_time=by_time) == {0: 70, 1: 50, 2: 5}


def test_the_range_ends_at_the_first_record_of_to_time_or_at_the_snapshot_end() -> None:
    assert end_offsets(END) == END
    assert end_offsets(END, {0: 80, 1: None, 2: None}) == {0: 80, 1: 50, 2: 5}
    # A lookup newer than the snapshot (records appended since) never widens the range.
    assert end_offsets(END, {0: 120}) == END


def test_a_group_reset_reports_what_the_group_will_read_again() -> None:
    assert PartitionMove(0, before=90, after=70, log_end=100).to_reprocess == 30
    assert PartitionMove(0, before=None, after=100, log_end=100).to_reprocess == 0


def _request(**changes: object) -> ReplayRequest:
    fields: dict[str, object] = {"stage": "embedder", "start": FromBeginning(), **changes}
    return ReplayRequest(**fields)  # type: ignore[arg-type]


def test_sensible_requests_pass_validation() -> None:
    _request().validate()
    _request(into_group="headwater.embedder-v2").validate()
    _request(
        scope=Scope.of(tenant="acme"), start=FromTime(T0), until=datetime(2025, 2, 1, tzinfo=UTC)
    ).validate()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"until": T0}, "--to-time"),
        ({"start": FromOffset(-1)}, "--from-offset"),
        ({"scope": Scope.of(tenant="a"), "start": FromTime(T0), "until": T0}, "later than"),
        ({"scope": Scope.of(document_ids=["d"]), "into_group": "g"}, "--into-group"),
    ],
)
def test_contradictory_requests_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        _request(**changes).validate()


def test_a_replayed_record_keeps_key_value_and_headers_and_says_where_it_came_from() -> None:
    copy = replay_copy(
        "p.headwater.chunks.v1",
        partition=2,
        offset=17,
        key=b"acme/d1",
        value=b'{"x": 1}',
        headers=[("trace", b"abc"), (REPLAY_HEADER, b"old")],
    )
    assert (copy.topic, copy.key, copy.value) == ("p.headwater.chunks.v1", b"acme/d1", b'{"x": 1}')
    assert copy.headers == [("trace", b"abc"), (REPLAY_HEADER, b"p.headwater.chunks.v1:2:17")]
