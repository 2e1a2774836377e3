from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from services.embedder.sparse import SparseEncoder, term_index


def _documented_index(term: str) -> int:
    """The documented function, restated: first 4 bytes of blake2b(term, digest_size=4), big-endian."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "big")


def test_term_index_is_the_documented_hash_and_fixed_forever() -> None:
    assert term_index("cytokin") == _documented_index("cytokin") == 3762494927
    assert term_index("il6") == 1812530705
    assert 0 <= term_index("ünïcode") < 2**32


def test_indices_agree_across_processes_with_different_hash_seeds(repo_root: Path) -> None:
    code = (
        "from services.embedder.sparse import SparseEncoder as S;"
        " print(S().encode_query('cytokines IL-6').indices)"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
            cwd=repo_root,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {str(sorted([3762494927, 1812530705, _documented_index("il")]))}


def test_terms_lowercase_drop_stopwords_and_stem() -> None:
    enc = SparseEncoder()
    assert enc.terms("The Running of the Patients’ studies") == ["run", "patient", "studi"]
    assert enc.terms("was it not that they were") == []
    assert enc.terms("don't") == []  # a contraction is one stopword, not "don" + "t"


def test_identifiers_with_digits_are_kept_whole_and_their_letter_runs_count_too() -> None:
    enc = SparseEncoder()
    assert enc.terms("IL-6 and il6 and COVID-19") == ["il6", "il", "il6", "il", "covid19", "covid"]
    assert enc.terms("p53 in 2001") == ["p53", "2001"]  # a one-letter run is no term
    assert enc.terms("CTLA - 4 binds CTLA-4") == ["ctla4", "ctla", "bind", "ctla4", "ctla"]  # spaced hyphen


def test_hyphenated_words_give_their_parts_and_the_joined_word() -> None:
    enc = SparseEncoder()
    assert enc.terms("long-term follow-up") == ["long", "term", "longterm", "follow", "followup"]
    assert set(enc.terms("up-regulation")) & set(enc.terms("upregulation")) == {"upregul"}
    assert enc.terms("the patient's") == ["patient"]


def test_document_vector_is_sorted_unique_and_bm25_weighted() -> None:
    enc = SparseEncoder(k1=1.2, b=0.75, avg_len=4)
    vector = enc.encode_document("cat cat dog bird")  # len 4 == avg_len, so the norm is k1
    weights = dict(zip(vector.indices, vector.values, strict=True))
    assert vector.indices == sorted(set(vector.indices))
    assert weights[term_index("cat")] == pytest.approx(2 * 2.2 / (2 + 1.2))
    assert weights[term_index("dog")] == pytest.approx(1 * 2.2 / (1 + 1.2))


def test_bm25_saturates_monotonically_with_term_frequency() -> None:
    enc = SparseEncoder(avg_len=50)
    filler = " ".join(f"w{i}x" for i in range(40))  # fixed length part; only the tf of "cat" changes
    weights = []
    for tf in range(1, 30):
        vec = enc.encode_document(f"{filler} " + "cat " * tf)
        weights.append(dict(zip(vec.indices, vec.values, strict=True))[term_index("cat")])
    gains = [b - a for a, b in itertools.pairwise(weights)]
    assert all(g > 0 for g in gains)  # more occurrences never hurt
    assert all(later < earlier for earlier, later in itertools.pairwise(gains))  # diminishing returns
    assert weights[-1] < enc.k1 + 1  # bounded by k1 + 1


def test_longer_documents_weigh_a_term_less() -> None:
    enc = SparseEncoder(avg_len=10)
    short = enc.encode_document("cat dog")
    long = enc.encode_document("cat " + " ".join(f"w{i}x" for i in range(30)))
    index = short.indices.index(term_index("cat"))
    assert long.values[long.indices.index(term_index("cat"))] < short.values[index]


def test_query_is_unique_terms_with_weight_one() -> None:
    vec = SparseEncoder().encode_query("cats cat the CAT dogs")
    assert vec.indices == sorted([term_index("cat"), term_index("dog")])
    assert vec.values == [1.0, 1.0]


def test_empty_text_gives_an_empty_vector() -> None:
    assert SparseEncoder().encode_document("the of and").indices == []


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="BM25"):
        SparseEncoder(b=1.5)
