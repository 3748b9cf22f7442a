"""The ranker on a world with a planted answer: users walk a ring of items, one step a day, so
the item after a user's last one is what they take next. Trained on earlier days, the ranker
finds it; candidates are every generator's best, never a seen or unavailable item; the same
seed gives the same model."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines.core.settings import ModelSettings, Settings, replace
from pipelines.model.als import fit_als
from pipelines.model.ranker import FEATURES, candidates, labelled, merge_sets
from pipelines.model.recommender import RANKER, fit_model, ranked
from pipelines.model.retrieval import fit_retrieval
from tests.support.worlds import as_of

ITEMS = [f"i{n:02d}" for n in range(20)]
START = date(2026, 3, 1)
DAYS = 16
SETTINGS = replace(Settings(), model={"factors": 4, "iterations": 5, "seed": 3},
                   retrieval={"candidates": 5, "cold_min_users": 1},
                   ranker={"trees": 30, "ensemble": 1, "min_train_users": 5, "threads": 1})


def trainer(data):
    return fit_als(data, ModelSettings(factors=4, iterations=5, seed=3))


def ring_world(n_users: int = 80, seed: int = 0) -> list[tuple[str, str, date]]:
    rng = np.random.default_rng(seed)
    events = []
    for u in range(n_users):
        first = int(rng.integers(0, 6))  # users join over the first days
        pos = int(rng.integers(0, len(ITEMS)))
        for d in range(first, DAYS):
            events.append((f"u{u:03d}", ITEMS[(pos + d - first) % len(ITEMS)],
                           START + timedelta(days=d)))
    return events


def _truth(events, day: date) -> pl.DataFrame:
    return pl.DataFrame([(u, i) for u, i, d in events if d == day],
                        schema={"user_id": pl.String, "item_id": pl.String}, orient="row")


@pytest.fixture(scope="module")
def world():
    events = ring_world()
    day = START + timedelta(days=DAYS - 2)  # the model's day; the day after is the test
    splits = [(as_of(events, day - timedelta(days=j + 1)), _truth(events, day - timedelta(
        days=j))) for j in range(4)]
    model = fit_model(as_of(events, day), splits, SETTINGS, trainer)
    return events, day, model


def _top1(model, name: str, truth: pl.DataFrame) -> float:
    ret = model.retrieval
    users = pl.DataFrame({"user_id": ret.user_ids}).with_row_index("_u").join(
        truth, on="user_id")
    rows = users["_u"].to_numpy().astype(np.int64)
    idx, _ = ranked(model, name, rows, 1, SETTINGS.retrieval, exclude=None)
    got = ret.item_ids.gather(idx[:, 0]).to_list()
    return float(np.mean([g == t for g, t in zip(got, users["item_id"], strict=True)]))


def test_the_ranker_finds_the_planted_next_item(world) -> None:
    events, day, model = world
    assert model.ranker is not None
    truth = _truth(events, day + timedelta(days=1))
    # Users revisit the ring, so exclusion is off here: the next item may have been seen.
    assert _top1(model, RANKER, truth) > 0.9
    assert _top1(model, RANKER, truth) > _top1(model, "pop_7d", truth) + 0.5


def test_candidates_hold_every_generators_best_and_nothing_excluded(world) -> None:
    _, _, model = world
    ret = model.retrieval
    rows = np.arange(10)
    exclude = ret.seen[rows]
    mask = np.ones(ret.n_items, dtype=bool)
    mask[3] = False
    cand = candidates(ret, rows, 5, 7, exclude=exclude, item_mask=mask)
    assert cand.features.shape == (len(cand.users), len(FEATURES))
    assert not exclude.toarray()[cand.local, cand.items].any()
    assert 3 not in cand.items
    pairs = set(zip(cand.local.tolist(), cand.items.tolist(), strict=True))
    als = ret.scores("als", rows)
    als[exclude.toarray() > 0] = -np.inf
    als[:, ~mask] = -np.inf
    for r in range(len(rows)):
        for i in np.argsort(-als[r], kind="stable")[:5]:
            if np.isfinite(als[r, i]):
                assert (r, int(i)) in pairs


def test_lists_are_ordered_unseen_and_filled(world) -> None:
    _, _, model = world
    ret = model.retrieval
    rows = np.arange(ret.user_ids.len())
    idx, scores = ranked(model, RANKER, rows, 15, SETTINGS.retrieval, exclude=ret.seen[rows])
    seen = ret.seen.toarray()
    for r in range(len(rows)):
        items = idx[r][idx[r] >= 0]
        assert len(items) == len(set(items.tolist()))
        assert not seen[r, items].any()
        assert (np.diff(scores[r][: len(items)]) <= 0).all()
        # Every unseen item is listed when the list is longer than the candidates.
        assert len(items) == min(15, int((seen[r] == 0).sum()))


def test_same_seed_same_ranker(world) -> None:
    events, day, model = world
    splits = [(as_of(events, day - timedelta(days=j + 1)), _truth(events, day - timedelta(
        days=j))) for j in range(4)]
    again = fit_model(as_of(events, day), splits, SETTINGS, trainer)
    assert again.ranker.models == model.ranker.models


def sharded(fn, shared, shards: int) -> list:
    return [fn(shared, shard=i, shards=shards) for i in range(shards)]


def test_training_candidates_in_shards_are_the_one_shard_set(world) -> None:
    events, day, model = world
    ret = fit_retrieval(as_of(events, day - timedelta(days=1)), SETTINGS.retrieval, trainer)
    truth = _truth(events, day)

    def shard(r, **where):
        return labelled(r, truth, SETTINGS.ranker, 5, 7, block=7, **where)

    whole = merge_sets(sharded(shard, ret, 1))
    parts = sharded(shard, ret, 3)
    assert all(len(p[2]) for p in parts) and sum(len(p[2]) for p in parts) == len(whole[2])
    for got, want in zip(merge_sets(parts), whole, strict=True):
        np.testing.assert_array_equal(got, want)
    # And so the ranker: the same boosters whatever the sharding.
    splits = [(as_of(events, day - timedelta(days=j + 1)), _truth(events, day - timedelta(
        days=j))) for j in range(4)]
    again = fit_model(as_of(events, day), splits, SETTINGS, trainer,
                      lambda fn, shared: sharded(fn, shared, 4))
    assert again.ranker.models == model.ranker.models


def test_training_days_stop_once_their_rows_reach_the_cap(world) -> None:
    events, day, model = world
    splits = [(as_of(events, day - timedelta(days=j + 1)), _truth(events, day - timedelta(
        days=j))) for j in range(4)]
    assert model.training_days == 4 and model.ranker.info["splits"] == 4
    first = model.ranker.info["rows"] // 4  # about one day's rows
    capped = fit_model(as_of(events, day), splits,
                       replace(SETTINGS, ranker={"max_train_rows": first}), trainer)
    assert capped.training_days == capped.ranker.info["splits"] < 4
    one = fit_model(as_of(events, day), splits[:capped.training_days], SETTINGS, trainer)
    assert one.ranker.models == capped.ranker.models


def test_no_ranker_without_enough_training_users(world) -> None:
    events, day, _ = world
    few = replace(SETTINGS, ranker={"min_train_users": 10_000})
    model = fit_model(as_of(events, day), [(as_of(events, day - timedelta(days=1)),
                                            _truth(events, day))], few, trainer)
    assert model.ranker is None and model.candidates(SETTINGS.retrieval) == ()


def test_exploration_puts_fresh_items_at_even_places_and_keeps_scores_ordered() -> None:
    from pipelines.model.recommender import explore

    idx = np.array([[10, 11, 12, 13, 14, 15], [20, 21, 22, 23, 24, 25]])
    scores = np.array([[6, 5, 4, 3, 2, 1], [6, 5, 4, 3, 2, 1]], dtype=np.float32)
    # Two slots in the first six places: places 2 and 4. Row 0: 30 and 31 are new.
    got_idx, got_scores = explore(idx, scores, np.array([[30, 31], [-1, -1]]), window=6)
    assert got_idx[0].tolist() == [10, 11, 30, 12, 31, 13]
    assert got_scores[0].tolist() == [6, 5, 4, 4, 3, 3]
    np.testing.assert_array_equal(got_idx[1], idx[1])
    # A fresh item listed below the window moves up into it (window 4: places 1 and 2).
    got_idx, got_scores = explore(idx, scores, np.array([[-1, -1], [25, -1]]), window=4)
    assert got_idx[1].tolist() == [20, 25, 21, 22, 23, 24]
    assert got_scores[1].tolist() == [6, 5, 5, 4, 3, 2]
    assert (np.diff(got_scores, axis=1) <= 0).all()
    # Already in the window: nothing moves.
    same = explore(idx, scores, np.array([[11, -1], [-1, -1]]), window=6)
    np.testing.assert_array_equal(same[0], idx)


def test_the_explored_candidate_lists_a_cold_item_the_ranked_one_need_not() -> None:
    from pipelines.model.recommender import CANDIDATES, EXPLORED

    events = ring_world(n_users=60, seed=1)
    angle = {i: 2 * np.pi * n / len(ITEMS) for n, i in enumerate(ITEMS)}
    vectors = {i: [float(np.cos(a)), float(np.sin(a)), 0.1] for i, a in angle.items()}
    vectors["new"] = vectors["i05"]  # never interacted with: cold, and like i05
    catalog = [*ITEMS, "new"]
    day = START + timedelta(days=DAYS - 2)
    splits = [(as_of(events, day - timedelta(days=j + 1), vectors, catalog=catalog),
               _truth(events, day - timedelta(days=j))) for j in range(3)]
    cfg = replace(SETTINGS, retrieval={"exploration_slots": 1, "exploration_window": 5})
    model = fit_model(as_of(events, day, vectors, catalog=catalog), splits, cfg, trainer)
    assert model.candidates(cfg.retrieval) == CANDIDATES
    assert model.candidates(replace(cfg, retrieval={"exploration_slots": 0}).retrieval) == \
        (RANKER,)
    ret = model.retrieval
    new = ret.item_ids.to_list().index("new")
    rows = np.arange(ret.user_ids.len())
    plain, _ = ranked(model, RANKER, rows, 5, cfg.retrieval, exclude=ret.seen[rows])
    explored, scores = ranked(model, EXPLORED, rows, 5, cfg.retrieval, exclude=ret.seen[rows])
    assert (explored == new).any(axis=1).all()
    assert (explored == new).sum() > (plain == new).sum()
    assert (np.diff(scores, axis=1) <= 0).all()
    # A shorter explored list is the start of a longer one.
    longer, _ = ranked(model, EXPLORED, rows, 12, cfg.retrieval, exclude=ret.seen[rows])
    short, _ = ranked(model, EXPLORED, rows, 3, cfg.retrieval, exclude=ret.seen[rows])
    assert (longer[:, :5] == explored).all() and (longer[:, :3] == short).all()
    # One generation of candidates gives both lists, the same as one call for each; blocks
    # scored side by side give the lists that one block after another does.
    from pipelines.model.recommender import ranked_lists

    both = ranked_lists(model, (*CANDIDATES, "pop_7d", "itemknn"), rows, 5, cfg.retrieval,
                        exclude=ret.seen[rows], memory_mb=0.001, threads=3)
    np.testing.assert_array_equal(both[RANKER][0], plain)
    np.testing.assert_array_equal(both[EXPLORED][0], explored)
    np.testing.assert_array_equal(both[EXPLORED][1], scores)
    for name in ("pop_7d", "itemknn"):
        one = ranked(model, name, rows, 5, cfg.retrieval, exclude=ret.seen[rows], threads=1)
        np.testing.assert_array_equal(both[name][0], one[0])
        np.testing.assert_array_equal(both[name][1], one[1])


def test_a_capped_fit_reads_only_the_training_days_it_uses(world) -> None:
    events, day, model = world
    read = []

    def days():
        for j in range(4):
            read.append(j)
            yield (as_of(events, day - timedelta(days=j + 1)),
                   _truth(events, day - timedelta(days=j)))

    first = model.ranker.info["rows"] // 4
    capped = fit_model(as_of(events, day), days(),
                       replace(SETTINGS, ranker={"max_train_rows": first}), trainer)
    assert read == list(range(capped.training_days)) and capped.training_days < 4


def test_a_day_without_an_interest_memory_turns_it_off_for_every_day() -> None:
    import dataclasses

    events = ring_world(seed=2)
    day = START + timedelta(days=DAYS - 2)
    vectors = {i: [float(np.cos(n)), float(np.sin(n))] for n, i in enumerate(ITEMS)}
    users = sorted({u for u, _, _ in events})
    memory = pl.DataFrame({"user_id": users}).with_columns(pl.Series(
        "vector", np.tile(np.float32([1.0, 0.5]), (len(users), 1)),
        dtype=pl.Array(pl.Float32, 2)))

    def split(j: int, interest: pl.DataFrame | None):
        return (dataclasses.replace(as_of(events, day - timedelta(days=j + 1), vectors),
                                    interest=interest),
                _truth(events, day - timedelta(days=j)))

    current = dataclasses.replace(as_of(events, day, vectors), interest=memory)
    # The memory started two days ago: the third day, read last, has none.
    model = fit_model(current, [split(j, memory if j < 2 else None) for j in range(3)],
                      SETTINGS, trainer)
    assert not model.ranker.uses_interest and model.training_days == 3
    # The same ranker as one trained on days that never had the memory.
    again = fit_model(current, [split(j, None) for j in range(3)], SETTINGS, trainer)
    assert again.ranker.models == model.ranker.models
    with_memory = fit_model(current, [split(j, memory) for j in range(3)], SETTINGS, trainer)
    assert with_memory.ranker.uses_interest


def test_boosters_trained_side_by_side_equal_those_trained_one_at_a_time(world, monkeypatch
                                                                         ) -> None:
    import pipelines.model.ranker as ranker_module

    events, day, _ = world
    splits = [(as_of(events, day - timedelta(days=1)), _truth(events, day))]
    three = replace(SETTINGS, ranker={"ensemble": 3})
    monkeypatch.setattr(ranker_module, "cpu_threads", lambda: 3)  # whatever this machine has
    side_by_side = fit_model(as_of(events, day), splits, three, trainer)
    monkeypatch.setattr(ranker_module, "cpu_threads", lambda: 1)
    one_at_a_time = fit_model(as_of(events, day), splits, three, trainer)
    assert side_by_side.ranker.models == one_at_a_time.ranker.models
    assert len(set(side_by_side.ranker.models)) == 3


def test_compiled_boosters_predict_what_lightgbm_does(world, monkeypatch) -> None:
    import pipelines.model.ranker as ranker_module
    from pipelines.model.ranker import Ranker, _compiled

    events, day, model = world
    ret = model.retrieval
    rows = np.arange(ret.user_ids.len())
    features = candidates(ret, rows, 5, 7, exclude=ret.seen[rows]).features
    plain = Ranker(models=model.ranker.models, info=model.ranker.info)
    want = plain.predict(features)
    assert plain._compiled is None  # a small world stays on LightGBM
    monkeypatch.setattr(ranker_module, "COMPILE_AFTER_ROWS", 0)
    compiled = Ranker(models=model.ranker.models, info=model.ranker.info)
    got = compiled.predict(features, threads=2)
    assert compiled._compiled and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    explicit = Ranker(models=model.ranker.models, info=model.ranker.info)
    assert not explicit.compile(features[:0]) and explicit._compiled is None
    assert explicit.compile(features)
    np.testing.assert_array_equal(explicit.predict(features, threads=1), want)
    # A compiled ranker travels (to a worker) as its models, and compiles again there.
    import pickle

    copy = pickle.loads(pickle.dumps(explicit))
    assert copy == explicit and copy._compiled is None
    np.testing.assert_array_equal(copy.predict(features), want)
    # Boosters that do not reproduce LightGBM's predictions are not used.
    other = fit_model(as_of(events, day), [(as_of(events, day - timedelta(days=2)),
                                            _truth(events, day - timedelta(days=1)))],
                      SETTINGS, trainer).ranker
    assert _compiled(model.ranker.models, other._lightgbm(), features.astype(np.float64)) == []
