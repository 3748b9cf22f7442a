"""Champion and challenger: the ranker is published when it beats every baseline and has not
regressed, the best baseline otherwise, and a run that cannot be evaluated still publishes."""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.core.contracts import METRIC_SCHEMA
from pipelines.core.settings import GateSettings
from pipelines.evaluate.gate import DEFAULT_POPULAR, Decision, decide, popularity_lift


def _metrics(values: dict[str, float], metric: str = "ndcg", k: int = 10,
             cold: dict[str, float] | None = None) -> pl.DataFrame:
    rows = [(m, metric, k, v) for m, v in values.items()]
    rows += [(m, "cold_recall", k, v) for m, v in (cold or {}).items()]
    return pl.DataFrame(rows, schema=METRIC_SCHEMA, orient="row")


BASELINES = {"pop_7d": 0.20, "pop_30d": 0.18, "als_plain": 0.15, "itemknn": 0.17}


def test_the_ranker_is_published_when_it_beats_the_best_baseline() -> None:
    d = decide(_metrics({"ranker": 0.24, **BASELINES}), previous_lift=1.1, ranker_trained=True,
               cfg=GateSettings())
    assert (d.published, d.popular, d.ranker_passed, d.forced) == ("ranker", "pop_7d", True,
                                                                   False)
    assert d.numbers["lift_over_best"] == pytest.approx(1.2)
    assert d.numbers["lift_over_popularity"] == pytest.approx(1.2)
    assert "against the best baseline pop_7d 0.2000: lift 1.200" in d.reason


def test_the_best_baseline_is_published_when_the_ranker_loses() -> None:
    d = decide(_metrics({"ranker": 0.19, **BASELINES}), None, True, GateSettings())
    assert (d.published, d.ranker_passed) == ("pop_7d", False)
    assert d.reason.startswith("published the best baseline pop_7d: the best baseline pop_7d "
                               "(ndcg@10 0.2000) is surely better than ranker (0.1900)")


def test_a_ranker_within_the_noise_of_the_best_baseline_is_published() -> None:
    lifts = pl.DataFrame([{"candidate": "ranker", "baseline": "pop_7d", "metric": "ndcg",
                           "k": 10, "candidate_value": 0.19, "baseline_value": 0.2,
                           "lift": 0.95, "lift_lo": 0.8, "lift_hi": 1.1, "users": 90}])
    d = decide(_metrics({"ranker": 0.19, **BASELINES}), None, True, GateSettings(), lifts)
    assert d.published == "ranker" and "95 % interval 0.800-1.100" in d.reason
    surely = lifts.with_columns(pl.lit(0.97).alias("lift_hi"))
    assert decide(_metrics({"ranker": 0.19, **BASELINES}), None, True, GateSettings(),
                  surely).published == "pop_7d"


def test_min_lift_and_the_regression_rule() -> None:
    strict = GateSettings(min_lift=0.25)
    assert decide(_metrics({"ranker": 0.24, **BASELINES}), None, True, strict).published == \
        "pop_7d"
    # Lift 1.2 today; the last published ranker had 1.5: more than 10 % below it.
    d = decide(_metrics({"ranker": 0.24, **BASELINES}), 1.5, True, GateSettings())
    assert d.published == "pop_7d" and "below the last published candidate's 1.500" in d.reason
    assert decide(_metrics({"ranker": 0.24, **BASELINES}), 1.3, True,
                  GateSettings()).published == "ranker"  # 1.2 >= 1.3 * 0.9


def test_force_publish_publishes_the_ranker_and_says_so() -> None:
    d = decide(_metrics({"ranker": 0.10, **BASELINES}), None, True,
               GateSettings(force_publish=True))
    assert (d.published, d.forced, d.ranker_passed) == ("ranker", True, False)
    assert d.reason.startswith("force_publish despite:")


def test_the_cold_item_rule() -> None:
    cold = {"ranker": 0.02, "content": 0.08, "interest": 0.05}
    metrics = _metrics({"ranker": 0.24, **BASELINES}, cold=cold)
    assert decide(metrics, None, True, GateSettings()).published == "ranker"
    d = decide(metrics, None, True, GateSettings(min_cold_recall_ratio=0.5))
    assert d.published == "pop_7d" and "cold-item recall@10 0.0200" in d.reason


