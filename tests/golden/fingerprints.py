"""What the golden test records: a trainer fingerprint of every RL method on a tiny random LM, and the
metrics of every notebook's smoke run, with the machine they came from.

    python tests/golden/fingerprints.py capture                       # trainer.json from this checkout
    python tests/golden/fingerprints.py capture-notebooks OUTPUTS     # notebooks.json from smoke results
    python tests/golden/fingerprints.py recapture-claims OUTPUTS      # new claims, only if no metric moved

Only run `capture` on a tree whose behaviour is the reference (it was run on main before spine v2).
"""

from __future__ import annotations

import json
import os
import platform
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

def is_time_key(key: str) -> bool:
    """Keys whose values are wall-clock times or rates: never compared."""
    return "seconds" in key or key.endswith(("_s", "_time")) or key in ("time", "started")

#: RL methods of the trainer fingerprint: (label, RLConfig.for_method name, overrides)
TRAINER_RUNS = [
    ("grpo", "grpo", {}),
    ("dr_grpo", "dr_grpo", {}),
    ("dapo", "dapo", {"max_new_tokens": 8}),
    ("fipo", "fipo", {"max_new_tokens": 8}),
    ("grpo_low_prob_2mb", "grpo", {"token_weights": [("low_prob", {"alpha": 0.2})], "num_minibatches": 2}),
    ("grpo_kl_rloo", "grpo", {"kl_coef": 0.05, "advantage": "rloo"}),
    ("grpo_explore", "grpo", {"explore": 0.5}),
]


