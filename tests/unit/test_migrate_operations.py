"""`headwater migrate` without a store: the side-by-side comparison, eval sets, backfill lag and the
progress report."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from headwater.operations.migrate import (
    EvalQuery,
    SideBySide,
    backfill_lag,
    compare,
    load_eval_set,
    progress,
)
from schemas import SearchHit, SearchMode, SearchPage, SearchRequest
from schemas.search import GroupBy
from services.indexer.errors import MigrationError
from services.indexer.migration.plan import IndexCollection, Migration, MigrationState

SOURCE, TARGET = "chunks__a__d64__v1", "chunks__b__d32__v1"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


class FakeGateway:
    """Answers each (collection, query) with a fixed document ranking, and records the requests."""

    def __init__(self, rankings: dict[tuple[str, str], list[str]]) -> None:
        self.rankings = rankings
        self.requests: list[SearchRequest] = []

    def __call__(self, request: SearchRequest) -> SearchPage:
        self.requests.append(request)
        assert request.index is not None
        docs = self.rankings.get((request.index, request.query), [])
        return SearchPage(
            query=request.query,
            mode=request.mode,
            hits=[
                SearchHit(
                    document_id=d, chunk_id=f"{d}:0", score=1.0 / (i + 1), text="", version=1, retrievers={}
                )
                for i, d in enumerate(docs)
            ],
            took_ms=0.1,
            index=request.index,
        )


def _queries() -> list[EvalQuery]:
    return [
        EvalQuery(tenant="acme", query="q1", relevant=["d1"]),
        EvalQuery(tenant="acme", query="q2", relevant={"d3": 2, "d4": 1}),
        EvalQuery(tenant="globex", query="q3", relevant=["d6"]),
        EvalQuery(tenant="acme", query="q4", relevant=["d9"]),
    ]


RANKINGS = {
    (SOURCE, "q1"): ["d1", "d2"],  # perfect
    (TARGET, "q1"): ["d2", "d1"],  # the relevant one second: worse
    (SOURCE, "q2"): ["d5"],  # nothing relevant
    (TARGET, "q2"): ["d3", "d4"],  # ideal order: better
    (SOURCE, "q3"): ["d6"],
    (TARGET, "q3"): ["d6"],  # the same
    # q4: neither side finds anything
}


def test_compare_scores_both_sides_with_ndcg_at_10() -> None:
    gateway = FakeGateway(RANKINGS)
    result = compare(gateway, _queries(), source=SOURCE, target=TARGET, mode=SearchMode.DENSE)
    second = 1 / math.log2(3)  # the one relevant document at rank 2
    assert result.queries == 4
    assert result.source_score == pytest.approx((1 + 0 + 1 + 0) / 4)
    assert result.target_score == pytest.approx((second + 1 + 1 + 0) / 4)
    assert (result.better, result.worse) == (1, 1)
    # Share of the union both return: q1 all, q2 none, q3 all, q4 nothing at all counts as the same.
    assert result.overlap == pytest.approx((1 + 0 + 1 + 1) / 4)
    assert result.mode == "dense"

    assert [(r.index, r.query, r.tenant) for r in gateway.requests] == [
        (name, q.query, q.tenant) for q in _queries() for name in (SOURCE, TARGET)
    ]
    assert all(
        r.top_k == 10 and r.group_by is GroupBy.DOCUMENT and r.mode is SearchMode.DENSE
        for r in gateway.requests
    )


def test_graded_relevance_counts() -> None:
    queries = [EvalQuery(tenant="acme", query="q", relevant={"hi": 3, "lo": 1})]
    gateway = FakeGateway({(SOURCE, "q"): ["lo", "hi"], (TARGET, "q"): ["hi", "lo"]})
    result = compare(gateway, queries, source=SOURCE, target=TARGET)
    ideal = 3 + 1 / math.log2(3)
    assert result.source_score == pytest.approx((1 + 3 / math.log2(3)) / ideal)
    assert result.target_score == pytest.approx(1.0)
    assert (result.better, result.worse, result.overlap) == (1, 0, 1.0)
    assert result.mode == "hybrid"


def test_only_the_top_10_count() -> None:
    queries = [EvalQuery(tenant="acme", query="q", relevant=["late"])]
    eleventh = [f"x{i}" for i in range(10)] + ["late"]
    result = compare(
        FakeGateway({(SOURCE, "q"): eleventh, (TARGET, "q"): ["late"]}),
        queries,
        source=SOURCE,
        target=TARGET,
    )
    assert (result.source_score, result.target_score) == (0.0, 1.0)


def test_the_summary_for_the_decision_record() -> None:
    result = SideBySide(
        queries=5, source_score=0.123456, target_score=0.5, better=2, worse=1, overlap=0.33333, mode="hybrid"
    )
    assert result.as_dict() == {
        "metric": "ndcg@10",
        "queries": 5,
        "source": 0.1235,
        "target": 0.5,
        "better": 2,
        "worse": 1,
        "same": 2,
        "overlap@10": 0.3333,
        "mode": "hybrid",
    }


def test_an_empty_eval_set_is_refused() -> None:
    gateway = FakeGateway({})
    with pytest.raises(MigrationError, match="empty"):
        compare(gateway, [], source=SOURCE, target=TARGET)
    assert gateway.requests == []


# -- eval sets -------------------------------------------------------------------------------------

ROWS = [
    {"tenant": "acme", "query": "first", "relevant": ["d1", "d2"]},
    {"tenant": "globex", "query": "second", "relevant": {"d3": 2, "d4": 0}},
]


def test_an_eval_set_as_a_json_list(tmp_path: Path) -> None:
    path = tmp_path / "eval.json"
    path.write_text("\n  " + json.dumps(ROWS, indent=2))
    queries = load_eval_set(path)
    assert [(q.tenant, q.query) for q in queries] == [("acme", "first"), ("globex", "second")]
    assert queries[0].grades() == {"d1": 1, "d2": 1}
    assert queries[1].grades() == {"d3": 2, "d4": 0}


def test_an_eval_set_as_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n\n")
    assert load_eval_set(path) == [EvalQuery.model_validate(r) for r in ROWS]


@pytest.mark.parametrize("relevant", [[], {}])
def test_a_query_without_relevant_documents_is_refused(tmp_path: Path, relevant: object) -> None:
    path = tmp_path / "eval.json"
    path.write_text(json.dumps([{"tenant": "acme", "query": "q", "relevant": relevant}]))
    with pytest.raises(ValidationError):
        load_eval_set(path)


# -- lag and progress ------------------------------------------------------------------------------


def _migration(**changes: object) -> Migration:
    base = Migration(
        id=7,
        alias="chunks",
        source=IndexCollection(name=SOURCE, alias="chunks", model_id="a", dimension=64, profile=None),
        target=IndexCollection(name=TARGET, alias="chunks", model_id="b", dimension=32, profile=None),
        state=MigrationState.BACKFILLING,
        applied_state=None,
        backfill_complete=False,
        reembedded_points=0,
        embedded_texts=0,
        started_at=T0,
        updated_at=T0 + timedelta(seconds=10),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _kafka_must_not_be_asked(_: Migration) -> int | None:
    raise AssertionError("the copy scan's own count applies")


@pytest.mark.parametrize(
    ("changes", "lag"),
    [
        ({"total_points": 100, "scanned_points": 40}, 60),
        ({"total_points": 100, "scanned_points": 100}, 0),
        ({"total_points": 100, "scanned_points": 130}, 0),  # points added meanwhile: never negative
        ({"total_points": 100, "scanned_points": 40, "backfill_complete": True}, 0),
        ({"backfill_complete": True}, 0),
    ],
)
def test_lag_of_a_copy_scan(changes: dict[str, object], lag: int) -> None:
    assert backfill_lag(_migration(**changes), _kafka_must_not_be_asked) == lag
    assert backfill_lag(_migration(**changes), None) == lag


def test_lag_of_a_migration_consumer_comes_from_kafka() -> None:
    asked: list[int] = []

    def kafka_lag(m: Migration) -> int | None:
        asked.append(m.id)
        return 42

    migration = _migration(reembedded_points=10)
    assert backfill_lag(migration, kafka_lag) == 42
    assert asked == [7]
    assert backfill_lag(migration, lambda _: None) is None
    assert backfill_lag(migration, None) is None


def test_progress_of_a_copy_scan_with_an_eta() -> None:
    migration = _migration(total_points=100, scanned_points=50, reembedded_points=3, embedded_texts=2)
    report = progress(migration, backfill_lag(migration, None))
    assert report["state"] == "backfilling" and report["reads"] == SOURCE
    assert (report["backfilled"], report["total"], report["lag"]) == (50, 100, 50)
    assert report["eta_s"] == 10.0  # 50 points in 10 s, 50 to go
    assert report["backfill_complete"] is False
    assert report["source"] == {"collection": SOURCE, "model": "a"}
    assert report["target"] == {"collection": TARGET, "model": "b"}
    assert (report["reembedded_points"], report["embedded_texts"]) == (3, 2)


def test_progress_of_a_migration_consumer_counts_its_records() -> None:
    report = progress(_migration(reembedded_points=20), 30, records=(30, 60))
    assert (report["backfilled"], report["total"], report["lag"]) == (30, 60, 30)
    assert report["eta_s"] == 10.0  # 30 records in 10 s, 30 to go
    assert report["reembedded_points"] == 20


def test_progress_once_caught_up_or_cut_over() -> None:
    caught_up = progress(_migration(reembedded_points=20), 0, records=(60, 60))
    assert caught_up["backfill_complete"] is True and caught_up["eta_s"] is None
    assert (caught_up["backfilled"], caught_up["total"]) == (60, 60)
    cut = progress(_migration(state=MigrationState.CUT_OVER, reembedded_points=20), 5)
    assert cut["reads"] == TARGET and cut["eta_s"] is None
    unknown = progress(_migration(), None)
    assert unknown["lag"] is None and unknown["eta_s"] is None and unknown["backfill_complete"] is False
