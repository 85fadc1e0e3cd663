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


def _growth_module():
    sys.path.insert(0, os.path.join(repo_root(), "benchmarks"))
    import bench_grpo_growth

    return bench_grpo_growth


def test_growth_exponent_and_full_length_model():
    g = _growth_module()
    assert g.exponent([64, 128, 256], [3.0, 6.0, 12.0]) == pytest.approx(1.0)
    assert g.exponent([4, 8, 16], [1.0, 4.0, 16.0]) == pytest.approx(2.0)
    model, tok = g.full_length_model(0, max_positions=128)
    import torch

    ids = torch.tensor([tok.encode("1+2=")])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    assert (logits.argmax(-1) != tok.eos_token_id).all() and (logits[:, tok.eos_token_id] < -1e3).all()
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still tied: the same weights on both sides
    wide, _ = g.full_length_model(0, max_positions=128, vocab_size=4096)
    with torch.no_grad():
        logits = wide(input_ids=ids).logits[0]
    assert logits.shape[-1] == 4096 and (logits[:, len(tok):] < -1e3).all()  # computed, never sampled


def run_bench(script: str, *args: str):
    """Run benchmarks/`script` with `args` (its last two: --out PATH); the JSON it wrote."""
    proc = subprocess.run([sys.executable, os.path.join(repo_root(), "benchmarks", script), *args],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(open(args[-1]).read())


@pytest.mark.slow
def test_bench_grpo_growth_quick_writes_exponents(tmp_path):
    out = tmp_path / "grpo_growth.json"
    res = run_bench("bench_grpo_growth.py", "--quick", "--steps", "1", "--device", "cpu", "--out", str(out))
    assert len(res["rows"]) == 6 and len(res["exponents"]) == 12
    for row in res["rows"]:  # EOS suppressed: every completion runs to max_new_tokens on both sides
        want = row["num_prompts"] * row["num_generations"] * row["max_new_tokens"]
        assert row["ours"]["tokens_per_step"] == want and row["trl"]["tokens_per_step"] == want
    assert (tmp_path / "grpo_growth.png").exists()


@pytest.mark.slow
def test_bench_grpo_shapes_quick_writes_rows_per_shape(tmp_path):
    """The three-shape benchmark at `--quick` (1 timed step, 2 prompts, no levers) on the two random-model shapes:
    two rows per shape, with issue 27's targets; the 32k shape really has a 32k BPE tokenizer."""
    rows = run_bench("bench_grpo_shapes.py", "--quick", "--shapes", "long,vocab32k", "--device", "cpu",
                     "--out", str(tmp_path / "grpo_trl.json"))
    script = os.path.join(repo_root(), "benchmarks", "bench_grpo_shapes.py")
    assert [r["params"]["shape"] for r in rows] == ["long", "long", "vocab32k", "vocab32k"]
    assert [r["target"] for r in rows] == [2.0, 0.8, 2.0, 0.8]
    assert "32768-id BPE" in rows[2]["params"]["model"] and rows[0]["params"]["max_new_tokens"] == 256
    assert all(math.isfinite(r["ratio"]) and r["ours"] > 0 and r["peer"] > 0 for r in rows)
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run([sys.executable, script, "--shapes", "wide"], check=True, capture_output=True, timeout=120)
