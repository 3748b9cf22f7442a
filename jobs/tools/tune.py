"""``recs tune``: ALS and ranker hyper-parameters searched with Optuna on the days before ``ds``.

Data (``v`` = ``eval.holdout_days``), read once and shared by every trial, as the ``evaluate``
task would read it with that holdout:

- the models' inputs as of ``ds - v``;
- the ranker's training days before that (``ranker.*``), each with the new pairs after it;
- the objective's target: the new positive pairs of ``(ds - v, ds]``.

Nothing after ``ds`` is read. The best value is optimistic (it was selected on its target),
so judge the tuned config on the evaluation of a later ``ds``, whose holdout it never saw.

Search space (each range widened to take in the current value, which is trial 0):

=========================  ==========================================
``model.factors``          one of 16, 32, 64, 128
``model.regularization``   log-uniform in [0.01, 50]
``model.alpha``            log-uniform in [0.1, 50]
``model.iterations``       integer in [5, 30]
``ranker.trees``           integer in [25, 400]
``ranker.learning_rate``   log-uniform in [0.01, 0.3]
``ranker.num_leaves``      integer in [4, 63]
=========================  ==========================================

Objective: the ranker's ``gate.metric@gate.k`` (NDCG@10 by default) on the target pairs
(maximised); the best popularity list's value is kept on each trial for context. The lake is
only read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import optuna
import polars as pl

from jobs.context import RunContext
from pipelines.core import catalog as cat
from pipelines.core.errors import TuneError
from pipelines.core.settings import Settings, apply_overrides
from pipelines.model.retrieval import AsOf, Trainer

DEFAULT_TRIALS = 20



@dataclass(frozen=True)
class Dim:
    """One searched setting: one of ``choices``, or a value in [low, high] (an integer where the
    setting is one; ``log``: sampled on a log scale)."""

    key: str  # dotted, as apply_overrides takes it
    choices: tuple[int, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False

    def suggest(self, trial: optuna.Trial, current: Any) -> Any:
        # The current value joins the space so that trial 0 can be the current config.
        if self.choices:
            return trial.suggest_categorical(self.key, tuple(sorted({*self.choices, current})))
        low, high = min(self.low, current), max(self.high, current)
        if isinstance(current, int):
            return trial.suggest_int(self.key, int(low), int(high), log=self.log)
        return trial.suggest_float(self.key, low, high, log=self.log)


SPACE = (
    Dim("model.factors", choices=(16, 32, 64, 128)),
    Dim("model.regularization", low=0.01, high=50.0, log=True),
    Dim("model.alpha", low=0.1, high=50.0, log=True),
    Dim("model.iterations", low=5, high=30),
    Dim("ranker.trees", low=25, high=400),
    Dim("ranker.learning_rate", low=0.01, high=0.3, log=True),
    Dim("ranker.num_leaves", low=4, high=63),
)


@dataclass(frozen=True)
class TuneInputs:
    start: date  # ds - v: the models' as-of day
    train: AsOf
    splits: list[tuple[AsOf, pl.DataFrame]]  # the ranker's training days before start
    truth: pl.DataFrame  # user_id, item_id: new positive pairs of (start, ds]


def current_params(settings: Settings) -> dict[str, Any]:
    out = {}
    for dim in SPACE:
        section, name = dim.key.split(".")
        out[dim.key] = getattr(getattr(settings, section), name)
    return out


def load_inputs(ctx: RunContext) -> TuneInputs:
    from jobs.inputs import ranker_splits, split
    from pipelines.core.engines import open_engine

    ctx.lake.require(cat.INTERACTIONS, ds=ctx.ds)
    v = ctx.settings.eval.holdout_days
    start = ctx.ds - timedelta(days=v)
    first = ctx.lake.days(cat.CLEAN_EVENTS)
    if not first or start < first[0]:
        raise TuneError(f"no clean events on or before {start} (ds - eval.holdout_days)")
    with open_engine(ctx.settings) as engine:
        train, truth = split(ctx, engine, ctx.ds, v, vectors_as_of=ctx.ds)
        # Read now, while the engine is open: every trial fits on them.
        splits = list(ranker_splits(ctx, engine, start, vectors_as_of=ctx.ds))
    if truth.is_empty():
        raise TuneError(f"no new positive pairs of known users and items in ({start}, {ctx.ds}]")
    if not splits:
        raise TuneError(f"no training day for the ranker before {start}: too little history")
    return TuneInputs(start=start, train=train, splits=splits, truth=truth)


def score(inputs: TuneInputs, settings: Settings, trainer: Trainer) -> dict[str, float]:
    """gate.metric@gate.k of the ranker and of the best popularity list, as the evaluate task
    computes them (0 for a ranker that could not be trained)."""
    from pipelines.evaluate.holdout import evaluation_lists
    from pipelines.evaluate.metrics import METRICS
    from pipelines.model.recommender import RANKER, fit_model
    from pipelines.model.retrieval import POPULARITY

    model = fit_model(inputs.train, inputs.splits, settings, trainer)
    lists = evaluation_lists(model, inputs.truth, settings)
    metric, k = METRICS[settings.gate.metric], settings.gate.k
    return {"ranker": metric(lists[RANKER], inputs.truth, k) if RANKER in lists else 0.0,
            "popularity": max(metric(lists[p], inputs.truth, k) for p in POPULARITY)}


def objective(ctx: RunContext, inputs: TuneInputs) -> Callable[[optuna.Trial], float]:
    from pipelines.model.trainers import open_trainer

    current = current_params(ctx.settings)

    def run(trial: optuna.Trial) -> float:
        params = {dim.key: dim.suggest(trial, current[dim.key]) for dim in SPACE}
        settings = apply_overrides(ctx.settings, params)
        # The trainer takes the model settings when opened: one per trial.
        with open_trainer(settings) as trainer:
            values = score(inputs, settings, trainer)
        trial.set_user_attr("popularity", values["popularity"])
        return values["ranker"]

    return run


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    value = "failed" if trial.value is None else f"{trial.value:.4f}"
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    params = "  ".join(f"{k.split('.')[1]}={_fmt(v)}" for k, v in trial.params.items())
    print(f"{trial.number:>5}  {value:>8}  {seconds:6.1f}s  {params}", flush=True)


def run_study(ctx: RunContext, inputs: TuneInputs, n_trials: int,
              timeout: float | None) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=ctx.settings.model.seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(current_params(ctx.settings))
    name = f"{ctx.settings.gate.metric}@{ctx.settings.gate.k}"
    print(f"{'trial':>5}  {name:>8}  {'time':>7}  params", flush=True)
    study.optimize(objective(ctx, inputs), n_trials=n_trials, timeout=timeout,
                   callbacks=[print_trial])
    return study


def to_toml(settings: Settings, comments: list[str]) -> str:
    """``[model]`` and ``[ranker]`` of ``settings``, as ``load_settings`` reads them."""
    import tomli_w

    header = "".join(f"# {c}\n" for c in comments)
    return header + "\n" + tomli_w.dumps({section: getattr(settings, section).model_dump()
                                          for section in ("model", "ranker")})


def tune(ctx: RunContext, n_trials: int = DEFAULT_TRIALS, timeout: float | None = None,
         out: Path | None = None) -> optuna.Study:
    """Search, print one line per trial and a summary, and write the best config to ``out``
    (default ``tuned-<ds>.toml``)."""
    out = out or Path(f"tuned-{ctx.ds.isoformat()}.toml")
    inputs = load_inputs(ctx)
    study = run_study(ctx, inputs, n_trials, timeout)
    first, best = study.trials[0], study.best_trial
    k = ctx.settings.gate.k
    lift = (best.value / first.value - 1) * 100 if first.value else float("nan")
    summary = [
        f"recs tune --ds {ctx.ds}: ranker {ctx.settings.gate.metric}@{k} on the new pairs of "
        f"({inputs.start}, "
        f"{ctx.ds}], models as of {inputs.start}; {len(study.trials)} trials",
        f"current config (trial 0): {first.value:.4f}; popularity: "
        f"{first.user_attrs['popularity']:.4f}",
        f"best (trial {best.number}): {best.value:.4f} ({lift:+.1f}% on the current config)",
    ]
    best_settings = apply_overrides(ctx.settings, best.params)
    out.write_text(to_toml(best_settings, summary))
    print("\n".join(summary[1:] + [f"wrote {out}"]), flush=True)
    return study
