"""Embedding split into shards that Dask workers encode in parallel.

Each worker loads the encoder once and keeps it; a worker's Dask threads are its torch threads.
On CUDA the default cluster is dask-cuda's, one worker per GPU. Texts are dealt to shards in
order of length, so every shard gets a similar mix of long and short texts; each vector depends
only on its text, so the result equals the single-process one (within float tolerance).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from pipelines.core.settings import DaskSettings, EmbedSettings
from pipelines.embed.encoder import Encoder

_WORKER_ENCODERS: dict[tuple[EmbedSettings, str], Encoder] = {}


def shard_indices(texts: list[str], shards: int) -> list[np.ndarray]:
    """Positions of ``texts`` per shard, dealt round-robin in order of length."""
    order = np.argsort(np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)),
                       kind="stable")
    return [order[i::shards] for i in range(shards) if i < len(texts)]


def _encode_on_worker(texts: list[str], cfg: EmbedSettings, device: str) -> np.ndarray:
    from distributed import get_worker

    key = (cfg, device)
    if key not in _WORKER_ENCODERS:
        _WORKER_ENCODERS[key] = Encoder.load(cfg, device, threads=get_worker().state.nthreads)
    return _WORKER_ENCODERS[key].encode(texts)


def encode_sharded(client: Any, texts: list[str], cfg: EmbedSettings, device: str,
                   shards: int, dim: int) -> np.ndarray:
    """Unit vectors for ``texts`` in their order, computed in ``shards`` pieces on ``client``."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    parts = shard_indices(texts, shards)
    futures = [client.submit(_encode_on_worker, [texts[i] for i in part], cfg, device,
                             pure=False) for part in parts]
    for part, vectors in zip(parts, client.gather(futures), strict=True):
        out[part] = vectors
    return out


@contextmanager
def embedding_client(cfg: DaskSettings, device: str) -> Iterator[Any]:
    """A client on ``cfg.scheduler``; else a local cluster: one worker per GPU on CUDA
    (dask-cuda), ``cfg.workers`` processes on CPU."""
    from distributed import Client

    if cfg.scheduler or device != "cuda":
        from pipelines.core.engines import dask_client

        with dask_client(cfg) as client:
            yield client
        return
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as exc:
        raise RuntimeError(
            "embed.shards > 1 on CUDA needs dask-cuda (pip install dask-cuda) for one worker "
            "per GPU, or a [dask] scheduler address") from exc
    with LocalCUDACluster(dashboard_address=None) as cluster, Client(cluster) as client:
        yield client
