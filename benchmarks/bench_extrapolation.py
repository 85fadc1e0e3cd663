"""Cost of extrapolated decoding (RL + base model in lockstep) vs decoding with the RL model alone.

Target (issue 4): extrapolated decoding costs ≤ 2.2× single-model greedy decoding for the same
number of tokens; two forward passes per token make 2× the floor.

    python benchmarks/bench_extrapolation.py            # full: several batch sizes / lengths
    python benchmarks/bench_extrapolation.py --quick    # seconds-long sanity run
    python benchmarks/bench_extrapolation.py --threads 0   # torch's default thread count (noisy when shared)

Rows (all in one process, same prompts, exactly N new tokens, no EOS):
- `extrapolated_generate` vs `rl.generate(do_sample=False)` (transformers, RL model alone);
- `ExtrapolationLogitsProcessor` inside `rl.generate` vs the same plain `rl.generate`;
- `extrapolated_generate` vs our own lockstep loop with the RL model alone (same loop, so the
  ratio isolates the cost of the second model).
Writes outputs/bench/extrapolation.json (list of rows, keys as in the design doc).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from workbench.analysis.extrapolation import ExtrapolationLogitsProcessor, extrapolated_generate, lockstep_decode
from workbench.utils import repo_root, resolve_device, seed_everything

TARGET = 2.2
PAD = 0


def tiny_lm(seed: int, hidden: int, layers: int, vocab: int, device) -> Qwen2ForCausalLM:
    """A char-level-sized Qwen2 (the design's 3M-parameter arithmetic model at hidden 256, 4 layers)."""
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 3, num_hidden_layers=layers,
                      num_attention_heads=max(hidden // 64, 2), num_key_value_heads=max(hidden // 128, 1),
                      max_position_embeddings=2048, tie_word_embeddings=True, eos_token_id=None, pad_token_id=PAD)
    return Qwen2ForCausalLM(cfg).eval().to(device)


def prompts(batch: int, length: int, vocab: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    for r in range(batch):  # left padding of varied length
        pad = int(torch.randint(0, length // 2, (1,), generator=g))
        ids[r, :pad], mask[r, :pad] = PAD, 0
    return ids.to(device), mask.to(device)


def timed(fns: dict, repeats: int, device) -> dict[str, float]:
    """Best wall time (s) of each function over `repeats` interleaved rounds, after one warm-up each.

    Interleaving (A, B, C, A, B, C, ...) spreads load from other processes evenly over the rivals,
    and the minimum discards rounds slowed by them (noise only ever adds time).
    """
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    return {name: min(v) for name, v in times.items()}


def run(quick: bool) -> list[dict]:
    seed_everything(0)
    device = resolve_device("auto")
    hidden, layers, vocab = (128, 2, 110) if quick else (256, 4, 110)
    rl, base = tiny_lm(0, hidden, layers, vocab, device), tiny_lm(1, hidden, layers, vocab, device)
    settings = [(2, 16, 16)] if quick else [(1, 32, 64), (8, 32, 128), (32, 32, 64)]
    repeats = 1 if quick else 5
    lam = 0.5
    rows = []
    for batch, plen, n in settings:
        ids, mask = prompts(batch, plen, vocab, device)
        kw = dict(max_new_tokens=n, eos_token_id=None, pad_token_id=PAD)

        def hf_alone():
            return rl.generate(ids, attention_mask=mask, do_sample=False, **kw)

        def hf_processor():
            proc = ExtrapolationLogitsProcessor(base, lam, attention_mask=mask)
            return rl.generate(ids, attention_mask=mask, do_sample=False, logits_processor=[proc], **kw)

        def ours():
            return extrapolated_generate(rl, base, ids, mask, lam=lam, **kw)

        def loop_alone():
            return lockstep_decode([rl], ids, mask, lambda i, lg, f: lg[0].argmax(-1), **kw)

        out = ours().new_tokens
        assert out.shape == (batch, n), f"expected {n} new tokens, got {tuple(out.shape)}"
        t = timed({"hf_alone": hf_alone, "hf_processor": hf_processor, "ours": ours, "loop_alone": loop_alone},
                  repeats, device)
        params = {"batch": batch, "prompt_len": plen, "new_tokens": n, "hidden": hidden, "layers": layers,
                  "vocab": vocab, "lam": lam, "device": str(device), "threads": torch.get_num_threads(),
                  "repeats": repeats}
        for name, ours_key, peer_key, peer_name in [
            ("extrapolated_generate", "ours", "hf_alone", "transformers generate, RL model alone (greedy)"),
            ("ExtrapolationLogitsProcessor", "hf_processor", "hf_alone",
             "transformers generate, RL model alone (greedy)"),
            ("extrapolated_generate vs same loop", "ours", "loop_alone", "workbench lockstep loop, RL model alone"),
        ]:
            ratio = t[ours_key] / t[peer_key]
            rows.append({"name": f"{name} B={batch} N={n}", "unit": "s", "ours": round(t[ours_key], 5),
                         "peer": round(t[peer_key], 5), "peer_name": peer_name, "ratio": round(ratio, 3),
                         "target": TARGET, "meets": bool(ratio <= TARGET), "params": params})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny model, one short setting, one repeat")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads; 1 (default) keeps ratios stable on a shared machine, 0 = torch's choice")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rows = run(args.quick)
    print(f"{'name':<52} {'ours (s)':>9} {'peer (s)':>9} {'ratio':>6}  target ≤ {TARGET}")
    for r in rows:
        print(f"{r['name']:<52} {r['ours']:>9.4f} {r['peer']:>9.4f} {r['ratio']:>6.2f}  "
              f"{'meets' if r['meets'] else 'MISSES'}")
    out_dir = os.path.join(repo_root(), "outputs", "bench")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "extrapolation.json")
    with open(path, "w") as f:
        json.dump(rows, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
