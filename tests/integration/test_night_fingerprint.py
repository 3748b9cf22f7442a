"""Two nights on generated data leave the same lake and warehouse as the golden fingerprint.

A change that means to alter the lake or the model regenerates it on purpose:
``RECS_UPDATE_GOLDEN=1 pytest tests -k fingerprint``, and the diff of the golden file is the
record of what changed.

The golden holds for the AVX2 kernels that ``tests/__init__.py`` pins: on other kernels ALS
factors and embeddings differ in their last bits, and so does everything downstream.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest

from tests import KERNEL_PINS
from tests.support.fingerprint import night_fingerprint

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "night_fingerprint.json"


def _kernels_in_use() -> dict[str, str]:
    import torch
    from threadpoolctl import threadpool_info

    blas = {info["architecture"] for info in threadpool_info()
            if info["internal_api"] == "openblas"}
    return {"OPENBLAS_CORETYPE": ",".join(sorted(blas)),
            "ATEN_CPU_CAPABILITY": torch.backends.cpu.get_cpu_capability().lower()}


def test_the_suite_runs_on_the_pinned_kernels() -> None:
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        pytest.skip(f"the kernel pins are x86-64's; this is {platform.machine()}")
    expected = {name: KERNEL_PINS[name] for name in ("OPENBLAS_CORETYPE", "ATEN_CPU_CAPABILITY")}
    assert _kernels_in_use() == expected, (
        "numpy or torch was loaded with other kernels than tests/__init__.py pins (an "
        "environment variable set to another value?): the golden fingerprint cannot match")


def test_two_nights_match_the_golden_fingerprint(two_nights: Path) -> None:
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        pytest.skip(f"the golden is for x86-64's AVX2 kernels; this is {platform.machine()}")
    actual = night_fingerprint(two_nights)
    if os.environ.get("RECS_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    expected = json.loads(GOLDEN.read_text())
    assert sorted(actual) == sorted(expected), "lake paths changed: " + json.dumps({
        "new": sorted(set(actual) - set(expected)),
        "gone": sorted(set(expected) - set(actual))}, indent=1)
    changed = sorted(k for k in expected if actual[k] != expected[k])
    assert not changed, f"content changed in {len(changed)} file(s): {changed[:20]}"
