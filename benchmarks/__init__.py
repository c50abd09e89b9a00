"""contextkit's benchmarks: `python -m benchmarks [--quick] [--only NAME]` (see README.md).

The benchmark scripts import each other by module name (`from _common import ...`), as
when run as `python benchmarks/<name>.py`; importing the package puts this directory on
`sys.path` so the same imports work under `python -m benchmarks`.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
