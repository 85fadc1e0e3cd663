"""Smoke test of benchmarks/bench_dpo_trl.py: a `--quick --random-model` run writes both rows.

Slow (two trainers, TRL's import): excluded from `make test`, run by `make test-slow`.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from workbench.utils import repo_root


@pytest.mark.slow
def test_bench_dpo_trl_quick_writes_rows(tmp_path):
    out = tmp_path / "dpo_trl.json"
    script = os.path.join(repo_root(), "benchmarks", "bench_dpo_trl.py")
    proc = subprocess.run([sys.executable, script, "--quick", "--random-model", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rows = json.loads(out.read_text())
    assert [r["unit"].split()[0] for r in rows] == ["tokens/s", "MiB"]
    for row in rows:
        assert row["peer_name"].startswith("trl ") and "DPOTrainer" in row["peer_name"]
        assert math.isfinite(row["ratio"]) and row["ours"] > 0 and row["peer"] > 0
        assert row["ratio"] == pytest.approx(row["ours"] / row["peer"])
        # both sides processed the same pairs: the same token count
        runs = row["params"]
        assert runs["ours_runs"][0]["tokens"] == runs["trl_runs"][0]["tokens"]
