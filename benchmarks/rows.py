"""What every benchmark does last: write its rows (a list of dicts) as JSON and say where."""

from __future__ import annotations

import json
import os


def write_rows(rows: list[dict], path: str) -> None:
    """Write `rows` to `path` (its folder created) as indented JSON and print the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(rows, f, indent=2)
    print(f"wrote {path}")
