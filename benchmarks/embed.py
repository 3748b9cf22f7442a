"""Embedding throughput on Amazon product texts: the pipeline's encoder against a naive loop
(fixed batches of 32 in input order, fp32), in the same run on the same texts."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.core.settings import EmbedSettings
from pipelines.datasets.amazon import load_amazon_items
from pipelines.embed.encoder import Encoder
from pipelines.embed.texts import item_texts

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-scientific"


def amazon_folder() -> Path:
    return Path(os.environ.get("RECS_AMAZON_DIR", SHARED))


def amazon_texts(n_texts: int) -> list[str]:
    """The first ``n_texts`` item texts of the Amazon set, built with the default template."""
    items = load_amazon_items(amazon_folder()).head(n_texts)
    return item_texts(items, EmbedSettings().item_template)["text"].to_list()


def naive_encode(encoder: Encoder, texts: list[str], batch: int = 32) -> np.ndarray:
    """What a notebook does: input order, fixed batches padded to their longest text, fp32."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            enc = encoder.tokenizer(texts[start:start + batch], padding=True, truncation=True,
                                    max_length=encoder.max_tokens,
                                    return_tensors="pt").to(encoder.device)
            hidden = encoder.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1).cpu().numpy())
    return np.concatenate(out)


def _padding_share(encoder: Encoder, texts: list[str], order: np.ndarray, batch: int) -> float:
    """The share of token slots that are padding when ``texts`` are batched in ``order``."""
    lengths = np.array([len(ids) for ids in encoder.tokenizer(
        texts, truncation=True, max_length=encoder.max_tokens)["input_ids"]])[order]
    slots = sum(lengths[i:i + batch].max() * len(lengths[i:i + batch])
                for i in range(0, len(lengths), batch))
    return 1 - lengths.sum() / slots


def encoder_flops(config: Any, lengths: np.ndarray) -> float:
    """FLOPs of a BERT-style encoder over sequences of ``lengths`` tokens, padding excluded:
    per layer the four d x d projections, the feed-forward pair and the two attention
    products (2 FLOPs per multiply-add); embeddings, norms and softmax are left out."""
    d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    n = lengths.astype(np.float64)
    per_layer = 4 * n * d * d + 2 * n * d * ff + 2 * n * n * d
    return float(2 * layers * per_layer.sum())


def matmul_flops_per_s(device: str, dtype_name: str, repeat: int, size: int = 2048) -> float:
    """The rate of a square matrix product on ``device`` with torch's current threads: the
    peak the encoder's GEMMs could reach here."""
    import torch

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    times = []
    for _ in range(repeat + 1):  # the first product warms the kernels up
        t0 = time.perf_counter()
        (a @ b).sum().item()
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / statistics.median(times[1:])


def bench_embed(n_texts: int, repeat: int, device: str = "auto") -> list[dict]:
    texts = amazon_texts(n_texts)
    rows = []
    fp32 = Encoder.load(EmbedSettings(precision="fp32"), device)
    texts = fp32.fit(texts)  # both paths see the same texts, cut at the model's limit
    fp32.encode(texts[:8])   # warm-up: weights loaded, kernels chosen

    def timed(fn) -> tuple[float, np.ndarray]:
        times, result = [], None
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = fn()
            if fp32.device == "cuda":
                import torch

                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return statistics.median(times), result

    naive_s, reference = timed(lambda: naive_encode(fp32, texts))
    input_order = np.arange(len(texts))
    rows.append({"step": f"embed/{fp32.device}", "what": "naive loop: batches of 32, fp32 (peer)",
                 "rows": len(texts), "seconds": naive_s, "rows_per_s": len(texts) / naive_s,
                 "ratio_to_peer": 1.0,
                 "padding": _padding_share(fp32, texts, input_order, 32)})
    lengths = np.array([len(ids) for ids in fp32.tokenizer(
        texts, truncation=True, max_length=fp32.max_tokens)["input_ids"]])
    flops = encoder_flops(fp32.model.config, lengths)
    # bf16 on the CPU too: the default there where the CPU has bf16 instructions.
    precisions = ["fp32"] + (["fp16", "bf16"] if fp32.device == "cuda" else ["bf16"])
    for precision in precisions:
        floor_s = flops / matmul_flops_per_s(fp32.device, precision, repeat)
        rows.append({"step": f"embed/{fp32.device}",
                     "what": f"floor: the model's {flops / 1e9:,.0f} GFLOP (no padding) at "
                             f"this device's {precision} matrix-product rate",
                     "rows": len(texts), "seconds": floor_s,
                     "rows_per_s": len(texts) / floor_s, "ratio_to_peer": floor_s / naive_s})

        encoder = fp32 if precision == "fp32" else Encoder.load(
            EmbedSettings(precision=precision), device)
        encoder.encode(texts[:8])
        seconds, vectors = timed(lambda e=encoder: e.encode(texts))
        order = np.argsort([len(ids) for ids in encoder.tokenizer(
            texts, truncation=True, max_length=encoder.max_tokens)["input_ids"]], kind="stable")
        cosine = float((vectors * reference).sum(axis=1).min())
        rows.append({"step": f"embed/{encoder.device}",
                     "what": f"pipeline: length-sorted batches of {encoder.batch_size}, "
                             f"{precision} (min cosine to peer {cosine:.5f})",
                     "rows": len(texts), "seconds": seconds, "rows_per_s": len(texts) / seconds,
                     "ratio_to_peer": seconds / naive_s, "share_of_floor": floor_s / seconds,
                     "padding": _padding_share(encoder, texts, order, encoder.batch_size)})
    return rows + bench_finetune(texts, fp32.device)


def bench_finetune(texts: list[str], device: str) -> list[dict]:
    """Fine-tuning pairs per second, LoRA and full, with the default ``[finetune]`` batch and
    token limit: each text paired with the next (the rate does not depend on which pairs)."""
    import tempfile

    import polars as pl

    from pipelines.core.settings import FinetuneSettings
    from pipelines.embed.encoder import resolve_model_path
    from pipelines.embed.finetune import finetune

    pairs = pl.DataFrame({"kind": "co", "anchor": texts[:-1], "positive": texts[1:]})
    steps = 40 if device == "cuda" else 4
    rows = []
    for method in ("lora", "full"):
        cfg = FinetuneSettings(method=method, max_steps=steps)
        with tempfile.TemporaryDirectory() as tmp:
            finetune(resolve_model_path(EmbedSettings().model), pairs.head(cfg.batch_size * 2),
                     cfg.model_copy(update={"max_steps": 1}), device, Path(tmp) / "warm")
            tuned = finetune(resolve_model_path(EmbedSettings().model), pairs, cfg, device,
                             Path(tmp) / "model")
        rows.append({"step": f"embed/{device}",
                     "what": f"fine-tune, {method}: {steps} steps of {tuned.batch} pairs, "
                             f"{cfg.max_length} tokens, "
                             + ("bf16 autocast" if device == "cuda" else "fp32")
                             + " (seconds include loading and saving)",
                     "rows": tuned.pairs_seen, "seconds": tuned.seconds,
                     "rows_per_s": tuned.pairs_per_s})
    return rows