def test_exploration_is_kept_only_where_it_reaches_cold_items_for_no_loss() -> None:
    cold = {"ranker": 0.02, "ranker_explore": 0.10, "content": 0.08}
    free = decide(_metrics({"ranker": 0.24, "ranker_explore": 0.241, **BASELINES}, cold=cold),
                  None, True, GateSettings())
    assert free.published == "ranker_explore" and free.ranker_passed
    assert "exploration: cold-item recall@10 0.0200 -> 0.1000" in free.reason
    assert free.reason.endswith("kept")
    # 0.235 is 2 % below 0.24: more than exploration_max_loss, unless it allows that much.
    costly = _metrics({"ranker": 0.24, "ranker_explore": 0.235, **BASELINES}, cold=cold)
    d = decide(costly, None, True, GateSettings())
    assert d.published == "ranker" and d.reason.endswith("not kept")
    assert decide(costly, None, True, GateSettings(exploration_max_loss=0.05)).published == \
        "ranker_explore"
    # A gate that requires cold-item recall takes the candidate that reaches it.
    assert decide(costly, None, True, GateSettings(min_cold_recall_ratio=1.0)).published == \
        "ranker_explore"
    # No more cold items reached: nothing to pay for.
    same = {"ranker": 0.05, "ranker_explore": 0.05}
    assert decide(_metrics({"ranker": 0.24, "ranker_explore": 0.24, **BASELINES}, cold=same),
                  None, True, GateSettings()).published == "ranker"
    # The explored candidate still has to meet the baselines.
    d = decide(_metrics({"ranker": 0.18, "ranker_explore": 0.18, **BASELINES}, cold=cold),
               None, True, GateSettings())
    assert d.published == "pop_7d" and "better than ranker_explore" in d.reason


def test_without_a_holdout_the_ranker_or_popularity_goes_out_unchecked() -> None:
    empty = pl.DataFrame(schema=METRIC_SCHEMA)
    d = decide(empty, None, True, GateSettings())
    assert (d.published, d.evaluated, d.popular) == ("ranker", False, DEFAULT_POPULAR)
    assert "not evaluated" in d.reason
    assert decide(empty, None, False, GateSettings()).published == DEFAULT_POPULAR


def test_too_few_test_users_decide_nothing() -> None:
    d = decide(_metrics({"ranker": 0.1, **BASELINES}), None, True, GateSettings(), test_users=7)
    assert (d.published, d.evaluated) == ("ranker", False)
    assert d.reason.startswith("not decided: 7 test users")
    assert decide(_metrics(BASELINES), None, False, GateSettings(),
                  test_users=7).published == DEFAULT_POPULAR


def test_without_a_ranker_the_best_baseline_goes_out() -> None:
    d = decide(_metrics(BASELINES), None, False, GateSettings())
    assert (d.published, d.evaluated) == ("pop_7d", True)
    assert d.reason.startswith("no ranker")
    # The holdout's model had one, the night's own has not: its lists cannot go out.
    d = decide(_metrics({"ranker": 0.3, **BASELINES}), None, False, GateSettings())
    assert d.published == "pop_7d" and d.reason.startswith("no ranker")


def test_popularity_lift_and_the_decision_round_trip() -> None:
    metrics = _metrics({"ranker": 0.3, **BASELINES})
    assert popularity_lift(metrics, GateSettings()) == pytest.approx(1.5)
    assert popularity_lift(_metrics(BASELINES), GateSettings()) is None
    assert popularity_lift(_metrics({"ranker_explore": 0.1, **BASELINES}), GateSettings(),
                           "ranker_explore") == pytest.approx(0.5)
    d = decide(metrics, None, True, GateSettings())
    assert Decision.from_dict(d.to_dict()) == d


def test_the_verdict_in_a_word_for_consumers() -> None:
    def verdict(values: dict[str, float], ranker_trained: bool = True, **gate: object) -> str:
        return decide(_metrics(values), None, ranker_trained, GateSettings(**gate)).verdict

    assert verdict({"ranker": 0.24, **BASELINES}) == "passed"
    assert verdict({"ranker": 0.19, **BASELINES}) == "refused"
    assert verdict(BASELINES, ranker_trained=False) == "refused"  # a baseline went out
    assert verdict({"ranker": 0.10, **BASELINES}, force_publish=True) == "forced"
    assert verdict({}) == "not evaluated"
    assert decide(_metrics({"ranker": 0.1, **BASELINES}), None, True, GateSettings(),
                  test_users=7).verdict == "not evaluated"
