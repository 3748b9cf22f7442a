"""BENCHMARKS.md: the figures of one `python -m benchmarks.bench` run with what they were measured
on (hardware, commit, command), one table per step."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Column order of the tables; a step shows the columns it has.
COLUMNS = ["what", "what_of", "events", "history_days", "days", "rows", "users", "items",
           "seconds", "seconds_per_day", "rows_per_s", "users_per_s", "ms_per_1000_users",
           "texts_per_s", "peak_mib",
           "ndcg_at_10", "padding", "overlap_with_peer", "readers", "reads", "errors",
           "mixed_ds", "empty", "p50_ms", "p99_ms", "ratio_to_peer", "share_of_floor"]


def hardware() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    text = (f"{cpu}, {os.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB memory, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    try:
        import torch

        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
        else:
            text += ", no GPU"
    except ImportError:
        pass
    return text


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=False).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" (with uncommitted changes)" if git("status", "--porcelain",
                                                        "--untracked-files=no") else "")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def table(rows: list[dict]) -> str:
    present = [c for c in COLUMNS if any(r.get(c) is not None for r in rows)]
    lines = ["| " + " | ".join(present) + " |", "|" + "---|" * len(present)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in present) + " |" for r in rows]
    return "\n".join(lines)


def floor_summary(rows: list[dict]) -> list[str]:
    """The rows measured against a floor, furthest first: where speed is left to gain."""
    held = sorted((r for r in rows if r.get("share_of_floor") is not None),
                  key=lambda r: r["share_of_floor"])
    if not held:
        return []
    lines = ["## Distance from the floor", "",
             "Each path against the floor its step names (1 = at the floor), furthest first.",
             "", "| step | what | share_of_floor |", "|---|---|---|"]
    lines += [f"| {r['step']} | {_cell(r['what'])} | {_cell(r['share_of_floor'])} |"
              for r in held]
    return [*lines, ""]


def _sections(text: str) -> dict[str, str]:
    """The ``## step`` sections of an earlier report, by step."""
    out = {}
    for block in text.split("\n## ")[1:]:
        name = block.split("\n", 1)[0].strip()
        out[name] = "## " + block.rstrip() + "\n"
    return out


EARLIER = "(earlier run)"


def _earlier_floor_rows(text: str, measured: set[str]) -> list[dict]:
    """The rows of an earlier report's floor summary whose steps this run did not measure."""
    section = _sections(text).get("Distance from the floor", "")
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("step", "---") or cells[0].startswith("-"):
            continue
        if cells[0].removesuffix(f" {EARLIER}").split("/")[0] in measured:
            continue
        try:
            share = float(cells[2].replace(",", ""))
        except ValueError:
            continue
        step = cells[0] if cells[0].endswith(EARLIER) else f"{cells[0]} {EARLIER}"
        rows.append({"step": step, "what": cells[1].replace("\\|", "|"),
                     "share_of_floor": share})
    return rows


def _stamp(text: str) -> str:
    """The commit and date lines of an earlier report."""
    lines = [line for line in text.splitlines()
             if line.startswith(("- **Commit**", "- **Measured**"))]
    return "; ".join(line.split(";")[0].lstrip("- ") for line in lines)


def write_report(path: Path, rows: list[dict], repeat: int, notes: dict[str, str],
                 plot: Path | None) -> None:
    """The report of ``rows``; the sections of steps this run did not measure are kept from
    the report already at ``path``, marked with the commit and date they were measured at."""
    earlier = path.read_text() if path.exists() else ""
    steps: dict[str, list[dict]] = {}
    for row in rows:
        steps.setdefault(row["step"].split("/")[0], []).append(row)
    out = [
        "# Benchmarks",
        "",
        f"- **Hardware**: {hardware()}",
        f"- **Commit**: {commit()}",
        f"- **Command**: `python -m benchmarks.bench {' '.join(sys.argv[1:])}`",
        f"- **Measured**: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; every figure is the median "
        f"of {repeat} runs. Compare ratios (`ratio_to_peer`, against the peer each step's "
        "note names, measured in the same run), not absolute times across machines.",
        "",
    ]
    out += floor_summary(rows + _earlier_floor_rows(earlier, set(steps)))
    for step, step_rows in steps.items():
        out += [f"## {step}", ""]
        if step in notes:
            out += [notes[step], ""]
        for sub in dict.fromkeys(r["step"] for r in step_rows):
            subset = [r for r in step_rows if r["step"] == sub]
            if sub != step:
                out += [f"**{sub.split('/', 1)[1]}**", ""]
            out += [table(subset), ""]
        if step == "night" and plot is not None:
            out += [f"![cost of a night's tasks]({plot.name})", ""]
    kept = {k: v for k, v in _sections(earlier).items()
            if k not in steps and k != "Distance from the floor"}
    for section in kept.values():
        head, _, body = section.partition("\n")
        # A section that already says where it comes from (stamped by an earlier report, or
        # measured by hand) keeps its own line.
        if not body.lstrip().startswith(("_Kept from", "_Measured")):
            body = f"\n_Kept from an earlier run ({_stamp(earlier)})._\n" + body
        out += [f"{head}\n{body}"]
    path.write_text("\n".join(out))
