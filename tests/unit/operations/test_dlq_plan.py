"""Dead-letter planning: parsing, filters, recorded redrive progress, decisions, the republished record."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.operations import LetterNotFound, RedriveRefused
from headwater.operations.dlq import (
    MAX_PROGRESS_METADATA,
    REDRIVE_HEADER,
    Action,
    Letter,
    LetterFilter,
    RedriveProgress,
    decide,
    handled_offsets,
    parse_letter,
    plan_progress,
    redrive_record,
    scan_ranges,
)
from headwater.operations.records import DocumentRef, Position, Scope
from schemas.common import partition_key
from schemas.dead_letters import DeadLetter

SOURCE = "p.headwater.documents.redacted.v1"
DLQ = "p.headwater.dlq.chunker.v1"


def _letter_bytes(
    *, tenant: str = "acme", document_id: str = "d1", error_type: str = "ValueError", **extra: object
) -> bytes:
    payload = json.dumps({"tenant": tenant, "document_id": document_id, "text": "x"}).encode()
    letter = DeadLetter(
        stage="chunker",
        source_topic=SOURCE,
        error_type=error_type,
        reason="bad",
        key=f"{tenant}/{document_id}",
        payload_base64=base64.b64encode(payload).decode(),
        headers={"trace": "abc"},
        source_partition=1,
        source_offset=9,
    )
    return json.dumps({**json.loads(letter.model_dump_json()), **extra}).encode()


def _letter(offset: int = 0, partition: int = 0, **fields: str) -> Letter:
    tenant, document_id = fields.get("tenant", "acme"), fields.get("document_id", "d1")
    return parse_letter(
        stage="chunker",
        topic=DLQ,
        partition=partition,
        offset=offset,
        timestamp_ms=0,
        key=partition_key(tenant, document_id),
        value=_letter_bytes(**fields),
    )


def _garbage(offset: int, value: bytes | None = b"garbage") -> Letter:
    return parse_letter(
        stage="chunker", topic=DLQ, partition=0, offset=offset, timestamp_ms=0, key=None, value=value
    )


def test_a_letter_is_parsed_with_its_original_payload_and_document() -> None:
    letter = _letter(offset=4)
    assert letter.letter is not None and letter.problem is None
    assert json.loads(letter.payload or b"")["document_id"] == "d1"
    assert letter.document == DocumentRef("acme", "d1")
    assert letter.address == f"{DLQ}:0:4"


def test_fields_added_to_the_contract_later_do_not_make_a_letter_unreadable() -> None:
    assert _letter(trace_id="added-in-v2").letter is not None


@pytest.mark.parametrize("value", [b"garbage", None, b"[1]", b'{"stage": "chunker"}'])
def test_a_record_that_is_not_a_dead_letter_is_kept_with_the_reason(value: bytes | None) -> None:
    letter = _garbage(0, value)
    assert letter.letter is None and letter.problem


def test_filters_by_error_type_tenant_documents_and_positions() -> None:
    letter = _letter(offset=3, tenant="acme", document_id="d1", error_type="KeyError")
    assert LetterFilter().matches(letter)
    assert LetterFilter(error_type="KeyError").matches(letter)
    assert not LetterFilter(error_type="ValueError").matches(letter)
    assert LetterFilter(scope=Scope.of(tenant="acme", document_ids=["d1"])).matches(letter)
    assert not LetterFilter(scope=Scope.of(tenant="globex")).matches(letter)
    assert LetterFilter(positions=frozenset({Position(0, 3)})).matches(letter)
    assert not LetterFilter(positions=frozenset({Position(0, 4)})).matches(letter)
    assert not LetterFilter(error_type="KeyError").matches(_garbage(1))


def test_progress_moves_its_offset_over_contiguous_letters_and_remembers_the_rest() -> None:
    progress = RedriveProgress(10).advanced([12, 13, 20])
    assert progress == RedriveProgress(10, frozenset({12, 13, 20}))
    assert progress.encode() == "headwater-redriven:12-13,20"
    assert [progress.includes(o) for o in (9, 10, 11, 12, 13, 14, 20)] == [
        True,
        False,
        False,
        True,
        True,
        False,
        True,
    ]
    assert progress.advanced([10, 11]) == RedriveProgress(14, frozenset({20}))
    assert RedriveProgress(10).advanced([3]) == RedriveProgress(10)  # below the offset: already handled


@given(
    next_offset=st.integers(min_value=0, max_value=10_000),
    offsets=st.sets(st.integers(min_value=0, max_value=10_200), max_size=60),
)
def test_progress_survives_the_commit_metadata_round_trip(next_offset: int, offsets: set[int]) -> None:
    progress = RedriveProgress(next_offset).advanced(offsets)
    assert RedriveProgress.decode(progress.next_offset, progress.encode()) == progress


def test_no_commit_means_nothing_handled_and_foreign_metadata_is_refused() -> None:
    assert RedriveProgress.decode(None, "") == RedriveProgress(0)
    with pytest.raises(RedriveRefused):
        RedriveProgress.decode(5, "written by another tool")
    with pytest.raises(RedriveRefused):
        RedriveProgress.decode(5, "headwater-redriven:7-x")


def _decide(
    letter: Letter,
    *,
    progress: RedriveProgress | None = None,
    selection: LetterFilter | None = None,
    again: bool = False,
) -> Action:
    return decide(
        letter,
        progress=progress or RedriveProgress(),
        selection=selection or LetterFilter(),
        again=again,
        target_topic=SOURCE,
    ).action


def test_decisions() -> None:
    fresh = _letter(offset=5)
    assert _decide(fresh) is Action.REDRIVE
    assert _decide(fresh, selection=LetterFilter(error_type="KeyError")) is Action.FILTERED_OUT
    assert _decide(fresh, progress=RedriveProgress(6)) is Action.ALREADY_REDRIVEN
    assert _decide(fresh, progress=RedriveProgress(0, frozenset({5}))) is Action.ALREADY_REDRIVEN
    assert _decide(fresh, progress=RedriveProgress(6), again=True) is Action.REDRIVE
    assert _decide(_garbage(5)) is Action.UNREDRIVABLE


def test_a_letter_naming_another_topic_is_never_sent_there() -> None:
    letter = _letter()
    assert letter.letter is not None
    elsewhere = Letter(
        "chunker", DLQ, Position(0, 0), 0, None, letter.letter.model_copy(update={"source_topic": "payments"})
    )
    decision = decide(
        elsewhere, progress=RedriveProgress(), selection=LetterFilter(), again=False, target_topic=SOURCE
    )
    assert decision.action is Action.UNREDRIVABLE and "payments" in decision.why


def test_an_unfiltered_run_passes_unredrivable_letters_a_filtered_one_leaves_them() -> None:
    letters = [_letter(offset=0), _garbage(1), _letter(offset=2, error_type="KeyError")]
    everything = LetterFilter()
    decisions = [
        decide(x, progress=RedriveProgress(), selection=everything, again=False, target_topic=SOURCE)
        for x in letters
    ]
    assert handled_offsets(decisions, selection=everything) == {0: [0, 1, 2]}
    only_value_errors = LetterFilter(error_type="ValueError")
    decisions = [
        decide(x, progress=RedriveProgress(), selection=only_value_errors, again=False, target_topic=SOURCE)
        for x in letters
    ]
    assert handled_offsets(decisions, selection=only_value_errors) == {0: [0]}


def test_progress_too_scattered_for_the_commit_metadata_is_refused_before_sending() -> None:
    scattered = {0: list(range(1, 4000, 2))}  # every other letter: one range each
    with pytest.raises(RedriveRefused, match="metadata"):
        plan_progress({0: RedriveProgress()}, scattered)
    planned = plan_progress({0: RedriveProgress()}, {0: list(range(0, 4000))})
    assert planned[0] == RedriveProgress(4000) and len(planned[0].encode()) < MAX_PROGRESS_METADATA


def test_scan_starts_at_the_recorded_progress_or_at_the_log_start_with_again() -> None:
    progress = {0: RedriveProgress(7), 1: RedriveProgress(0)}
    beginning, end = {0: 2, 1: 3}, {0: 10, 1: 3}
    assert scan_ranges(
        progress=progress, beginning=beginning, end=end, selection=LetterFilter(), again=False
    ) == {
        0: (7, 10),
        1: (3, 3),
    }
    assert scan_ranges(
        progress=progress, beginning=beginning, end=end, selection=LetterFilter(), again=True
    ) == {
        0: (2, 10),
        1: (3, 3),
    }


def test_explicit_positions_read_only_their_span_and_must_exist() -> None:
    selection = LetterFilter(positions=frozenset({Position(0, 4), Position(0, 8)}))
    assert scan_ranges(progress={}, beginning={0: 0}, end={0: 10}, selection=selection, again=False) == {
        0: (4, 9)
    }
    for missing in (Position(0, 10), Position(3, 0)):
        with pytest.raises(LetterNotFound):
            scan_ranges(
                progress={},
                beginning={0: 0},
                end={0: 10},
                selection=LetterFilter(positions=frozenset({missing})),
                again=False,
            )


def test_the_redriven_record_is_the_original_with_a_redrive_header() -> None:
    letter = _letter(offset=6, partition=2)
    record = redrive_record(letter)
    assert record.topic == SOURCE
    assert record.key == b"acme/d1"
    assert record.value == letter.payload
    assert record.headers == [("trace", b"abc"), (REDRIVE_HEADER, f"{DLQ}:2:6".encode())]
    with pytest.raises(RedriveRefused):
        redrive_record(_garbage(0))
