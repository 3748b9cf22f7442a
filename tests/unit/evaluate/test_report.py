"""The run report on small synthetic inputs: sections, figures, tables, escaping, empty inputs
and byte-identical output."""

from __future__ import annotations

import base64
import re
from datetime import date

import polars as pl
import pytest

from pipelines.core.contracts import METRIC_SCHEMA
from pipelines.core.errors import ReportInputError
from pipelines.evaluate.report import render_report

DS = date(2026, 10, 14)
KS = (10, 20, 50)
RANKING = ("recall", "precision", "ndcg", "map", "hit_rate")
COLD_SCHEMA = {"model": pl.String, "k": pl.Int32, "cold_recall": pl.Float64,
               "warm_recall": pl.Float64, "n_cold_pairs": pl.Int64, "n_warm_pairs": pl.Int64}
SUMMARIES = {
    "validate": {"rows_in": 1000, "clean": 980, "quarantined": 15, "duplicates": 5,
                 "seconds": 3.2, "started_at": "2026-10-15T01:00:00", "run_id": "r1"},
    "aggregate": {"engine": "polars", "days": 30,
                  "rows_out": {"interactions": 5000, "users": 600, "items": 400}, "seconds": 1.1},
    "embed": {"items": {"texts": 400, "embedded": 3, "reused": 397}, "seconds": 4},
    "precompute": {"rows": 60000, "users": 600},
}
GATE = {"published": "ranker", "ranker_passed": False, "forced": True, "evaluated": True,
        "reason": "recall@20 fell 12% below the live model",
        "numbers": {"candidate_recall": 0.1234, "live_recall": 0.1402}}


def _metrics(models: tuple[str, ...] = ("pop_7d", "als", "content"),
             metrics: tuple[str, ...] = (*RANKING, "coverage", "novelty")) -> pl.DataFrame:
    # Distinct, exactly representable values so a table cell can be asserted literally.
    rows = [(model, metric, k, (i + 1) / 8 + j / 64 + k / 1024)
            for i, model in enumerate(models)
            for j, metric in enumerate(metrics)
            for k in KS]
    return pl.DataFrame(rows, schema=METRIC_SCHEMA, orient="row")


def _cold(models: tuple[str, ...] = ("als", "embedding")) -> pl.DataFrame:
    rows = [(model, k, 0.01 * k / 10, 0.03 * k / 10, 120 * k, 4500 * k)
            for model in models for k in KS]
    return pl.DataFrame(rows, schema=COLD_SCHEMA, orient="row")


def _render(**overrides: object) -> str:
    args: dict[str, object] = {"ds": DS, "run_id": "scheduled__2026-10-14",
                               "model_version": "als-2026-10-14", "metrics": _metrics(),
                               "summaries": SUMMARIES, "cold": _cold(), "gate": GATE}
    return render_report(**(args | overrides))


def _render_text(**overrides: object) -> str:
    """A render without figures, for checks on the text alone (plots take about a second)."""
    return _render(**({"metrics": pl.DataFrame(schema=METRIC_SCHEMA), "cold": None} | overrides))


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


@pytest.fixture(scope="module")
def page() -> str:
    return _render()


def test_every_section_and_one_image_per_figure(page: str) -> None:
    for anchor in ("quality", "bias", "cold", "volumes"):
        assert f'<section id="{anchor}">' in page
    assert page.count("<img ") == 3  # quality curves, coverage/novelty bars, cold vs warm
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in _pngs(page))
    assert "http://" not in page and "https://" not in page  # self-contained


def test_header_shows_the_run(page: str) -> None:
    assert "2026-10-14" in page
    assert "scheduled__2026-10-14" in page
    assert "als-2026-10-14" in page
    assert "Model version</dt><dd>none</dd>" in _render_text(model_version=None)


def test_gate_verdict_reason_and_numbers(page: str) -> None:
    assert '<div class="gate fail"' in page
    assert "Decision: published ranker (publication forced)" in page
    assert "recall@20 fell 12% below the live model" in page
    assert "<td>0.1234</td>" in page and "<td>0.1402</td>" in page
    passed = _render_text(gate={"published": "ranker", "ranker_passed": True, "forced": False,
                                "reason": "ok", "numbers": {}})
    assert '<div class="gate pass"' in passed and "Decision: published ranker" in passed
    unchecked = _render_text(gate={"published": "pop_decayed", "evaluated": False,
                                   "ranker_passed": False, "reason": "not evaluated"})
    assert "Decision: published pop_decayed (not evaluated)" in unchecked
    assert 'id="gate"' not in _render_text(gate=None)


