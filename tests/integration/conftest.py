"""Integration tests use the session fixtures of tests/conftest.py (Postgres, Kafka broker)."""
