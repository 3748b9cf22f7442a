"""Embedding split into shards on a real Dask LocalCluster gives the one-process vectors."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.core.settings import DaskSettings, EmbedSettings
from pipelines.embed.encoder import Encoder
from pipelines.embed.shards import embedding_client, encode_sharded
from tests.unit.embed.test_encoder import TEXTS

pytestmark = pytest.mark.slow


def test_sharded_on_dask_workers_equals_one_process() -> None:
    encoder = Encoder.load(EmbedSettings(batch_size=2), "cpu")
    texts = TEXTS * 3 + ["telescope " * n for n in range(1, 30, 3)]
    with embedding_client(DaskSettings(workers=2, threads_per_worker=1), "cpu") as client:
        sharded = encode_sharded(client, texts, EmbedSettings(batch_size=4), "cpu", 3,
                                 encoder.dim)
    np.testing.assert_allclose(sharded, encoder.encode(texts), atol=1e-5)
