"""Which topic and consumer group belong to which stage, under the deployment's prefixes."""

from __future__ import annotations

from headwater.config import KafkaSettings
from headwater.operations.errors import InvalidRequest
from schemas.topics import PIPELINE, STAGES, Topic, dead_letter_topic

__all__ = [
    "MIGRATE_GROUP_INFIX",
    "REDRIVE_GROUP_INFIX",
    "dlq_topic",
    "input_topic",
    "migration_group",
    "redrive_group",
    "stage_group",
]

REDRIVE_GROUP_INFIX = "dlq-redrive"
MIGRATE_GROUP_INFIX = "migrate"


def _check(stage: str) -> str:
    if stage not in STAGES:
        raise InvalidRequest(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return stage


def input_topic_of(stage: str) -> Topic:
    """The pipeline topic a stage consumes."""
    _check(stage)
    return next(topic for topic in PIPELINE if topic.consumer == stage)


def input_topic(settings: KafkaSettings, stage: str) -> str:
    """Full name (with the prefix) of the topic a stage consumes."""
    return settings.topic(input_topic_of(stage).name)


def dlq_topic(settings: KafkaSettings, stage: str) -> str:
    """Full name of a stage's dead-letter topic."""
    return settings.topic(dead_letter_topic(_check(stage)).name)


def stage_group(settings: KafkaSettings, stage: str) -> str:
    """The consumer group a stage runs as."""
    return settings.group(_check(stage))


def redrive_group(settings: KafkaSettings, stage: str) -> str:
    """The group whose committed offsets (and metadata) remember which letters were redriven."""
    return settings.group(f"{REDRIVE_GROUP_INFIX}.{_check(stage)}")


def migration_group(settings: KafkaSettings, migration_id: int) -> str:
    """The group a model migration's consumer re-reads the enriched-chunk topic as, from its start."""
    return settings.group(f"{MIGRATE_GROUP_INFIX}.{migration_id}")
