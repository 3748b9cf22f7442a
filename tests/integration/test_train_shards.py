"""The ranker's training candidates generated in user shards on a real Dask LocalCluster give
the ranker trained in one process."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipelines.core.engines import shard_map
from pipelines.core.settings import replace
from pipelines.model.recommender import fit_model
from tests.support.worlds import as_of
from tests.unit.model.test_ranker import DAYS, SETTINGS, START, _truth, ring_world, trainer

pytestmark = pytest.mark.slow


def test_sharded_on_dask_workers_equals_one_process() -> None:
    events = ring_world()
    day = START + timedelta(days=DAYS - 2)
    splits = [(as_of(events, day - timedelta(days=j + 1)), _truth(events, day - timedelta(
        days=j))) for j in range(3)]
    one = fit_model(as_of(events, day), splits, SETTINGS, trainer)
    settings = replace(SETTINGS, serve={"shards": 3}, dask={"workers": 2,
                                                             "threads_per_worker": 1})
    with shard_map(settings) as shards:
        sharded = fit_model(as_of(events, day), splits, settings, trainer, shards)
    assert one.ranker is not None
    assert sharded.ranker.models == one.ranker.models
