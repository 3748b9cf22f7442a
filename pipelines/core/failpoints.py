"""Named points where a recovery test can stop the process.

``RECS_FAILPOINTS=publish:swap,...`` makes the process pause at those points (writing the
point's name to ``$RECS_FAILPOINT_FILE`` first) so the test can kill it there with SIGKILL and
check what consumers see. Unset, a failpoint costs one environment lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_SECONDS = 600


def failpoint(name: str) -> None:
    if name not in os.environ.get("RECS_FAILPOINTS", "").split(","):
        return
    marker = os.environ.get("RECS_FAILPOINT_FILE")
    if marker:
        Path(marker).write_text(name)
    time.sleep(PAUSE_SECONDS)
