"""GraphStore on Postgres (psycopg 3): per-document support and relations, version fences, pruning."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from headwater.kernel.postgres import DDL_LOCK
from services.graph_builder import canonical
from services.graph_builder.domain import ChunkSupport, DocumentGraph, Edge, EntityRecord, GraphCompaction
from services.graph_builder.errors import GraphStoreError

# Writers lock the buckets of the entities they touch, so one cannot prune an entity another is adding.
_LOCK_BUCKETS = 32

SCHEMA = (
    DDL_LOCK
    + """
CREATE TABLE IF NOT EXISTS graph_documents (
    tenant text NOT NULL, document_id text NOT NULL, version bigint NOT NULL,
    deleted boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, document_id));
CREATE TABLE IF NOT EXISTS graph_entities (
    tenant text NOT NULL, entity_id text NOT NULL,
    label text NOT NULL, name text NOT NULL, slug text NOT NULL,
    PRIMARY KEY (tenant, entity_id));
CREATE INDEX IF NOT EXISTS graph_entities_slug ON graph_entities (tenant, slug);
CREATE TABLE IF NOT EXISTS graph_support (
    tenant text NOT NULL, document_id text NOT NULL, entity_id text NOT NULL, chunk_id text NOT NULL,
    mentions integer NOT NULL CHECK (mentions > 0),
    PRIMARY KEY (tenant, document_id, entity_id, chunk_id));
CREATE INDEX IF NOT EXISTS graph_support_entity ON graph_support (tenant, entity_id);
CREATE TABLE IF NOT EXISTS graph_relations (
    tenant text NOT NULL, document_id text NOT NULL,
    src text NOT NULL, dst text NOT NULL, relation text NOT NULL,
    weight double precision NOT NULL,
    PRIMARY KEY (tenant, document_id, src, dst, relation));
CREATE INDEX IF NOT EXISTS graph_relations_src ON graph_relations (tenant, src);
CREATE INDEX IF NOT EXISTS graph_relations_dst ON graph_relations (tenant, dst);
"""
)

_FENCE = """
INSERT INTO graph_documents AS d (tenant, document_id, version, deleted) VALUES (%s, %s, %s, %s)
ON CONFLICT (tenant, document_id) DO UPDATE
    SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, updated_at = now()
    WHERE d.version < EXCLUDED.version
RETURNING 1
"""
_LOCK = """
SELECT pg_advisory_xact_lock(%s, b) FROM (SELECT DISTINCT unnest(%s::int[]) AS b ORDER BY b) AS buckets
"""
_PRUNE = """
DELETE FROM graph_entities AS e
WHERE e.tenant = %s AND e.entity_id = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM graph_support AS s WHERE s.tenant = e.tenant AND s.entity_id = e.entity_id)
"""
_RECORDS = """
SELECT e.entity_id, e.label, e.name,
       (SELECT count(*) FROM graph_support AS s WHERE s.tenant = e.tenant AND s.entity_id = e.entity_id)
FROM graph_entities AS e WHERE e.tenant = %s AND {where}
"""
_EDGES = """
WITH rel AS (
    SELECT src, dst, relation, sum(weight) AS weight FROM graph_relations
    WHERE tenant = %(tenant)s AND (src = ANY(%(ids)s) OR dst = ANY(%(ids)s))
    GROUP BY src, dst, relation),
pairs AS (
    SELECT s.seed, CASE WHEN r.src = s.seed THEN r.dst ELSE r.src END AS other, sum(r.weight) AS total
    FROM rel AS r JOIN unnest(%(ids)s::text[]) AS s(seed) ON s.seed IN (r.src, r.dst)
    GROUP BY 1, 2),
ranked AS (
    SELECT seed, other, row_number() OVER (PARTITION BY seed ORDER BY total DESC, other) AS rank
    FROM pairs WHERE total >= %(min_weight)s)
SELECT r.src, r.dst, r.relation, r.weight FROM rel AS r
WHERE EXISTS (SELECT 1 FROM ranked AS k WHERE k.rank <= %(limit)s
              AND ((k.seed = r.src AND k.other = r.dst) OR (k.seed = r.dst AND k.other = r.src)))
ORDER BY r.weight DESC, r.src, r.dst, r.relation
"""
_CHUNKS = """
SELECT chunk_id, document_id, array_agg(entity_id ORDER BY entity_id), sum(mentions)::int FROM graph_support
WHERE tenant = %s AND entity_id = ANY(%s)
GROUP BY document_id, chunk_id
ORDER BY count(*) DESC, sum(mentions) DESC, document_id, chunk_id
LIMIT %s
"""

# Compaction, in this order inside one transaction. Support of a document that is deleted (or has no
# fence row at all) goes first; then only live documents have support, so a relation whose endpoint lacks
# support in its own document (its evidence) is dangling, deleted documents' relations included; last,
# entities no chunk supports.
_COMPACT_SUPPORT = """
DELETE FROM graph_support AS s
WHERE s.tenant = %(tenant)s AND NOT EXISTS (
    SELECT 1 FROM graph_documents AS d
    WHERE d.tenant = s.tenant AND d.document_id = s.document_id AND NOT d.deleted)
