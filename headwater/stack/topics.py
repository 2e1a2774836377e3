"""Topic provisioning as code, from the contracts in `schemas.topics`; safe to re-run."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]

from headwater.stack.kafka import KafkaStackError
from schemas.topics import PIPELINE, SOURCE_STAGES, STAGES, Topic, dead_letter_topic

__all__ = ["DLQ_RETENTION_MS", "ProvisionReport", "provision_topics", "topic_configs", "wanted_topics"]

DLQ_RETENTION_MS = 14 * 24 * 3600 * 1000
_TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code; a concurrent provisioner won the race


@dataclass(frozen=True)
class ProvisionReport:
    """Which topics this run created and which were already there."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def wanted_topics() -> list[Topic]:
    """Every pipeline topic and one dead-letter topic per stage (and per source consumer: CDC)."""
    return [*PIPELINE, *(dead_letter_topic(stage) for stage in (*STAGES, *SOURCE_STAGES))]


def topic_configs(topic: Topic) -> dict[str, str]:
    """Compaction by document key for pipeline topics; time retention for dead letters."""
    if topic.compacted:
        return {"cleanup.policy": "compact"}
    return {"cleanup.policy": "delete", "retention.ms": str(DLQ_RETENTION_MS)}


async def provision_topics(
    bootstrap: str, *, partitions: int = 6, replication_factor: int = 1, prefix: str = ""
) -> ProvisionReport:
    """Create the missing topics (names get `prefix`); existing topics are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        present = set(await admin.list_topics())
        report = ProvisionReport()
        missing: list[NewTopic] = []
        for topic in wanted_topics():
            name = prefix + topic.name
            if name in present:
                report.existing.append(name)
            else:
                missing.append(
                    NewTopic(name, partitions, replication_factor, topic_configs=topic_configs(topic))
                )
        if missing:
            response = await admin.create_topics(missing)
            for entry in response.topic_errors:
                name, code = entry[0], entry[1]
                if code == 0:
                    report.created.append(name)
                elif code == _TOPIC_ALREADY_EXISTS:
                    report.existing.append(name)
                else:
                    raise KafkaStackError(
                        f"creating topic {name} failed with Kafka error code {code}: {entry[2:]}"
                    )
        return report
    finally:
        await admin.close()
