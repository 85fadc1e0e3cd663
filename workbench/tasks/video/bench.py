"""The frozen REACT-Bench-like split: `data/video/react_bench.jsonl`, one ≻ pair of clip specs per line.

Specs, not pixels, are stored; clips render deterministically on load (`render_clip`). The split is stream
`BENCH_STREAM` of `make_pair` with the default `VideoConfig`; `write_bench` regenerates the file and a test
checks the committed one against it.
"""

from __future__ import annotations

import json
import os

from workbench.tasks.video.clip import ClipSpec
from workbench.tasks.video.sampler import ClipPair, VideoConfig, make_pair

BENCH_STREAM, BENCH_SIZE = 90_000, 200
BENCH_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "data", "video", "react_bench.jsonl")


def bench_pairs(n: int = BENCH_SIZE, config: VideoConfig | None = None) -> list[ClipPair]:
    """The first `n` pairs of the bench stream, generated (what `write_bench` stores)."""
    return [make_pair(BENCH_STREAM, i, config) for i in range(n)]


def write_bench(path: str = BENCH_PATH, n: int = BENCH_SIZE) -> str:
    """Write the frozen split (one JSON pair per line, atomically); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for p in bench_pairs(n):
            f.write(json.dumps({"pair_id": p.pair_id, "better": p.better.to_dict(), "worse": p.worse.to_dict()},
                               sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def load_bench(n: int | None = None, path: str = BENCH_PATH) -> list[ClipPair]:
    """The first `n` pairs (all when None) of the frozen split.

    Raises FileNotFoundError naming the path, ValueError when `n` exceeds the split or a line is malformed."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"the frozen REACT split is missing at {os.path.abspath(path)} "
                                "(regenerate it with workbench.tasks.video.write_bench())")
    pairs = []
    with open(path) as f:
        for i, line in enumerate(f):
            try:
                d = json.loads(line)
                pairs.append(ClipPair(d["pair_id"], ClipSpec.from_dict(d["better"]), ClipSpec.from_dict(d["worse"])))
            except (KeyError, ValueError) as e:
                raise ValueError(f"line {i + 1} of {path} is not a clip pair: {e}") from None
    if n is not None and n > len(pairs):
        raise ValueError(f"asked for {n} bench pairs, the frozen split has {len(pairs)}")
    return pairs if n is None else pairs[:n]
