"""Debezium through a real Kafka Connect worker, against a real Postgres (wal_level=logical), on the real
broker: the connector file applies idempotently, every kind of change arrives as the envelope the ingest
decoder expects, and the TOAST placeholder appears exactly when the reselect post-processor is off."""

from __future__ import annotations

import random
import string

import pytest

from headwater.stack.connect import KafkaConnect
from headwater.stack.connectors import ConnectClient, ConnectorError
from headwater.stack.kafka import KafkaBroker
from headwater.stack.postgres import CdcPostgres
from schemas.sources import DEBEZIUM_UNAVAILABLE_VALUE, CdcMappings, TableMapping
from services.ingest.cdc import CdcIngest, InMemoryRowTracker, RowChange, Tombstone, Truncate, decode_record
from services.ingest.errors import UnavailableValue
from tests.cdc_support import new_source, read_topic, running_connector

pytestmark = pytest.mark.integration


def _big_text(n: int = 30_000) -> str:
    # Random letters compress badly, so Postgres stores the value out of line (TOAST).
    return "".join(random.choices(string.ascii_letters + " ", k=n))


def test_every_kind_of_change_arrives_as_a_decodable_envelope(
    kafka_broker: KafkaBroker, kafka_connect: KafkaConnect, cdc_postgres: CdcPostgres
) -> None:
    source = new_source(cdc_postgres)
    big = _big_text()
    source.execute(
        "INSERT INTO articles VALUES (1, 'acme', 'Big', %s, '{a}'), (2, 'acme', 'Small', 'b', NULL)", (big,)
    )
    client = ConnectClient(kafka_connect.url)
    config = source.config()
    bootstrap, topic = kafka_broker.bootstrap_servers, source.topic()
    with running_connector(client, source, bootstrap, config):
        assert client.apply(source.name, config) == "unchanged"  # idempotent: nothing sent, no restart
        read_topic(bootstrap, topic, until=lambda records: len(records) >= 2)  # the snapshot
        source.execute("UPDATE articles SET title = 'Big, retitled' WHERE id = 1")  # body TOASTed, untouched
        # The post-processor re-reads the row when it handles the event: let it, before the truncate below
        # empties the table (a row gone by then keeps the placeholder, which ingest refuses; see below).
        read_topic(bootstrap, topic, until=lambda records: len(records) >= 3)
        source.execute("INSERT INTO articles VALUES (3, 'acme', 'Three', 'c', NULL)")
        source.execute("UPDATE articles SET id = 4 WHERE id = 3")  # a primary-key change
        source.execute("DELETE FROM articles WHERE id = 2")
        source.execute("TRUNCATE articles")
        records = read_topic(bootstrap, topic, until=lambda rs: any(r.key is None for r in rs))

        decoded = [decode_record(r.topic, r.key, r.value) for r in records]
        kinds = [
            (d.op, d.key["id"])
            if isinstance(d, RowChange)
            else ("tombstone", d.key["id"])
            if isinstance(d, Tombstone)
            else ("t", None)
            for d in decoded
        ]
        assert kinds == [
            ("r", 1),
            ("r", 2),
            ("u", 1),
            ("c", 3),
            ("d", 3),
            ("tombstone", 3),
            ("c", 4),
            ("d", 2),
            ("tombstone", 2),
            ("t", None),
        ]
        retitled = decoded[2]
        assert isinstance(retitled, RowChange) and retitled.after is not None
        assert retitled.after["body"] == big  # re-selected by the post-processor, not the placeholder
        pk_delete, pk_create = decoded[4], decoded[6]
        assert isinstance(pk_delete, RowChange) and isinstance(pk_create, RowChange)
        assert pk_delete.lsn == pk_create.lsn  # both halves of the key change share one LSN
        assert isinstance(decoded[-1], Truncate) and decoded[-1].table == "public.articles"

        # Ingest turns the real stream into documents: everything ends deleted by the truncate.
        mappings = CdcMappings(
            topic_prefix=source.prefix,
            tables=[
                TableMapping(
                    table="public.articles",
                    document_id="a{id}",
                    tenant_column="tenant",
                    title="{title}",
                    text=["body"],
                )
            ],
        )
        ingest = CdcIngest(mappings=mappings, tracker=InMemoryRowTracker())
        live: dict[str, bool] = {}
        for events in ingest.handle(decoded):
            for event in events:
                live[event.document_id] = event.op.value == "upsert"
        assert live == {"a1": False, "a2": False, "a3": False, "a4": False}

    assert client.status(source.name) is None
    assert source.name not in source.replication_slots()
    client.close()


def test_without_the_reselect_post_processor_an_untouched_toasted_value_is_a_placeholder(
    kafka_broker: KafkaBroker, kafka_connect: KafkaConnect, cdc_postgres: CdcPostgres
) -> None:
    """The premise of the TOAST guard on the real connector, and the guard itself."""
    source = new_source(cdc_postgres)
    client = ConnectClient(kafka_connect.url)
    config = {k: v for k, v in source.config().items() if not k.startswith("post.processors")}
    bootstrap, topic = kafka_broker.bootstrap_servers, source.topic()
    with running_connector(client, source, bootstrap, config):
        source.execute("INSERT INTO articles VALUES (5, 'acme', 'Five', %s, NULL)", (_big_text(),))
        source.execute("UPDATE articles SET title = 'Five, retitled' WHERE id = 5")
        records = read_topic(bootstrap, topic, until=lambda rs: len(rs) >= 2)
    created, updated = (decode_record(topic, r.key, r.value) for r in records)
    assert isinstance(created, RowChange) and isinstance(updated, RowChange)
    assert updated.op == "u" and updated.after is not None
    assert updated.after["body"] == DEBEZIUM_UNAVAILABLE_VALUE
    assert updated.after["title"] == "Five, retitled"
    mappings = CdcMappings(
        topic_prefix=source.prefix,
        tables=[TableMapping(table="public.articles", document_id="a{id}", tenant="acme", text=["body"])],
    )
    ingest = CdcIngest(mappings=mappings, tracker=InMemoryRowTracker())
    assert ingest.handle([created])[0][0].op.value == "upsert"
    with pytest.raises(UnavailableValue):
        ingest.handle([updated])
    client.close()


def test_a_broken_connector_config_is_reported_with_the_connectors_own_error(
    kafka_broker: KafkaBroker, kafka_connect: KafkaConnect, cdc_postgres: CdcPostgres
) -> None:
    source = new_source(cdc_postgres)
    client = ConnectClient(kafka_connect.url)
    config = source.config(**{"database.password": "wrong"})
    try:
        with pytest.raises(ConnectorError, match="password authentication failed"):
            client.apply(source.name, config)  # Connect validates the config: Debezium tries to log in
    finally:
        client.delete(source.name)
        client.close()
