"""Smoke test of benchmarks/bench_compile.py: a `--quick` run writes its three rows with equal log-probs.

Slow (inductor compiles for tens of seconds on 2 cores): excluded from `make test`, run by `make test-slow`.
"""

import json
import os
import subprocess
import sys

import pytest

from workbench.utils import repo_root


@pytest.mark.slow
def test_bench_compile_quick_writes_rows(tmp_path):
    out = tmp_path / "compile.json"
    proc = subprocess.run([sys.executable, os.path.join(repo_root(), "benchmarks", "bench_compile.py"), "--quick",
                           "--repeats", "1", "--warmup", "0", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rows = json.loads(out.read_text())
    assert [r["name"].split(",")[0] for r in rows] == ["update", "score", "update"]
    for r in rows:
        assert {"name", "unit", "ours", "peer", "peer_name", "ratio", "target", "meets", "params"} <= set(r)
        assert r["ours"] > 0 and r["peer"] > 0
    assert rows[0]["params"]["max_abs_logp_diff"] < 1e-4