def machine() -> dict:
    """The capability the golden numbers depend on: CPU model, family / model / stepping and ISA flags,
    torch version and threads (kernels pick their code path by ISA; threads change reduction order)."""
    info, flags = {}, ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model", "stepping") and key not in info:
                    info[key] = value.strip()
                if key == "flags":
                    flags = value.strip()
                    break
    except OSError:
        pass
    isa = sorted(f for f in flags.split() if f.startswith(("avx", "fma", "amx", "sse4")))
    cpu = " / ".join(info.get(k, "?") for k in ("model name", "cpu family", "model", "stepping")) if info else platform.processor()
    return {"cpu": cpu, "isa": isa, "machine": platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def tiny_lm(seed: int = 0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from workbench.models.tokenizer import build_tokenizer

    torch.manual_seed(seed)
    tok = build_tokenizer()
    cfg = Qwen2Config(vocab_size=(len(tok) + 63) // 64 * 64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512, tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg).eval(), tok


def digit_task():
    from workbench.models.tokenizer import format_prompt
    from workbench.rl import RLTask, RewardSpec

    def sample(n, rng):
        return [str(rng.randint(0, 9)) for _ in range(n)]

    def reward(c, p):
        return sum(ch.isdigit() for ch in c) / max(len(c), 1)

    return RLTask("digits", sample, lambda p: format_prompt(p), [RewardSpec("digits", reward)],
                  eval_problems=lambda n: [str(i % 10) for i in range(n)], correct=lambda c, p: c[:1].isdigit())


def trainer_fingerprint(method: str, overrides: dict, steps: int = 3) -> dict:
    """Train the tiny LM `steps` steps; return its per-step metrics (no timings) and weight statistics."""
    from workbench.rl import RLConfig, train

    model, tok = tiny_lm(0)
    cfg = RLConfig.for_method(method, **{"num_prompts": 4, "num_generations": 4, "max_new_tokens": 6,
                                         "micro_batch_size": 8, "lr": 1e-2, "progress": False, "steps": steps,
                                         "eval_every": steps, "eval_n": 8, **overrides})
    res = train(model, tok, digit_task(), cfg)
    flat = torch.cat([p.detach().double().flatten() for p in res.model.parameters()])
    return {"history": [strip_times(h) for h in res.history],
            "weights": {"sum": float(flat.sum()), "abs_sum": float(flat.abs().sum()), "first": flat[:8].tolist()}}


def strip_times(d):
    if isinstance(d, dict):
        return {k: strip_times(v) for k, v in d.items() if not is_time_key(str(k))}
    if isinstance(d, list):
        return [strip_times(v) for v in d]
    return d


def pure_fingerprint() -> dict:
    """Pure functions on fixed float64 tensors (no training): identical on any machine up to round-off."""
    from workbench.rl.advantages import compute_advantages
    from workbench.rl.losses import policy_loss
    from workbench.rl.weights import WeightContext, compose_token_weights

    try:
        from workbench.rl.methods import loss_preset
    except ImportError:  # the layout before spine v2, where the golden numbers were captured
        from workbench.rl.losses import LossConfig

        loss_preset = LossConfig.from_name

    g = torch.Generator().manual_seed(1234)
    N, T = 12, 7
    rewards = torch.randint(0, 3, (N,), generator=g).double() / 2
    group_ids = torch.arange(N) // 4
    mask = (torch.rand(N, T, generator=g) > 0.2).long()
    logp = -torch.rand(N, T, generator=g, dtype=torch.float64) * 3
    old = logp + 0.1 * torch.randn(N, T, generator=g, dtype=torch.float64)
    out = {}
    for est in ("grpo", "dr_grpo", "rloo"):
        out[f"adv/{est}"] = compute_advantages(est, rewards, group_ids, mask)[:, 0].tolist()
    adv = compute_advantages("grpo", rewards, group_ids, mask)
    ctx = WeightContext(logp=logp, old_logp=old, mask=mask, advantages=adv)
    for spec in (("low_prob", {"alpha": 0.2}), ("future_kl", {"decay_rate": 4.0})):
        out[f"weight/{spec[0]}"] = compose_token_weights([spec], ctx).sum(-1).tolist()
    for method in ("grpo", "dapo", "dr_grpo", "fipo"):
        loss, _ = policy_loss(logp, old, adv, mask, max_len=T, **loss_preset(method).as_kwargs())
        out[f"loss/{method}"] = float(loss)
    return out


def compare(actual, golden, exact: bool, path: str = "") -> list[str]:
    """Differences between two JSON trees: with `exact`, every number within rtol 1e-6 (atol 1e-9) and every
    string equal; otherwise only the structure (keys, list lengths, number-vs-text). A key the golden tree
    lacks is allowed (a metric added later changes no old number); a key it has must be there."""
    diffs = []
    if isinstance(golden, dict):
        if not isinstance(actual, dict) or not set(golden) <= set(actual):
            missing = sorted(set(golden) - set(actual)) if isinstance(actual, dict) else "not a dict"
            return [f"{path}: keys missing: {missing}"]
        for k in golden:
            diffs += compare(actual[k], golden[k], exact, f"{path}/{k}")
    elif isinstance(golden, list):
        if not isinstance(actual, list) or len(actual) != len(golden):
            return [f"{path}: list of {len(golden)} became {len(actual) if isinstance(actual, list) else type(actual).__name__}"]
        for i, (a, b) in enumerate(zip(actual, golden)):
            diffs += compare(a, b, exact, f"{path}[{i}]")
    elif isinstance(golden, (int, float)) and not isinstance(golden, bool):
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            return [f"{path}: number {golden!r} became {actual!r}"]
        if exact and not abs(actual - golden) <= 1e-9 + 1e-6 * abs(golden):
            return [f"{path}: {golden!r} became {actual!r}"]
    elif golden is None or isinstance(golden, (str, bool)):
        if exact and actual != golden:
            return [f"{path}: {golden!r} became {actual!r}"]
        if not exact and type(actual) is not type(golden) and golden is not None:
            return [f"{path}: {type(golden).__name__} became {type(actual).__name__}"]
    return diffs


def same_machine(recorded: dict) -> bool:
    """Whether this machine has the capability the golden numbers came from (CPU, ISA, torch, threads)."""
    now = machine()
    return all(now[k] == recorded.get(k) for k in ("cpu", "isa", "machine", "torch", "threads"))


def capture_trainer() -> None:
    torch.set_num_threads(2)
    out = {"machine": machine(), "pure": pure_fingerprint(),
           "runs": {label: trainer_fingerprint(m, o) for label, m, o in TRAINER_RUNS}}
    with open(os.path.join(HERE, "trainer.json"), "w") as f:
        json.dump(out, f, indent=1)


def capture_notebooks(outputs_root: str) -> None:
    out = {"machine": machine(), "notebooks": {}}
    for name in sorted(os.listdir(outputs_root)):
        path = os.path.join(outputs_root, name, "results.json")
        if os.path.exists(path):
            with open(path) as f:
                r = json.load(f)
            out["notebooks"][name] = {"metrics": strip_times(r["metrics"]), "claims": strip_times(r["claims"])}
    with open(os.path.join(HERE, "notebooks.json"), "w") as f:
        json.dump(out, f, indent=1)


def recapture_claims(outputs_root: str) -> None:
    """Replace the golden *claims* of each notebook whose smoke *metrics* still match the golden ones exactly
    (a change to how claims are decided, such as the verdicts of issue 18, changes no measured number);
    refuse, naming the difference, when any metric moved."""
    path = os.path.join(HERE, "notebooks.json")
    with open(path) as f:
        golden = json.load(f)
    if not same_machine(golden["machine"]):
        raise SystemExit(f"golden numbers come from {golden['machine']}, this is {machine()}: re-capture there")
    for name, entry in golden["notebooks"].items():
        with open(os.path.join(outputs_root, name, "results.json")) as f:
            r = json.load(f)
        diffs = compare(strip_times(r["metrics"]), strip_times(entry["metrics"]), exact=True)
        if diffs:
            raise SystemExit(f"{name}: metrics moved, so claims are not re-captured: " + "; ".join(diffs[:5]))
        entry["claims"] = strip_times(r["claims"])
    with open(path, "w") as f:
        json.dump(golden, f, indent=1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["capture"]:
        capture_trainer()
    elif sys.argv[1:2] == ["capture-notebooks"]:
        capture_notebooks(sys.argv[2])
    elif sys.argv[1:2] == ["recapture-claims"]:
        recapture_claims(sys.argv[2])
    else:
        raise SystemExit(__doc__)
