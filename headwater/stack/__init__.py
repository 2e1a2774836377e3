"""Launchers of the processes a local deployment or a test needs, without Docker: a Kafka broker (KRaft),
Kafka Connect with Debezium, a Postgres to capture from, and the services of the distributed runtime;
topics provisioned as code. Commands over them live in `headwater.cli.stack`."""
