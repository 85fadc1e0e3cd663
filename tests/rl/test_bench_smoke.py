"""Smoke test of benchmarks/bench_grpo_trl.py: a `--quick --random-model` run writes both rows.

Slow (two trainers, TRL's import): excluded from `make test`, run by `make test-slow`.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from workbench.utils import repo_root

ROW_KEYS = {"name", "unit", "ours", "peer", "peer_name", "ratio", "target", "meets", "params"}


@pytest.mark.slow
def test_bench_grpo_trl_quick_writes_rows(tmp_path):
    out = tmp_path / "grpo_trl.json"
    script = os.path.join(repo_root(), "benchmarks", "bench_grpo_trl.py")
    proc = subprocess.run(
        [sys.executable, script, "--quick", "--random-model", "--threads", "1", "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "WORKBENCH_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rows = json.loads(out.read_text())
    assert [r["unit"].split()[0] for r in rows] == ["completion", "MiB"]
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["peer_name"].startswith("trl ") and "GRPOTrainer" in row["peer_name"]
        assert math.isfinite(row["ours"]) and math.isfinite(row["peer"]) and math.isfinite(row["ratio"])
        assert row["ours"] > 0 and row["peer"] > 0
        assert row["ratio"] == pytest.approx(row["ours"] / row["peer"])
        assert isinstance(row["meets"], bool)
        params = row["params"]
        assert params["model"] == "random tiny Qwen2" and params["num_generations"] == 4
        # every timed step generated prompts x G completions on both sides; tokens counted from each side's logs
        for side in ("ours_runs", "trl_runs"):
            (run,) = params[side]
            assert len(run["step_tokens"]) == params["steps"] + 1
            assert run["tokens"] == sum(run["step_tokens"][1:]) > 0
            assert all(0 < t <= params["num_prompts"] * params["num_generations"] * params["max_new_tokens"]
                       for t in run["step_tokens"])
    assert rows[0]["target"] == 1.5 and rows[1]["target"] == 1.0
