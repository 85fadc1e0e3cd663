"""The documented "point `model` at a local checkpoint" path, on the CPU: every notebook that takes a
language or vision-language model runs at `preset=gpu` on a folder shaped like a downloaded Qwen2.5 /
Qwen2.5-VL (byte-level BPE, ChatML, transformers' own processor class; `workbench.models.bpe`), with the
smallest sizes as overrides. The weights are random, so no claim may hold (the baselines do not learn:
inconclusive; a claim about the base itself may be refuted), and nothing may crash or write a NaN
(issue 25, item 17)."""

import json
import os

import pytest

from workbench.models.bpe import save_tiny_qwen2, save_tiny_qwen2_vl
from workbench.utils import repo_root

TEXT, VL = "{text}", "{vl}"
SMALL_RL = {"n_seeds": 1, "steps": 1, "max_new_tokens": 12, "device": "cpu"}
RUNS = {
    "00_quickstart": {"model": TEXT, "n_eval": 8, "pass_k": 2, "pass_k_max": 4, "rl_steps": 2, "max_new_tokens": 16,
                      "device": "cpu"},
    "01_delta_logp": {"base_model": TEXT, "rl_steps": 2, "max_new_tokens": 16, "n_rollouts": 8, "n_replace": 4,
                      "replace_seeds": 1, "n_lambda": 4, "rw_seeds": 1, "rw_steps": 2, "device": "cpu"},
    "02_fipo": {"model": TEXT, **SMALL_RL, "steps": 2, "num_prompts": 2, "num_generations": 2,
                "sweep_decay_rates": [8.0], "eval_n": 4, "eval_every": 1},
    "03_tor": {"model": VL, **SMALL_RL, "num_prompts": 2, "num_generations": 2, "eval_n": 4},
    "04_durian": {"model": VL, **SMALL_RL, "ablation": False, "num_prompts": 4, "num_generations": 3,
                  "reasoning_buckets": 2, "eval_n": 4, "entropy_images": 8, "entropy_samples": 2, "probe_batches": 2},
    "05_tgrl": {"model": VL, **SMALL_RL, "ablation": False, "num_prompts": 2, "num_generations": 3, "eval_n": 4},
    "06_adavip": {"model": VL, "n_seeds": 1, "n_pairs": 8, "steps": 1, "batch_size": 2, "eval_images": 4,
                  "caption_tokens": 12, "device": "cpu"},
    "07_causal_halbench": {"model": VL, "n_images": 4, "unbiased_n": 4, "caption_n": 2, "caption_tokens": 12,
                           "batch_size": 8, "device": "cpu"},
    "08_react": {"model": VL, **SMALL_RL, "num_prompts": 2, "num_generations": 2, "eval_pairs": 4, "n_shown": 2},
    "09_phsa": {"model": TEXT, "lengths": [512], "top_ks": [2], "n_docs": 1, "block_size": 32, "initial": 32,
                "window": 64, "query_tile": 32, "min_sparsity": 0.0, "ft_length": 512, "ft_steps": 2, "ft_batch": 1,
                "n_eval": 2, "device": "cpu"},
    "11_token_atlas": {"text_model": TEXT, "text_rl_model": TEXT, "vision_model": VL, "vision_rl_model": VL,
                       "n_rollouts": 8, "n_vision_rollouts": 4, "n_replace": 4, "replace_seeds": 1, "n_seeds": 1,
                       "comp_steps": 1, "eval_n": 4, "max_new_tokens": 12, "device": "cpu"},
}
SLOW = {"01_delta_logp", "11_token_atlas"}  # 35-45 s each; the others take about 10 s


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return {TEXT: save_tiny_qwen2(str(root / "qwen2")), VL: save_tiny_qwen2_vl(str(root / "qwen2-vl"))}


@pytest.mark.notebook
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in RUNS])
def test_notebook_runs_on_a_qwen_shaped_checkpoint(name, checkpoints, tmp_path, monkeypatch):
    import papermill as pm

    monkeypatch.setenv("WORKBENCH_HEADLESS", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("WORKBENCH_FIGURES", str(tmp_path / "figures"))
    params = {"preset": "gpu", **{k: checkpoints.get(v, v) if isinstance(v, str) else v for k, v in RUNS[name].items()}}
    path = os.path.join(repo_root(), "notebooks", f"{name}.ipynb")
    pm.execute_notebook(path, str(tmp_path / f"{name}.ipynb"), parameters=params, progress_bar=False,
                        cwd=os.path.dirname(path), kernel_name="python3")
    text = open(tmp_path / "outputs" / name / "results.json").read()
    assert "NaN" not in text and "Infinity" not in text
    results = json.loads(text)
    assert results["preset"] == "gpu"
    verdicts = [(c["id"], c.get("verdict")) for c in results["claims"]]
    assert all(v in ("inconclusive", "refuted") for _, v in verdicts), verdicts
