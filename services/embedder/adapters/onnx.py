"""all-MiniLM-L6-v2 exported to ONNX once, quantised to int8 per channel, run with onnxruntime."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headwater.kernel.model_files import MINILM, minilm_path
from services.embedder.errors import PermanentEmbeddingError
from services.embedder.ports import Matrix
from services.embedder.vectors import l2_normalise, mean_pool

logger = logging.getLogger(__name__)

OPSET = 17
# Part of the cache key: change it whenever the export or quantisation recipe changes.
RECIPE = f"bert-last-hidden/opset{OPSET}/dynamic-int8-per-channel/v1"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "headwater" / "onnx"


def model_fingerprint(model_dir: Path, *, quantize: bool) -> str:
    """Hash of the weights, tokenizer and recipe: a new model or recipe never reuses a stale export."""
    digest = hashlib.sha256(f"{RECIPE}/quantize={quantize}".encode())
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        with (model_dir / name).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _export(model_dir: Path, target: Path, *, quantize: bool) -> None:
    """Export the transformer to ONNX (and quantise it) beside `target`, then rename it into place."""
    import torch
    from transformers import AutoModel

    class _Wrapper(torch.nn.Module):
        # The exporter passes inputs positionally; BERT's forward needs them by keyword.
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    dummy = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in _INPUTS)
    axes = {name: {0: "batch", 1: "seq"} for name in (*_INPUTS, "last_hidden_state")}
    target.parent.mkdir(parents=True, exist_ok=True)
    # Work in a private temp dir beside the target so the final rename stays on one filesystem.
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        fp32 = work / "model-fp32.onnx"
        # The tracer warns about shape checks it freezes; they hold for an encoder (no cache, no causal mask),
        # and the slow tests compare the export with fp32 on padded batches of mixed lengths.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Wrapper(model),
                dummy,
                str(fp32),
                input_names=list(_INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        result = fp32
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            result = work / "model-int8.onnx"
            # Per-tensor int8 is faster but too lossy (min cosine 0.92); per-channel keeps ≥ 0.98.
            quantize_dynamic(str(fp32), str(result), per_channel=True, weight_type=QuantType.QInt8)
        os.replace(result, target)  # atomic: concurrent exporters each write a whole file, last one wins
    finally:
        shutil.rmtree(work, ignore_errors=True)


class OnnxBackend:
    """Sentence embeddings from an int8 ONNX export: about twice fp32 torch's speed on CPU."""

    def __init__(
        self,
        *,
        model_dir: Path | None = None,
        cache_dir: Path | None = None,
        quantize: bool = True,
        batch_size: int = 32,
        intra_op_threads: int | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._model_dir = model_dir or minilm_path()
        self.batch_size = batch_size
        self.model_id = f"{MINILM}+onnx-int8" if quantize else f"{MINILM}+onnx-fp32"
        st_config = json.loads((self._model_dir / "sentence_bert_config.json").read_text())
        self.max_input_tokens = int(st_config.get("max_seq_length", 256))
        self.dimension = int(json.loads((self._model_dir / "config.json").read_text())["hidden_size"])
        name = "model-int8.onnx" if quantize else "model-fp32.onnx"
        self.model_path = (
            (cache_dir or default_cache_dir()) / model_fingerprint(self._model_dir, quantize=quantize) / name
        )
        if not self.model_path.exists():
            logger.info("exporting %s to %s", MINILM, self.model_path)
            _export(self._model_dir, self.model_path, quantize=quantize)
        options = ort.SessionOptions()
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        self._session = ort.InferenceSession(
            str(self.model_path), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(self._model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=self.max_input_tokens)
        self._tokenizer.no_padding()  # padding is done per length-sorted batch below

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Embed texts in length-sorted batches (less padding), returning rows in input order."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            feeds = {name: np.zeros((len(batch), width), dtype=np.int64) for name in _INPUTS}
            for row, i in enumerate(batch):
                enc = encodings[i]
                n = len(enc.ids)
                feeds["input_ids"][row, :n] = enc.ids
                feeds["attention_mask"][row, :n] = enc.attention_mask
                feeds["token_type_ids"][row, :n] = enc.type_ids
            try:
                (hidden,) = self._session.run(["last_hidden_state"], feeds)
            except Exception as exc:  # onnxruntime raises its own untyped errors
                raise PermanentEmbeddingError(
                    f"onnxruntime failed on a batch of {len(batch)}: {exc}"
                ) from exc
            out[batch] = l2_normalise(mean_pool(hidden, feeds["attention_mask"]))
        return out
