"""Retrieval evaluation that every layer above may use: BEIR loading, metrics, modes, the report table.
It runs nothing itself (`headwater eval` runs the pipeline: `headwater.bench.retrieval`)."""

from headwater.evaluation.beir import BeirDataset, corpus_commands, load_beir
from headwater.evaluation.metrics import (
    Scores,
    mean_ndcg,
    mrr_at,
    ndcg_at,
    recall_at,
    score_run,
    write_trec_run,
)
from headwater.evaluation.modes import DEFAULT_MODES, EvalMode, parse_mode, search_requests
from headwater.evaluation.report import TABLE_END, TABLE_START, markdown_table, replace_table

__all__ = [
    "DEFAULT_MODES",
    "TABLE_END",
    "TABLE_START",
    "BeirDataset",
    "EvalMode",
    "Scores",
    "corpus_commands",
    "load_beir",
    "markdown_table",
    "mean_ndcg",
    "mrr_at",
    "ndcg_at",
    "parse_mode",
    "recall_at",
    "replace_table",
    "score_run",
    "search_requests",
    "write_trec_run",
]
