"""Lag arithmetic and which topic a Headwater group consumes."""

from __future__ import annotations

from headwater.config import KafkaSettings
from headwater.operations.lag import GroupLag, PartitionLag, known_topics_of


def test_lag_is_the_distance_from_the_committed_offset_to_the_log_end() -> None:
    assert PartitionLag("t", 0, committed=7, log_start=0, log_end=10).lag == 3
    assert PartitionLag("t", 0, committed=10, log_start=0, log_end=10).lag == 0


def test_without_a_commit_every_record_still_in_the_log_is_lag() -> None:
    assert PartitionLag("t", 0, committed=None, log_start=4, log_end=10).lag == 6


def test_a_commit_below_the_log_start_counts_only_records_that_still_exist() -> None:
    assert PartitionLag("t", 0, committed=1, log_start=4, log_end=10).lag == 6


def test_group_total_and_json_shape() -> None:
    group = GroupLag("g", "Stable", 2, (PartitionLag("t", 0, 5, 0, 10), PartitionLag("t", 1, None, 0, 2)))
    assert group.total == 7
    assert group.as_dict()["partitions"][1] == {
        "topic": "t",
        "partition": 1,
        "committed": None,
        "log_start": 0,
        "log_end": 2,
        "lag": 2,
    }


def test_stage_and_redrive_groups_map_to_their_topics_under_the_prefixes() -> None:
    settings = KafkaSettings(topic_prefix="x.", group_prefix="hw")
    assert known_topics_of(settings, "hw.embedder") == ["x.headwater.chunks.v1"]
    assert known_topics_of(settings, "hw.ingest") == ["x.headwater.documents.v1"]
    assert known_topics_of(settings, "hw.dlq-redrive.indexer") == ["x.headwater.dlq.indexer.v1"]
    assert known_topics_of(settings, "someone-else") is None
