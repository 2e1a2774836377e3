"""The distributed runtime: each service its own process, stages linked by Kafka topics."""

# service name (CLI) -> the stage it consumes for, if any. Kept import-light for `headwater --help`.
SERVICES: dict[str, str | None] = {
    "ingest": "ingest",
    "chunker": "chunker",
    "embedder": "embedder",
    "graph-builder": "graph_builder",
    "indexer": "indexer",
    "query": None,
    "index-node": "indexer",
}
HTTP_SERVICES = frozenset({"ingest", "query", "index-node"})
