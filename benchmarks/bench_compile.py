"""`torch.compile` on the CPU: does it pay for the RL update and for scoring? (issue 27 item 6)

    python benchmarks/bench_compile.py            # tiny-arith shape: hidden 256, 4 layers, 64 rows x (16 + 48) tokens
    python benchmarks/bench_compile.py --quick    # 8 rows x (8 + 16): seconds

One process, one random tiny Qwen2 (the `tiny-arith` architecture, the character vocabulary). Each setting runs
eager and `torch.compile(model)` (inductor, default mode) on the same ids and masks:

- `update`: `models.scoring.completion_logprobs` with entropy, then the backward of Σ log π (what one RL
  micro-batch does);
- `score`: the same forward under `torch.no_grad()` (log π_old / π_ref);
- `update, lengths varying per step`: 7 updates whose completion length changes as an RL run's does, compile and
  recompiles included (what a user of `torch.compile` in the trainer would pay).

Time is the median of `--repeats` after `--warmup` calls (the first compiled call, which compiles, is reported on
its own as `compile_s`). Values are checked equal (max |Δ log π|). Rows `{"name", "unit", "ours", "peer",
"peer_name", "ratio", "target", "meets", "params"}` go to outputs/bench/compile.json: `ours` = compiled seconds,
`peer` = eager seconds, target ratio ≤ 0.8 (the bar for switching compile on by default; the workbench keeps it off
where the bar is not met).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from workbench.models.scoring import completion_logprobs
from workbench.models.tiny import tiny_causal_lm
from workbench.models.tokenizer import build_tokenizer
from workbench.utils import repo_root

TARGET = 0.8


def batch(tok, rows: int, prompt: int, completion: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    V = len(tok)
    ids = torch.randint(10, V, (rows, prompt + completion), generator=g)
    cm = torch.ones(rows, completion, dtype=torch.long)
    cm[: rows // 2, 3 * completion // 4:] = 0  # a quarter of the positions of half the rows are padding
    return {"prompt_ids": ids[:, :prompt], "prompt_mask": torch.ones(rows, prompt, dtype=torch.long),
            "completion_ids": ids[:, prompt:], "completion_mask": cm}


def step(model, b: dict, backward: bool):
    if backward:
        logp, _ = completion_logprobs(model, b["prompt_ids"], b["prompt_mask"], b["completion_ids"], b["completion_mask"],
                                      with_entropy=True, share_prompts=False)
        logp.sum().backward()
        model.zero_grad(set_to_none=True)
        return logp.detach()
    with torch.no_grad():
        logp, _ = completion_logprobs(model, b["prompt_ids"], b["prompt_mask"], b["completion_ids"], b["completion_mask"],
                                      with_entropy=True, share_prompts=False)
    return logp


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(repo_root(), "outputs", "bench", "compile.json"))
    args = ap.parse_args(argv)
    rows_, P, T = (8, 8, 16) if args.quick else (64, 16, 48)
    repeats = args.repeats or (3 if args.quick else 7)
    torch.manual_seed(0)
    tok = build_tokenizer()
    eager = tiny_causal_lm(tok).train()
    compiled_model = tiny_causal_lm(tok).train()
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model)
    b = batch(tok, rows_, P, T)
    out = []
    for name, backward in (("update", True), ("score", False)):
        t0 = time.perf_counter()
        ref, got = step(eager, b, backward), step(compiled, b, backward)
        compile_s = time.perf_counter() - t0
        diff = float((ref - got).abs().max())
        for _ in range(args.warmup):
            step(eager, b, backward), step(compiled, b, backward)
        t_eager, e_all = timed(lambda: step(eager, b, backward), repeats)
        t_comp, c_all = timed(lambda: step(compiled, b, backward), repeats)
        ratio = t_comp / t_eager
        out.append({"name": name, "unit": "s per call", "ours": t_comp, "peer": t_eager, "peer_name": "eager",
                    "ratio": ratio, "target": f"<= {TARGET}", "meets": ratio <= TARGET,
                    "params": {"rows": rows_, "prompt": P, "completion": T, "compile_s": round(compile_s, 1),
                               "max_abs_logp_diff": diff, "threads": torch.get_num_threads(),
                               "spread_eager": [round(min(e_all), 4), round(max(e_all), 4)],
                               "spread_compiled": [round(min(c_all), 4), round(max(c_all), 4)]}})
        print(f"{name:7s} eager {t_eager:.4f} s  compiled {t_comp:.4f} s  ratio {ratio:.2f}  "
              f"(first compiled call incl. compile {compile_s:.1f} s; max |Δ log π| {diff:.1e})", flush=True)
    # an RL run's micro-batches change length every step: the compiled model recompiles (then goes dynamic)
    lengths = [T - 8, T - 4, T, T + 4, T + 8, T - 6, T + 2]
    batches = [batch(tok, rows_, P, L, seed=i) for i, L in enumerate(lengths)]
    t_eager = sum(timed(lambda b=b: step(eager, b, True), 1)[0] for b in batches)
    torch._dynamo.reset()
    compiled = torch.compile(compiled_model)
    t_comp = sum(timed(lambda b=b: step(compiled, b, True), 1)[0] for b in batches)
    ratio = t_comp / t_eager
    out.append({"name": "update, lengths varying per step (compile included)", "unit": "s for 7 steps", "ours": t_comp,
                "peer": t_eager, "peer_name": "eager", "ratio": ratio, "target": f"<= {TARGET}", "meets": ratio <= TARGET,
                "params": {"rows": rows_, "prompt": P, "completions": lengths}})
    print(f"update over 7 steps of varying length: eager {t_eager:.2f} s  compiled {t_comp:.2f} s  ratio {ratio:.1f}",
          flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"rows -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
