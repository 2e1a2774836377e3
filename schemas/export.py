"""Export every contract as a JSON Schema file (`python -m schemas.export`); a test keeps them in sync."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas import (
    DeadLetter,
    DocumentChanged,
    DocumentRedacted,
    IngestDocument,
    SearchPage,
    SearchRequest,
)
from schemas.chunks import ChunksCreated, ChunksEmbedded, ChunksEnriched
from schemas.sources import CdcMappings

EXPORTED: dict[str, type[BaseModel]] = {
    "ingest_document": IngestDocument,
    "document_changed": DocumentChanged,
    "document_redacted": DocumentRedacted,
    "chunks_created": ChunksCreated,
    "chunks_embedded": ChunksEmbedded,
    "chunks_enriched": ChunksEnriched,
    "dead_letter": DeadLetter,
    "search_request": SearchRequest,
    "search_page": SearchPage,
    "cdc_mappings": CdcMappings,  # not a message: the CDC table-mapping file users write
}
SCHEMA_DIR = Path(__file__).parent / "json"


def render(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for name, model in EXPORTED.items():
        path = SCHEMA_DIR / f"{name}.v1.schema.json"
        text = render(model)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print("out of date: " + ", ".join(stale) + " (run `python -m schemas.export`)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
