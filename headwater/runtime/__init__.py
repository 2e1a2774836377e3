"""The embedded runtime: every stage in one process over bounded in-process queues."""