"""
_COMPACT_RELATIONS = """
DELETE FROM graph_relations AS r
WHERE r.tenant = %(tenant)s AND (
    NOT EXISTS (SELECT 1 FROM graph_support AS s
                WHERE s.tenant = r.tenant AND s.document_id = r.document_id AND s.entity_id = r.src)
    OR NOT EXISTS (SELECT 1 FROM graph_support AS s
                   WHERE s.tenant = r.tenant AND s.document_id = r.document_id AND s.entity_id = r.dst))
"""
_COMPACT_ENTITIES = """
DELETE FROM graph_entities AS e
WHERE e.tenant = %(tenant)s
  AND NOT EXISTS (SELECT 1 FROM graph_support AS s WHERE s.tenant = e.tenant AND s.entity_id = e.entity_id)
"""
_TENANTS = """
SELECT tenant FROM graph_entities UNION SELECT tenant FROM graph_support
UNION SELECT tenant FROM graph_relations ORDER BY 1
"""


class PostgresGraphStore:
    """The tenant's graph in five tables of the connection's search_path."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def ensure_schema(self) -> None:
        """Create the tables and indexes if missing."""
        with _translated(), self._conn.transaction():
            self._conn.execute(SCHEMA)

    def apply_document(self, *, tenant: str, document_id: str, version: int, graph: DocumentGraph) -> bool:
        return self._write(
            tenant=tenant, document_id=document_id, version=version, graph=graph, deleted=False
        )

    def remove_document(self, *, tenant: str, document_id: str, version: int) -> bool:
        return self._write(
            tenant=tenant, document_id=document_id, version=version, graph=DocumentGraph(), deleted=True
        )

    def entity(self, *, tenant: str, entity_id: str) -> EntityRecord | None:
        found = self.entities(tenant=tenant, entity_ids=[entity_id])
        return found[0] if found else None

    def entities(self, *, tenant: str, entity_ids: Sequence[str]) -> list[EntityRecord]:
        sql = _RECORDS.format(where="e.entity_id = ANY(%s)")
        return self._records(sql, (tenant, list(entity_ids)))

    def find_entities(
        self, *, tenant: str, names_or_ids: Sequence[str], limit: int = 20
    ) -> list[EntityRecord]:
        keys = [q for name in names_or_ids for q in canonical.query_slugs(name)]
        groups, slugs = [g or "" for g, _ in keys], [s for _, s in keys]
        sql = _RECORDS.format(
            where="EXISTS (SELECT 1 FROM unnest(%s::text[], %s::text[]) AS k(grp, slug)"
            " WHERE k.slug = e.slug AND (k.grp = '' OR k.grp = e.label))"
        )
        return self._records(sql + " ORDER BY 4 DESC, 1 LIMIT %s", (tenant, groups, slugs, limit))

    def chunks_for_entities(
        self, *, tenant: str, entity_ids: Sequence[str], limit: int
    ) -> list[ChunkSupport]:
        with _translated():
            rows = self._conn.execute(_CHUNKS, (tenant, list(entity_ids), limit)).fetchall()
        return [
            ChunkSupport(chunk_id=c, document_id=d, entity_ids=tuple(es), mentions=n) for c, d, es, n in rows
        ]

    def edges_around(
        self, *, tenant: str, entity_ids: Sequence[str], limit: int, min_weight: float = 0.0
    ) -> list[Edge]:
        params = {"tenant": tenant, "ids": list(entity_ids), "limit": limit, "min_weight": min_weight}
        with _translated():
            rows = self._conn.execute(_EDGES, params).fetchall()
        return [Edge(src=s, dst=d, relation=r, weight=float(w)) for s, d, r, w in rows]

    def document_version(self, *, tenant: str, document_id: str) -> int | None:
        """Stored version of a document, tombstones included."""
        with _translated():
            row = self._conn.execute(
                "SELECT version FROM graph_documents WHERE tenant = %s AND document_id = %s",
                (tenant, document_id),
            ).fetchone()
        return int(row[0]) if row else None

    def prune_orphans(self, *, tenant: str) -> int:
        """Delete every entity of the tenant left without support (a repair sweep); returns how many."""
        with _translated(), self._conn.transaction():
            self._lock_buckets(tenant, range(_LOCK_BUCKETS))
            cur = self._conn.execute(
                "DELETE FROM graph_entities AS e WHERE e.tenant = %s AND NOT EXISTS"
                " (SELECT 1 FROM graph_support AS s WHERE s.tenant = e.tenant AND s.entity_id = e.entity_id)",
                (tenant,),
            )
            return cur.rowcount

    def tenants(self) -> list[str]:
        """Every tenant with entities, support or relations, sorted."""
        with _translated():
            return [r[0] for r in self._conn.execute(_TENANTS).fetchall()]

    def compact(self, *, tenant: str) -> GraphCompaction:
        """Remove support and relations of deleted documents, dangling relations and unsupported entities.

        Safe beside the graph stage: a writer locks the fence row of its document, then the lock buckets
        of every entity it touches (ascending), and only then changes support, relations or entities.
        Compaction takes all of the tenant's buckets (ascending) first, so it waits for writers that are
        inside and writers arriving later wait for it; each statement then reads committed state only
        (READ COMMITTED takes a snapshot per statement, after the locks). A writer that has moved its
        fence row but waits for its buckets has not touched its support yet, and replaces all of it once
        it runs, so whatever compaction removed of that document's old rows was due to go anyway. Nor can
        the two deadlock: compaction never locks fence rows, and a writer waits for compaction only while
        taking its buckets, before it has changed a row. An entity compaction removed and a writer needs
        again is inserted by the writer's own upsert, with its support, in one transaction. The tenant's
        graph writes wait while compaction runs (three indexed anti-joins over the tenant's rows).
        """
        params = {"tenant": tenant}
        with _translated(), self._conn.transaction():
            self._lock_buckets(tenant, range(_LOCK_BUCKETS))
            support = self._conn.execute(_COMPACT_SUPPORT, params).rowcount
            relations = self._conn.execute(_COMPACT_RELATIONS, params).rowcount
            entities = self._conn.execute(_COMPACT_ENTITIES, params).rowcount
        return GraphCompaction(tenant=tenant, support=support, relations=relations, entities=entities)

    def _write(
        self, *, tenant: str, document_id: str, version: int, graph: DocumentGraph, deleted: bool
    ) -> bool:
        with _translated(), self._conn.transaction():
            # The fence row's lock also serialises writers of one document until this transaction ends.
            if self._conn.execute(_FENCE, (tenant, document_id, version, deleted)).fetchone() is None:
                return False
            old = [
                r[0]
                for r in self._conn.execute(
                    "SELECT DISTINCT entity_id FROM graph_support WHERE tenant = %s AND document_id = %s",
                    (tenant, document_id),
                )
            ]
            new = [e.entity_id for e in graph.entities]
            self._lock_buckets(tenant, {_bucket(e) for e in (*old, *new)})
            self._conn.execute(
                "DELETE FROM graph_support WHERE tenant = %s AND document_id = %s", (tenant, document_id)
            )
            self._conn.execute(
                "DELETE FROM graph_relations WHERE tenant = %s AND document_id = %s", (tenant, document_id)
            )
            self._insert(tenant, document_id, graph)
            self._conn.execute(_PRUNE, (tenant, sorted(set(old) - set(new))))
            return True

    def _insert(self, tenant: str, document_id: str, graph: DocumentGraph) -> None:
        es = graph.entities
        self._conn.execute(
            "INSERT INTO graph_entities (tenant, entity_id, label, name, slug)"
            " SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])"
            " ON CONFLICT (tenant, entity_id) DO UPDATE SET name = EXCLUDED.name"
            " WHERE graph_entities.name IS DISTINCT FROM EXCLUDED.name",
            (
                tenant,
                [e.entity_id for e in es],
                [e.label for e in es],
                [e.name for e in es],
                [e.slug for e in es],
            ),
        )
        sp = graph.support
        self._conn.execute(
            "INSERT INTO graph_support (tenant, document_id, entity_id, chunk_id, mentions)"
            " SELECT %s, %s, * FROM unnest(%s::text[], %s::text[], %s::int[])",
            (
                tenant,
                document_id,
                [s.entity_id for s in sp],
                [s.chunk_id for s in sp],
                [s.mentions for s in sp],
            ),
        )
        rs = graph.relations
        self._conn.execute(
            "INSERT INTO graph_relations (tenant, document_id, src, dst, relation, weight)"
            " SELECT %s, %s, * FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[])",
            (
                tenant,
                document_id,
                [r.src for r in rs],
                [r.dst for r in rs],
                [r.relation for r in rs],
                [r.weight for r in rs],
            ),
        )

    def _lock_buckets(self, tenant: str, buckets: Iterable[int]) -> None:
        self._conn.execute(_LOCK, (_signed32(zlib.crc32(tenant.encode())), sorted(buckets)))

    def _records(self, sql: str, params: tuple[Any, ...]) -> list[EntityRecord]:
        with _translated():
            rows = self._conn.execute(sql, params).fetchall()
        return [EntityRecord(entity_id=i, label=lb, name=n, chunk_count=int(c)) for i, lb, n, c in rows]


def _bucket(entity_id: str) -> int:
    return zlib.crc32(entity_id.encode()) % _LOCK_BUCKETS


def _signed32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise GraphStoreError(f"graph store: {exc}") from exc
