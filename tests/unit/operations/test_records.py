"""Record helpers: positions, who a record is about, scopes, headers, instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from headwater.operations import InvalidRequest
from headwater.operations.records import (
    DocumentRef,
    Position,
    Scope,
    document_of,
    parse_instant,
    to_millis,
    with_header,
)
from schemas.common import partition_key


def test_position_parses_partition_and_offset_and_prints_back() -> None:
    assert Position.parse("3:120") == Position(3, 120)
    assert str(Position(3, 120)) == "3:120"


@pytest.mark.parametrize("text", ["12", "a:1", "1:", ":1", "1:-2", "-1:2", "1:2:3"])
def test_position_refuses_what_is_not_partition_colon_offset(text: str) -> None:
    with pytest.raises(InvalidRequest):
        Position.parse(text)


def test_document_comes_from_the_partition_key_and_keeps_slashes_in_the_id() -> None:
    assert document_of(partition_key("acme", "folder/a.md"), None) == DocumentRef("acme", "folder/a.md")


def test_document_falls_back_to_the_json_value_when_the_key_is_not_a_partition_key() -> None:
    value = b'{"tenant": "acme", "document_id": "d1", "text": "x"}'
    assert document_of(None, value) == DocumentRef("acme", "d1")
    assert document_of(b"no-separator", value) == DocumentRef("acme", "d1")
    assert document_of(b"\xff\xfe", value) == DocumentRef("acme", "d1")


@pytest.mark.parametrize(
    "value", [None, b"", b"not json", b"[1, 2]", b'{"tenant": "acme"}', b'{"tenant": 1, "document_id": "d"}']
)
def test_document_is_unknown_when_neither_key_nor_value_names_one(value: bytes | None) -> None:
    assert document_of(None, value) is None


def test_scope_by_tenant_by_ids_and_both() -> None:
    a1, a2, b1 = DocumentRef("a", "1"), DocumentRef("a", "2"), DocumentRef("b", "1")
    assert Scope.of(tenant="a").matches(a1) and not Scope.of(tenant="a").matches(b1)
    ids = Scope.of(document_ids=["1"])
    assert ids.matches(a1) and ids.matches(b1) and not ids.matches(a2)
    both = Scope.of(tenant="a", document_ids=["1"])
    assert [both.matches(d) for d in (a1, a2, b1)] == [True, False, False]


def test_an_unattributable_record_is_only_in_the_unrestricted_scope() -> None:
    assert Scope().is_everything and Scope().matches(None)
    assert not Scope.of(tenant="a").matches(None)


def test_with_header_adds_and_replaces_an_earlier_value() -> None:
    headers = [("a", b"1"), ("headwater-replay-of", b"t:0:1")]
    assert with_header(headers, "headwater-replay-of", "t:0:9") == [
        ("a", b"1"),
        ("headwater-replay-of", b"t:0:9"),
    ]
    assert with_header([], "x", "y") == [("x", b"y")]


def test_instants_need_a_time_zone() -> None:
    assert parse_instant("2025-01-31T09:00:00Z") == datetime(2025, 1, 31, 9, tzinfo=UTC)
    assert parse_instant("2025-01-31T11:00:00+02:00") == datetime(2025, 1, 31, 9, tzinfo=UTC)
    with pytest.raises(InvalidRequest, match="time zone"):
        parse_instant("2025-01-31T09:00:00")
    with pytest.raises(InvalidRequest, match="ISO 8601"):
        parse_instant("yesterday")


def test_kafka_timestamps_are_unix_milliseconds() -> None:
    assert to_millis(datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)) == 1500
    assert to_millis(datetime(1970, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == 0
