"""One self-contained HTML report per nightly run: header and the decision of which model was
published, the ranker's lifts with their intervals, quality curves,
coverage and novelty, cold-item recall and data volumes.

Pure: frames and dicts in, a string out. The figures and the formatting of every number are
here; the markup is the Jinja2 template ``templates/report.html.j2``, autoescaped, so every
string from the inputs is HTML-escaped. Plots are inline base64 PNGs and the CSS is inline, so
the page needs no network. The same inputs give byte-identical output.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import numbers
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import polars as pl

from pipelines.core.errors import ReportInputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KNOWN_MODELS = ("ranker", "ranker_explore", "pop_1d", "pop_7d", "pop_30d", "pop_decayed", "als",
                "als_plain", "itemknn", "recent_cooc", "sequence", "interest", "content")
RANKING_METRICS = ("recall", "precision", "ndcg", "map", "hit_rate")
BIAS_METRICS = ("coverage", "novelty")
METRIC_LABELS = {
    "recall": "Recall", "precision": "Precision", "ndcg": "NDCG", "map": "MAP",
    "hit_rate": "Hit rate", "coverage": "Catalog coverage (share)", "novelty": "Novelty (bits)",
    "cold_recall": "Cold-item recall",
}
METRIC_COLUMNS = ("model", "metric", "k", "value")
COLD_COLUMNS = ("model", "k", "cold_recall", "warm_recall", "n_cold_pairs", "n_warm_pairs")
# Bookkeeping every task summary carries; the header already shows the run.
SKIPPED_KEYS = frozenset({"started_at", "finished_at", "ds", "run_id"})
DPI = 100


Values = dict[tuple[str, str, int], float]  # (model, metric, k) -> value, NaN when null



def render_report(ds: date, run_id: str, model_version: str | None,
                  metrics: pl.DataFrame, summaries: dict[str, dict],
                  cold: pl.DataFrame | None = None, gate: dict | None = None,
                  lifts: pl.DataFrame | None = None) -> str:
    """The run's HTML report.

    ``metrics``: ``model, metric, k, value``; ``cold``: ``model, k, cold_recall, warm_recall,
    n_cold_pairs, n_warm_pairs``; ``summaries``: task name -> its summary dict; ``gate``:
    ``passed, reason, forced, numbers``.
    """
    _require(metrics, METRIC_COLUMNS, "metrics")
    if cold is not None:
        _require(cold, COLD_COLUMNS, "cold")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import style

    values = _values(metrics)
    # The caller's matplotlibrc must not change how (or whether identically) the plots render.
    with style.context("default"):
        sections = [
            _lifts_section(lifts),
            _quality_section(values),
            _bias_section(values),
            _cold_section(cold),
            _volumes_section(summaries),
        ]
    return _template().render(
        title=f"Nightly run report {ds.isoformat()} ({run_id})", ds=ds.isoformat(),
        meta=[("Date", ds.isoformat()), ("Run id", run_id),
              ("Model version", model_version or "none")],
        gate=_gate(gate) if gate is not None else None, sections=sections) + "\n"


@functools.cache
def _template() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("pipelines.evaluate", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=False)
    return env.get_template("report.html.j2")


# --- inputs ----------------------------------------------------------------------------------

def cold_table(metrics: pl.DataFrame, test_pairs: int, cold_test_pairs: int,
               ) -> pl.DataFrame | None:
    """``model, k, cold_recall, warm_recall, n_cold_pairs, n_warm_pairs`` from the metrics and
    the holdout's size; None when the evaluation had no cold-item split."""
    split = metrics.filter(pl.col("metric").is_in(["cold_recall", "warm_recall"]))
    if not split.height:
        return None
    cold = (split.pivot(on="metric", index=["model", "k"], values="value")
            .with_columns(pl.lit(cold_test_pairs, dtype=pl.Int64).alias("n_cold_pairs"),
                          pl.lit(test_pairs - cold_test_pairs, dtype=pl.Int64)
                          .alias("n_warm_pairs")))
    if "cold_recall" not in cold.columns or "warm_recall" not in cold.columns:
        return None
    return cold