def test_metric_table_has_models_as_columns_and_every_value(page: str) -> None:
    assert "<th>Metric</th><th>K</th><th>pop_7d</th><th>als</th><th>content</th>" in page
    for model, metric, k, value in _metrics().iter_rows():
        assert f"<td>{value:.4f}</td>" in page, (model, metric, k)
    # als (i=1) recall (j=0) @20: 2/8 + 0 + 20/1024 = 0.26953125
    assert '<td class="label">Recall</td><td>20</td><td>0.1445</td><td>0.2695</td>' in page


def test_cold_table_has_recalls_and_pair_counts(page: str) -> None:
    assert ('<td class="label">als</td><td>50</td><td>0.0500</td><td>0.1500</td>'
            "<td>6,000</td><td>225,000</td>") in page


def test_volumes_are_flattened_formatted_and_skip_bookkeeping(page: str) -> None:
    volumes = page.split('<section id="volumes">')[1]
    assert '<td class="label">validate</td><td class="label">rows_in</td><td>1,000</td>' in volumes
    assert ('<td class="label">aggregate</td><td class="label">rows_out.interactions</td>'
            "<td>5,000</td>") in volumes
    assert '<td class="label">embed</td><td class="label">items.reused</td><td>397</td>' in volumes
    assert '<td class="label">seconds</td><td>3.2</td>' in volumes
    assert '<td class="label">precompute</td><td class="label">rows</td><td>60,000</td>' in volumes
    assert "started_at" not in volumes and "run_id" not in volumes


def test_every_input_string_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    page = _render(run_id=f'"{evil}', model_version=evil,
                   metrics=_metrics(models=("als", evil, "$x$", "_hidden")),
                   cold=_cold(models=(evil,)),
                   summaries={evil: {evil: evil}},
                   gate={"published": evil, "ranker_passed": False, "reason": evil,
                         "forced": False, "numbers": {evil: 1.0}})
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34;&lt;script&gt;" in page  # the quote too (markupsafe writes &#34;)
    assert page.count("<img ") == 3  # mathtext-looking and underscore names still plot


def test_empty_metrics_and_no_cold_say_so_instead_of_plotting() -> None:
    page = _render_text(gate=None)
    assert "<img " not in page
    assert "No evaluation metrics for this run" in page
    assert "No coverage or novelty metrics for this run" in page
    assert "No cold-item evaluation for this run" in page
    assert '<section id="volumes">' in page


def test_empty_cold_frame_and_missing_bias_metrics() -> None:
    page = _render(metrics=_metrics(metrics=RANKING), cold=pl.DataFrame(schema=COLD_SCHEMA))
    assert page.count("<img ") == 1
    assert "No coverage or novelty metrics for this run" in page
    assert "No cold-item evaluation for this run" in page


def test_empty_summaries() -> None:
    assert "No task summaries for this run." in _render_text(summaries={})


def test_two_renders_are_byte_identical(page: str) -> None:
    assert _render() == page
    for png in _pngs(page):  # no Software or timestamp text chunks in the images
        assert b"tEXt" not in png and b"tIME" not in png


def test_no_figure_stays_open(page: str) -> None:
    import matplotlib.pyplot as plt

    _render()
    assert plt.get_fignums() == []


def test_missing_metric_column_is_a_named_error() -> None:
    with pytest.raises(ReportInputError, match="metrics is missing column"):
        _render(metrics=_metrics().drop("k"))
    with pytest.raises(ReportInputError, match="cold is missing column"):
        _render(cold=_cold().drop("n_warm_pairs"))


def test_the_lifts_table_shows_every_interval() -> None:
    lifts = pl.DataFrame([{"candidate": "ranker", "baseline": b, "metric": "ndcg", "k": 10,
                           "candidate_value": 0.25, "baseline_value": v, "lift": 0.25 / v,
                           "lift_lo": 0.25 / v - 0.1, "lift_hi": 0.25 / v + 0.1, "users": 300}
                          for b, v in (("pop_7d", 0.2), ("als_plain", 0.125))])
    page = _render_text(lifts=lifts)
    section = page.split('<section id="lifts">')[1].split("</section>")[0]
    assert ('<td class="label">pop_7d</td><td class="label">ndcg@10</td><td>0.2500</td>'
            "<td>0.2000</td><td>1.250</td><td>1.150 – 1.350</td><td>300</td>") in section
    assert "No lifts for this run" in _render_text()
