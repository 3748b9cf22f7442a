"""Contrastive fine-tuning of the sentence encoder on pairs mined from the logs
(``pipelines.embed.pairs``).

Each step takes ``batch_size`` pairs and scores every anchor against every positive of the
batch (cosine x ``scale``); the loss is the cross-entropy of the true positive, in both
directions (symmetric InfoNCE, the multiple-negatives ranking loss), so the batch's other
positives are the negatives. ``lora`` trains low-rank adapters on the attention and
feed-forward projections and merges them back, so the result loads as a plain encoder;
``full`` trains every weight. bf16 autocast on CUDA, fp32 on the CPU. One seed gives the same
weights on one machine.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.core.settings import FinetuneSettings
from pipelines.embed.encoder import mean_pool

# The projections LoRA adapts in a BERT-style encoder: attention's query, key and value, and
# the output and feed-forward ("dense") layers.
LORA_TARGETS = ["query", "key", "value", "dense"]
DEFAULT_LR = {"lora": 2e-4, "full": 2e-5}


@dataclass(frozen=True)
class Tuned:
    """What a fine-tune did; the encoder itself is saved in ``folder``."""

    folder: Path
    method: str
    device: str
    pairs: int  # mined
    batch: int
    steps: int
    seconds: float
    loss_first: float
    loss_last: float
    weights_sha256: str

    @property
    def pairs_seen(self) -> int:
        return self.steps * self.batch

    @property
    def pairs_per_s(self) -> float:
        return self.pairs_seen / self.seconds


def plan_batches(n_pairs: int, cfg: FinetuneSettings) -> list[np.ndarray]:
    """The pairs of each of ``max_steps`` steps: a seeded shuffle, one batch after another, a
    fresh shuffle each epoch (a partial last batch is left out, so no pair repeats within a
    batch). A set smaller than ``batch_size`` is one batch."""
    batch = min(cfg.batch_size, n_pairs)
    per_epoch = n_pairs // batch
    rng = np.random.default_rng(cfg.seed)
    batches: list[np.ndarray] = []
    while len(batches) < cfg.max_steps:
        order = rng.permutation(n_pairs)
        batches += [order[b * batch:(b + 1) * batch] for b in range(per_epoch)]
    return batches[:cfg.max_steps]


def finetune(base: Path, pairs: pl.DataFrame, cfg: FinetuneSettings, device: str,
             out: Path) -> Tuned:
    """Fine-tune the encoder in ``base`` on ``pairs`` (``anchor``, ``positive``) and save it,
    with its tokenizer, in ``out``."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    if pairs.height < 2:
        raise ValueError(f"fine-tuning needs at least 2 pairs (in-batch negatives), got "
                         f"{pairs.height}")
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModel.from_pretrained(base, local_files_only=True).to(device)
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=cfg.lora_rank, lora_alpha=2 * cfg.lora_rank, lora_dropout=0.0,
            target_modules=LORA_TARGETS))
    model.train()
    batches = plan_batches(pairs.height, cfg)
    steps, batch = len(batches), len(batches[0])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=cfg.learning_rate or DEFAULT_LR[cfg.method])
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup + 1))))
    anchors, positives = pairs["anchor"].to_list(), pairs["positive"].to_list()
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda"
                else torch.autocast("cpu", enabled=False))

    def embed(texts: list[str]) -> torch.Tensor:
        enc = tokenizer(texts, padding=True, truncation=True, max_length=cfg.max_length,
                        return_tensors="pt").to(device)
        return mean_pool(model(**enc).last_hidden_state.float(), enc["attention_mask"])

    losses = []
    labels = torch.arange(batch, device=device)
    for idx in batches:
        with autocast:
            scores = embed([anchors[i] for i in idx]) @ embed([positives[i] for i in idx]).T
            scores = scores * cfg.scale
            loss = (torch.nn.functional.cross_entropy(scores, labels)
                    + torch.nn.functional.cross_entropy(scores.T, labels)) / 2
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    if cfg.method == "lora":
        model = model.merge_and_unload()
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return Tuned(folder=out, method=cfg.method, device=device, pairs=pairs.height,
                 batch=batch, steps=steps, seconds=time.perf_counter() - started,
                 loss_first=losses[0], loss_last=losses[-1],
                 weights_sha256=weights_digest(out))


def weights_digest(folder: Path) -> str:
    """sha256 of the saved weights."""
    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.safetensors")):
        digest.update(file.read_bytes())
    return digest.hexdigest()