def _require(frame: pl.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReportInputError(f"{name} is missing column(s) {', '.join(missing)}")


def _values(metrics: pl.DataFrame) -> Values:
    """Later duplicates of a (model, metric, k) win; nulls become NaN so plots leave gaps."""
    return {
        (str(model), str(metric), int(k)): math.nan if value is None else float(value)
        for model, metric, k, value in metrics.select(METRIC_COLUMNS).iter_rows()
    }


def _ordered(names: Iterable[str], known: Sequence[str]) -> list[str]:
    """Known names in their usual order, then any others alphabetically."""
    present = set(names)
    return [n for n in known if n in present] + sorted(present - set(known))


def _models(values: Values) -> list[str]:
    return _ordered((m for m, _, _ in values), KNOWN_MODELS)


def _metrics(values: Values) -> list[str]:
    return _ordered((m for _, m, _ in values), RANKING_METRICS + BIAS_METRICS)


def _ks(values: Values, metric: str) -> list[int]:
    return sorted({k for _, m, k in values if m == metric})


# --- formatting ------------------------------------------------------------------------------

def _mpl(text: str) -> str:
    """Literal text for matplotlib: a model called ``$x$`` must not be parsed as mathtext."""
    return text.replace("$", r"\$")


def _fmt(value: Any) -> str:
    """A summary value, readable: thousands separators, four significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            return str(number)
        if number.is_integer() and abs(number) < 1e15:
            return f"{int(number):,}"
        return f"{number:,.1f}" if abs(number) >= 1000 else f"{number:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _fmt_metric(value: float | None, digits: int = 4) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


# What the template shows: sections of parts (an image, a table, a note or an empty-state
# sentence), every value already text.
Part = dict[str, Any]


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], labels: int = 1) -> Part:
    """A table; the first ``labels`` columns are left-aligned text, the rest numbers."""
    return {"kind": "table", "headers": [str(h) for h in headers],
            "rows": [[str(c) for c in row] for row in rows], "labels": labels}


def _section(anchor: str, title: str, *parts: Part) -> dict[str, Any]:
    return {"anchor": anchor, "title": title, "parts": list(parts)}


def _empty(sentence: str) -> Part:
    return {"kind": "empty", "text": sentence}


def _note(text: str) -> Part:
    return {"kind": "note", "text": text}


# --- figures ---------------------------------------------------------------------------------

def _figure(width: float, height: float) -> Figure:
    # A bare Figure is never registered with pyplot, so nothing stays open after rendering.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _img(fig: Figure, alt: str) -> Part:
    buffer = io.BytesIO()
    try:
        # No Software/date text chunks, so equal inputs give byte-identical PNGs.
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    finally:
        fig.clear()
    return {"kind": "image", "alt": alt,
            "data": base64.b64encode(buffer.getvalue()).decode("ascii")}


def _colors(models: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    return {m: palette[i % len(palette)] for i, m in enumerate(models)}


def _quality_figure(values: Values, metrics: Sequence[str], models: Sequence[str]) -> Figure:
    """Small multiples: one panel per ranking metric, x = K, one line per model."""
    from matplotlib.lines import Line2D

    colors = _colors(models)
    fig = _figure(2.8 * len(metrics) + 1.5, 2.8)
    for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics, strict=True):
        ks = _ks(values, metric)
        for model in models:
            points = [(k, values[model, metric, k]) for k in ks if (model, metric, k) in values]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", color=colors[model])
        ax.set_xticks(ks)
        ax.set_xlabel("K")
        ax.set_title(f"{METRIC_LABELS[metric]}@K")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    # Explicit handles and labels: matplotlib would silently drop a model named "_x".
    handles = [Line2D([], [], color=colors[m], marker="o") for m in models]
    fig.legend(handles, [_mpl(m) for m in models], loc="outside right upper")
    return fig


def _bar_panel(ax: Any, names: Sequence[str], heights: Sequence[float], colors: Sequence[Any],
               title: str, digits: int) -> None:
    bars = ax.bar(range(len(names)), heights, color=colors)
    ax.bar_label(bars, labels=[_fmt_metric(h, digits) for h in heights], fontsize=8)
    ax.set_xticks(range(len(names)), [_mpl(n) for n in names], rotation=30, ha="right")
    ax.set_title(title)
    ax.margins(y=0.15)


def _bias_figure(values: Values, metrics: Sequence[str], models: Sequence[str]) -> Figure:
    """Coverage and novelty per model, each at its largest K."""
    colors = _colors(models)
    fig = _figure(4.0 * len(metrics), 3.2)
    for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics, strict=True):
        k = _ks(values, metric)[-1]
        shown = [m for m in models if (m, metric, k) in values]
        _bar_panel(ax, shown, [values[m, metric, k] for m in shown], [colors[m] for m in shown],
                   f"{METRIC_LABELS[metric]} @{k}", digits=2 if metric == "novelty" else 3)
    return fig


def _cold_figure(cold: pl.DataFrame, models: Sequence[str], ks: Sequence[int]) -> Figure:
    """One panel per K: cold and warm recall side by side per model, bars labelled n=pairs."""
    rows = {(r["model"], r["k"]): r for r in cold.iter_rows(named=True)}
    fig = _figure(max(4.0, 1.1 * len(models) + 1.0) * len(ks), 3.4)
    width = 0.4
    sides = ((-width / 2, "cold", "#4c78a8"), (width / 2, "warm", "#f58518"))
    for ax, k in zip(fig.subplots(1, len(ks), squeeze=False, sharey=True)[0], ks, strict=True):
        shown = [m for m in models if (m, k) in rows]
        for offset, side, color in sides:
            heights = [_nan(rows[m, k][f"{side}_recall"]) for m in shown]
            bars = ax.bar([i + offset for i in range(len(shown))], heights, width,
                          color=color, label=f"{side} items")
            ax.bar_label(bars, labels=[f"n={_fmt(rows[m, k][f'n_{side}_pairs'])}" for m in shown],
                         fontsize=7)
        ax.set_xticks(range(len(shown)), [_mpl(m) for m in shown], rotation=30, ha="right")
        ax.set_title(f"Recall@{k}")
        ax.margins(y=0.15)
    fig.axes[0].legend(loc="upper left", fontsize=8)
    return fig


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


# --- sections --------------------------------------------------------------------------------

def _gate(gate: dict) -> dict[str, Any]:
    """The decision: ``published``, ``ranker_passed``, ``forced``, ``reason``, ``numbers``."""
    won = bool(gate.get("ranker_passed"))
    verdict = f"published {gate.get('published', '?')}"
    if gate.get("forced"):
        verdict += " (publication forced)"
    elif not gate.get("evaluated", True):
        verdict += " (not evaluated)"
    numbers_ = gate.get("numbers") or {}
    return {"passed": won, "verdict": verdict,
            "reason": str(gate.get("reason") or ""),
            "numbers": _table(["Number", "Value"], [(k, _fmt(v)) for k, v in numbers_.items()])
            if numbers_ else None}


def _lifts_section(lifts: pl.DataFrame | None) -> dict[str, Any]:
    title = "The candidates against every baseline"
    if lifts is None or lifts.is_empty():
        return _section("lifts", title, _empty(
            "No lifts for this run: the ranker could not be trained or evaluated."))
    rows = [(r["candidate"], r["baseline"], f"{r['metric']}@{r['k']}",
             _fmt_metric(r["candidate_value"]),
             _fmt_metric(r["baseline_value"]), _fmt_metric(r["lift"], 3),
             f"{_fmt_metric(r['lift_lo'], 3)} – {_fmt_metric(r['lift_hi'], 3)}",
             _fmt(r["users"]))
            for r in lifts.sort("candidate", "lift").iter_rows(named=True)]
    note = _note("Lift: the candidate's mean over the baseline's, on the same test users; the "
                 "interval is the 2.5th to 97.5th percentile of the lift over bootstrap "
                 "resamples of those users.")
    return _section("lifts", title, note, _table(
        ["Candidate", "Baseline", "Metric", "Candidate value", "Baseline value", "Lift",
         "95% interval", "Users"], rows, labels=3))


def _quality_section(values: Values) -> dict[str, Any]:
    if not values:
        return _section("quality", "Quality", _empty(
            "No evaluation metrics for this run: the models could not be evaluated tonight."))
    models = _models(values)
    ranking = [m for m in RANKING_METRICS if m in _metrics(values)]
    figure = (_img(_quality_figure(values, ranking, models), "Ranking metrics at K per model")
              if ranking else _empty("No ranking metrics were computed for this run."))
    rows = [
        (METRIC_LABELS.get(metric, metric), str(k),
         *(_fmt_metric(values.get((model, metric, k))) for model in models))
        for metric in _metrics(values)
        for k in _ks(values, metric)
    ]
    return _section("quality", "Quality", figure, _table(["Metric", "K", *models], rows))


def _bias_section(values: Values) -> dict[str, Any]:
    title = "Coverage and popularity bias"
    present = [m for m in BIAS_METRICS if m in _metrics(values)]
    if not present:
        return _section("bias", title, _empty(
            "No coverage or novelty metrics for this run."))
    note = _note("Coverage: share of the catalog recommended in anyone's top K. Novelty: mean "
                 "self-information of the recommended items, in bits (higher = less popular).")
    return _section("bias", title, note, _img(_bias_figure(values, present, _models(values)),
                                              "Coverage and novelty per model at the largest K"))


def _cold_section(cold: pl.DataFrame | None) -> dict[str, Any]:
    title = "Cold items"
    if cold is None or cold.is_empty():
        return _section("cold", title, _empty(
            "No cold-item evaluation for this run (no held-out pairs on cold items)."))
    models = _ordered(cold["model"].cast(pl.String).to_list(), KNOWN_MODELS)
    ks = sorted(set(cold["k"].to_list()))
    records = sorted(cold.iter_rows(named=True), key=lambda r: (models.index(r["model"]), r["k"]))
    rows = [
        (r["model"], str(r["k"]), _fmt_metric(r["cold_recall"]), _fmt_metric(r["warm_recall"]),
         _fmt(r["n_cold_pairs"]), _fmt(r["n_warm_pairs"]))
        for r in records
    ]
    return _section(
        "cold", title,
        _img(_cold_figure(cold, models, ks), "Cold versus warm recall per model at each K"),
        _table(["Model", "K", "Cold recall", "Warm recall", "Cold pairs", "Warm pairs"], rows),
    )


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested dicts as dotted keys: {"rows_out": {"users": 3}} -> ("rows_out.users", 3)."""
    if not isinstance(value, dict):
        yield prefix, value
        return
    for key, sub in value.items():
        if key not in SKIPPED_KEYS:
            yield from _flatten(sub, f"{prefix}.{key}" if prefix else str(key))


def _volumes_section(summaries: dict[str, dict]) -> dict[str, Any]:
    rows = [(task, key, _fmt(value))
            for task, summary in summaries.items()
            for key, value in _flatten(summary)]
    if not rows:
        return _section("volumes", "Data volumes", _empty("No task summaries for this run."))
    return _section("volumes", "Data volumes", _table(["Task", "Key", "Value"], rows, labels=2))
