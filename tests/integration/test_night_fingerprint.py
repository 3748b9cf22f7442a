"""Two nights on generated data leave the same lake and warehouse as the golden fingerprint.

A change that means to alter the lake or the model regenerates it on purpose:
``RECS_UPDATE_GOLDEN=1 pytest tests -k fingerprint``, and the diff of the golden file is the
record of what changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.fingerprint import night_fingerprint

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "night_fingerprint.json"


def test_two_nights_match_the_golden_fingerprint(two_nights: Path) -> None:
    actual = night_fingerprint(two_nights)
    if os.environ.get("RECS_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    expected = json.loads(GOLDEN.read_text())
    assert sorted(actual) == sorted(expected), "lake paths changed: " + json.dumps({
        "new": sorted(set(actual) - set(expected)),
        "gone": sorted(set(expected) - set(actual))}, indent=1)
    changed = sorted(k for k in expected if actual[k] != expected[k])
    assert not changed, f"content changed in {len(changed)} file(s): {changed[:20]}"
