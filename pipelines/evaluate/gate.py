"""Champion and challenger: which model's lists a night publishes.

The candidate is the ranker, which sees every baseline's scores among its features. With
``retrieval.exploration_slots`` set its lists come in two variants, as ranked and with those
slots given to cold items; the explored one is the candidate when it reaches more cold items
and loses at most ``exploration_max_loss`` (none, by default) of the ranked one's
``gate.metric@gate.k``, or when only it reaches the cold-item recall the gate requires, so the
quota is kept only where the holdout shows it pays.

The gate is there to catch a candidate that went wrong, and a holdout of a few hundred users is
noisy, so it acts on evidence, not on a point estimate. On the night's holdout, on
``gate.metric@gate.k``:

- the 95 % interval of the candidate's lift over the best baseline (every generator's own list,
  plain ALS), paired over the test users, must reach ``1 + min_lift``: a baseline that is surely
  better wins;
- the interval of its lift over the best popularity list must reach the lift of the last run
  that published the ranker, less ``tolerance`` (the lift, not the raw value, is compared
  across days: a harder day lowers every model alike, a worse model lowers only the lift);
- with ``min_cold_recall_ratio`` set, its recall of cold items must reach that share of
  content similarity's.

Otherwise the best baseline is published, so consumers always get the best lists the night
knows of, and the decision says why. ``force_publish`` publishes the candidate anyway. Users the
pipeline does not know get the popularity list that did best.

Without a holdout (a young lake), or with fewer than ``min_users_to_decide`` test users in it (too
few to tell models apart), nothing is compared: the ranker is published when it could be
trained, else decayed popularity, and the decision says why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import polars as pl

from pipelines.core.settings import GateSettings
from pipelines.model.recommender import CANDIDATES, EXPLORED, RANKER
from pipelines.model.retrieval import BASELINES, POPULARITY

DEFAULT_POPULAR = "pop_decayed"
CONTENT = ("content", "interest")


@dataclass(frozen=True)
class Decision:
    published: str  # the model whose lists go out
    popular: str  # the popularity list for users the pipeline does not know
    evaluated: bool
    ranker_passed: bool
    forced: bool
    reason: str
    numbers: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """In a word, for consumers (``pipeline_runs.gate_verdict``): ``passed`` (the candidate
        won), ``refused`` (a baseline's lists went out instead), ``forced`` (``force_publish``
        overrode a refusal) or ``not evaluated`` (no holdout to decide on)."""
        if self.forced:
            return "forced"
        if not self.evaluated:
            return "not evaluated"
        return "passed" if self.ranker_passed else "refused"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Decision:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def values(metrics: pl.DataFrame, metric: str, k: int) -> dict[str, float]:
    """``model -> value`` of ``metric@k``."""
    rows = metrics.filter((pl.col("metric") == metric) & (pl.col("k") == k))
    return dict(zip(rows["model"].to_list(), rows["value"].to_list(), strict=True))


def popularity_lift(metrics: pl.DataFrame, cfg: GateSettings, candidate: str = RANKER,
                    ) -> float | None:
    """A candidate's gate metric over the best popularity list's (None when not evaluated)."""
    v = values(metrics, cfg.metric, cfg.k)
    pop = max((v[p] for p in POPULARITY if p in v), default=None)
    if candidate not in v or not pop:
        return None
    return v[candidate] / pop


def candidate(metrics: pl.DataFrame, cfg: GateSettings) -> tuple[str, str]:
    """The candidate that meets the baselines, and why: the explored lists when they reach
    more cold items for at most ``exploration_max_loss`` of the ranked ones' metric, or when
    only they reach the cold-item recall the gate requires."""
    v = values(metrics, cfg.metric, cfg.k)
    if EXPLORED not in v or RANKER not in v:
        return RANKER, ""
    cold = values(metrics, "cold_recall", cfg.k)
    ranked, explored = cold.get(RANKER, 0.0), cold.get(EXPLORED, 0.0)
    loss = 1 - v[EXPLORED] / v[RANKER] if v[RANKER] else 0.0
    said = (f"exploration: cold-item recall@{cfg.k} {ranked:.4f} -> {explored:.4f}, "
            f"{cfg.metric}@{cfg.k} {v[RANKER]:.4f} -> {v[EXPLORED]:.4f}")
    required = cfg.min_cold_recall_ratio * _content_cold_recall(metrics, cfg)
    if explored > ranked and (loss <= cfg.exploration_max_loss
                              or (required > 0 and ranked < required <= explored)):
        return EXPLORED, f"{said}, kept"
    return RANKER, f"{said}, not kept"


def _content_cold_recall(metrics: pl.DataFrame, cfg: GateSettings) -> float:
    cold = values(metrics, "cold_recall", cfg.k)
    return max((cold[m] for m in CONTENT if m in cold), default=0.0)


def _interval(lifts: pl.DataFrame | None, name: str, baseline: str,
              point: float) -> tuple[float, float]:
    """(lo, hi) of candidate ``name``'s lift over ``baseline``; the point itself without
    one."""
    if lifts is None or lifts.is_empty():
        return point, point
    row = lifts.filter((pl.col("candidate") == name) & (pl.col("baseline") == baseline))
    if not row.height or row["lift_hi"][0] is None or math.isnan(row["lift_hi"][0]):
        return point, point
    return float(row["lift_lo"][0]), float(row["lift_hi"][0])


def decide(metrics: pl.DataFrame, previous_lift: float | None, ranker_trained: bool,
           cfg: GateSettings, lifts: pl.DataFrame | None = None,
           test_users: int | None = None) -> Decision:
    """``metrics``: the night's ``model, metric, k, value`` on its holdout; ``lifts``: each
    candidate's lift over each baseline with its interval (``holdout.lifts``; without it the
    point estimates decide); ``previous_lift``: the popularity lift of the candidate published
    by the last run that published one (None: never); ``ranker_trained``: whether the night's
    own model, whose lists go out, has a ranker."""
    name = f"{cfg.metric}@{cfg.k}"
    v = values(metrics, cfg.metric, cfg.k)
    baselines = {m: v[m] for m in BASELINES if m in v}
    if baselines and test_users is not None and test_users < cfg.min_users_to_decide:
        published = RANKER if ranker_trained else DEFAULT_POPULAR
        return Decision(published, DEFAULT_POPULAR, evaluated=False, ranker_passed=False,
                        forced=False, reason=f"not decided: {test_users} test users, fewer "
                        f"than gate.min_users_to_decide ({cfg.min_users_to_decide}) to tell "
                        f"models apart; published {published}", numbers=dict(v))
    if not baselines:
        published = RANKER if ranker_trained else DEFAULT_POPULAR
        return Decision(published, DEFAULT_POPULAR, evaluated=False, ranker_passed=False,
                        forced=False, reason=f"not evaluated (no held-out interactions of "
                        f"known users): {name} unknown, published {published} unchecked")
    popular = max((p for p in POPULARITY if p in baselines), key=lambda p: baselines[p],
                  default=DEFAULT_POPULAR)
    best = max(baselines, key=lambda m: (baselines[m], m in POPULARITY))
    numbers = {"best_baseline": baselines[best], **{f"{m}": x for m, x in v.items()}}
    if not ranker_trained or not any(c in v for c in CANDIDATES):
        reason = (f"no ranker (too little history to train one): published the best baseline "
                  f"{best} ({name} {baselines[best]:.4f})")
        return Decision(best, popular, evaluated=True, ranker_passed=False, forced=False,
                        reason=reason, numbers=numbers)
    chosen, exploration = candidate(metrics, cfg)
    value = v[chosen]
    over_best = value / baselines[best] if baselines[best] else math.inf
    lo, hi = _interval(lifts, chosen, best, over_best)
    lift = popularity_lift(metrics, cfg, chosen)
    numbers.update(lift_over_best=over_best, lift_over_best_lo=lo, lift_over_best_hi=hi,
                   lift_over_popularity=lift if lift is not None else 0.0)
    if previous_lift is not None:
        numbers["previous_lift"] = previous_lift
    problems = []
    if hi < 1 + cfg.min_lift:
        problems.append(f"the best baseline {best} ({name} {baselines[best]:.4f}) is surely "
                        f"better than {chosen} ({value:.4f}): lift {over_best:.3f}, 95 % "
                        f"interval {lo:.3f}-{hi:.3f}, below {1 + cfg.min_lift:.3f}")
    if previous_lift is not None and lift is not None:
        pop_hi = _interval(lifts, chosen, popular, lift)[1]
        if pop_hi < previous_lift * (1 - cfg.tolerance):
            problems.append(f"its lift over popularity {lift:.3f} (up to {pop_hi:.3f}) is more "
                            f"than {cfg.tolerance:.0%} below the last published candidate's "
                            f"{previous_lift:.3f}")
    if cfg.min_cold_recall_ratio > 0:
        cold = values(metrics, "cold_recall", cfg.k)
        content = _content_cold_recall(metrics, cfg)
        if chosen in cold and content > 0 and cold[chosen] < cfg.min_cold_recall_ratio * content:
            problems.append(f"its cold-item recall@{cfg.k} {cold[chosen]:.4f} is below "
                            f"{cfg.min_cold_recall_ratio:.0%} of content similarity's "
                            f"{content:.4f}")
    suffix = f"; {exploration}" if exploration else ""
    if not problems:
        reason = (f"{chosen} {name} {value:.4f} against the best baseline {best} "
                  f"{baselines[best]:.4f}: lift {over_best:.3f}, 95 % interval "
                  f"{lo:.3f}-{hi:.3f}{suffix}")
        return Decision(chosen, popular, evaluated=True, ranker_passed=True, forced=False,
                        reason=reason, numbers=numbers)
    why = "; ".join(problems)
    if cfg.force_publish:
        return Decision(chosen, popular, evaluated=True, ranker_passed=False, forced=True,
                        reason=f"force_publish despite: {why}{suffix}", numbers=numbers)
    return Decision(best, popular, evaluated=True, ranker_passed=False, forced=False,
                    reason=f"published the best baseline {best}: {why}{suffix}",
                    numbers=numbers)
