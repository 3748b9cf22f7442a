"""The benchmark report: one table per step, with the columns the step has, and its context."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import floor_summary, table, write_report


def test_table_shows_the_columns_a_step_has_in_order() -> None:
    rows = [{"step": "load/duckdb", "what": "Arrow", "rows": 300_000, "seconds": 0.2441,
             "rows_per_s": 1_228_000.4, "ratio_to_peer": 1027.96},
            {"step": "load/duckdb", "what": "executemany | slow", "rows": 5000,
             "seconds": 4.188, "rows_per_s": 1193.9, "ratio_to_peer": 1.0}]
    assert table(rows).splitlines() == [
        "| what | rows | seconds | rows_per_s | ratio_to_peer |",
        "|---|---|---|---|---|",
        "| Arrow | 300,000 | 0.244 | 1,228,000 | 1,028 |",
        "| executemany \\| slow | 5,000 | 4.19 | 1,194 | 1 |",
    ]


def test_report_names_hardware_commit_command_and_each_step(tmp_path: Path) -> None:
    rows = [{"step": "als", "what": "implicit", "seconds": 1.5, "ndcg_at_10": 0.2101},
            {"step": "night/20,000 events", "what": "validate", "events": 20_000,
             "seconds": 3.0, "peak_mib": 812.4},
            {"step": "night/7 days of history", "what": "validate", "events": 7_000,
             "seconds": 2.0, "peak_mib": 700.0}]
    path = tmp_path / "BENCHMARKS.md"
    write_report(path, rows, 3, {"als": "Peer: Spark MLlib ALS."}, tmp_path / "night.png")
    text = path.read_text()
    for expected in ("**Hardware**", " cores, ", "**Commit**", "**Command**",
                     "median of 3 runs", "## als", "Peer: Spark MLlib ALS.", "## night",
                     "**20,000 events**", "**7 days of history**", "![cost of a night's tasks]"
                     "(night.png)", "| implicit | 1.5 | 0.21 |"):
        assert expected in text, expected


def test_floor_summary_lists_the_furthest_path_first() -> None:
    rows = [{"step": "score/cpu", "what": "top_n", "share_of_floor": 0.87},
            {"step": "score/cpu", "what": "implicit"},
            {"step": "embed/cpu", "what": "pipeline", "share_of_floor": 0.31}]
    assert floor_summary(rows)[5:8] == [
        "|---|---|---|",
        "| embed/cpu | pipeline | 0.31 |",
        "| score/cpu | top_n | 0.87 |",
    ]
    assert floor_summary([{"step": "als", "what": "implicit"}]) == []


def test_a_partial_run_keeps_the_other_steps_of_the_report_marked(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    write_report(path, [{"step": "als", "what": "implicit", "seconds": 1.5},
                        {"step": "load/duckdb", "what": "Arrow", "seconds": 0.25,
                         "share_of_floor": 0.8}], 3, {}, None)
    write_report(path, [{"step": "als", "what": "implicit", "seconds": 1.2}], 3, {}, None)
    text = path.read_text()
    assert "| implicit | 1.2 |" in text and "| implicit | 1.5 |" not in text
    load = text[text.index("## load"):]
    assert load.splitlines()[2].startswith("_Kept from an earlier run (**Commit**")
    assert "| Arrow | 0.25 |" in load
    assert "| load/duckdb (earlier run) | Arrow | 0.8 |" in text
    # Kept again by a third run, it is marked once.
    write_report(path, [{"step": "als", "what": "implicit", "seconds": 1.1}], 3, {}, None)
    text = path.read_text()
    assert text.count("_Kept from") == 1 and text.count("(earlier run)") == 1
    assert "## load\n\n_Kept from" in text
    # A section written by hand that says where it comes from is kept as it is.
    path.write_text(text + "\n## night at scale\n\n_Measured by hand._\n\n| a |\n")
    write_report(path, [{"step": "als", "what": "implicit", "seconds": 1.0}], 3, {}, None)
    assert "## night at scale\n\n_Measured by hand._\n" in path.read_text()
    # Measured again, a step's earlier floor rows give way to the new ones (with a sub-step
    # or without).
    write_report(path, [{"step": "rank", "what": "ranker", "share_of_floor": 0.1}], 3, {}, None)
    write_report(path, [{"step": "als", "what": "implicit", "seconds": 1.0}], 3, {}, None)
    write_report(path, [{"step": "load/duckdb", "what": "Arrow", "share_of_floor": 0.9},
                        {"step": "rank", "what": "ranker", "share_of_floor": 0.2}], 3, {}, None)
    text = path.read_text()
    assert "| load/duckdb | Arrow | 0.9 |" in text and "| rank | ranker | 0.2 |" in text
    assert "(earlier run)" not in text
