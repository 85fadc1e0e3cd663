"""How GRPO's cost grows: step time and peak memory against completion length and G, ours and TRL's
`GRPOTrainer`, in one process, with the fitted growth exponents (issue 27, item 4).

    python benchmarks/bench_grpo_growth.py                  # L = 64..512 at G 8, G = 4..32 at L 64, V = 128..32k
    python benchmarks/bench_grpo_growth.py --quick          # L = 32, 64; G = 4, 8; V = 128, 4096: a minute

Both sides run exactly as in `bench_grpo_trl.py` (same weights, prompts, G, optimizer, loss `grpo`, one optimizer
step per rollout, no activation checkpointing; its docstring lists every setting) on a random tiny Qwen2 whose LM
head gives EOS a −10⁴ bias, so every completion runs to `max_new_tokens` and the length axis is the real length.
A random model never answers right, so the exact-match reward would be 0 everywhere, every advantage 0, and our
update would skip every row (it leaves out zero-advantage rows): the reward here is the share of digits in the
completion (`digit_share`), which differs between any two completions, so both sides update on every row.
A third sweep widens the vocabulary (128 → 4,096 → 32,768 ids at length 64, G 8), the cost the [B × T × V] logits
of a real tokenizer add (item 3c's shape, without its BPE tokenizer: the extra ids are never sampled).
Per setting: the mean wall time of a timed optimizer step (sampling + update) and the peak memory increase of
the `train()` call (RSS on CPU, `max_memory_allocated` on CUDA).

Growth exponent: the least-squares slope b of log cost = a + b · log x over the sweep (x = completion length, or
G); b ≈ 1 is linear growth, b ≈ 2 quadratic (attention over the sequence, at lengths where it dominates). Rows go
to outputs/bench/grpo_growth.json, the figure to outputs/bench/grpo_growth.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grpo_trl import Settings, digit_share_task, run_ours, run_trl  # noqa: E402

from workbench.utils import repo_root, resolve_device, seed_everything  # noqa: E402


def full_length_model(seed: int, max_positions: int, vocab_size: int | None = None, tokenizer=None):
    """A random tiny Qwen2 (our char tokenizer) that never ends a completion: its tied LM head gets a bias of
    −10⁴ on EOS, so sampling and scoring see full-length completions on both sides. `vocab_size` widens the LM
    head (and the embedding) to that many ids; ids past the tokenizer's get the same −10⁴ bias, so they are never
    sampled but every logit, softmax and log-prob is computed over the full vocabulary, as for a real one.
    `tokenizer`: another tokenizer (e.g. `models.bpe.bpe_tokenizer(32768)`; None: our char tokenizer)."""
    from transformers import Qwen2ForCausalLM

    from workbench.models.tiny import tiny_qwen2_config
    from workbench.models.tokenizer import build_tokenizer

    seed_everything(seed)
    tok = tokenizer if tokenizer is not None else build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(max(len(tok), vocab_size or 0), max_positions=max_positions))
    for cfg in (model.config, model.generation_config):
        cfg.pad_token_id, cfg.eos_token_id = tok.pad_token_id, tok.eos_token_id
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    head.weight = model.lm_head.weight
    with torch.no_grad():
        head.bias.zero_()
        head.bias[tok.eos_token_id] = -1e4
        head.bias[len(tok):] = -1e4
    model.lm_head = head
    return model.eval(), tok


#: the sweeps and their x-axis labels
AXES = {"length": "completion length (tokens)", "G": "G (completions per prompt)", "vocab": "vocabulary size (LM-head ids)"}


def exponent(x, y) -> float:
    """Least-squares slope of log y on log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def measure(base, tok, task, s: Settings, device, logits_chunk: int = 0) -> dict:
    """One run per side (ours first), warm-up step excluded: seconds per timed step and peak MiB. `logits_chunk`:
    ours scores through `models.chunked` in chunks of that many completion tokens (0: full logits)."""
    out = {}
    ours = lambda *a: run_ours(*a, logits_chunk=logits_chunk)  # noqa: E731
    for side, fn in (("ours", ours), ("trl", run_trl)):
        r = fn(base, tok, task, s, device)
        out[side] = {"step_s": r.seconds / s.steps, "peak_mib": r.peak_mem_bytes / 2**20,
                     "tokens_per_step": r.tokens / s.steps}
    return out


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_used = [a for a in AXES if any(r["sweep"] == a for r in rows)]
    fig, axes = plt.subplots(2, len(axes_used), figsize=(4.5 * len(axes_used), 6.5), squeeze=False)
    for col, axis in enumerate(axes_used):
        sweep = [r for r in rows if r["sweep"] == axis]
        x = [r["x"] for r in sweep]
        for row, (metric, label) in enumerate((("step_s", "seconds per step"), ("peak_mib", "peak memory (MiB)"))):
            ax = axes[row, col]
            for side, color in (("ours", "#3B6FB6"), ("trl", "#D1495B")):
                y = [r[side][metric] for r in sweep]
                ax.loglog(x, y, "o-", color=color, label=f"{side} (exponent {exponent(x, y):.2f})", base=2)
            ax.set(xlabel=AXES[axis], ylabel=label)
            ax.legend(fontsize=8)
    fig.suptitle("GRPO cost growth, ours vs TRL (log-log; exponent = fitted slope)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="L = 32, 64 at G 4; G = 4, 8 at L 32; V = 128, 4096")
    parser.add_argument("--num-prompts", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2, help="timed optimizer steps per run (one warm-up step more)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweeps", default="length,G,vocab", help="which sweeps to run (comma-separated)")
    parser.add_argument("--logits-chunk", type=int, default=0,
                        help="ours: LM head in chunks of this many completion tokens, no [B, T, V] logits (0: off)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=os.path.join(repo_root(), "outputs", "bench", "grpo_growth.json"))
    args = parser.parse_args()
    if args.num_prompts < 1 or args.steps < 1:
        raise SystemExit(f"--num-prompts and --steps must be >= 1, got {args.num_prompts} and {args.steps}")
    lengths, gs = ([32, 64], [4, 8]) if args.quick else ([64, 128, 256, 512], [4, 8, 16, 32])
    vocabs = [128, 4096] if args.quick else [128, 4096, 32768]
    g_at_length, length_at_g = (4, 32) if args.quick else (8, 64)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    device = resolve_device(args.device)
    models = {v: full_length_model(args.seed, max_positions=max(lengths) + 64, vocab_size=v) for v in vocabs}
    tok = models[vocabs[0]][1]
    task = digit_share_task()
    mk = lambda G, L: Settings(args.num_prompts, G, L, args.steps, args.num_prompts * G, seed=args.seed)  # noqa: E731
    sweeps = args.sweeps.split(",")
    if not sweeps or any(w not in AXES for w in sweeps):
        raise SystemExit(f"--sweeps must list some of {', '.join(AXES)}, got {args.sweeps!r}")
    settings = [("length", L, mk(g_at_length, L), vocabs[0]) for L in lengths]
    settings += [("G", G, mk(G, length_at_g), vocabs[0]) for G in gs]
    settings += [("vocab", V, mk(g_at_length, length_at_g), V) for V in vocabs]
    settings = [st for st in settings if st[0] in sweeps]
    warm = Settings(args.num_prompts, 4, 16, 0, args.num_prompts * 4, seed=args.seed)
    base = models[vocabs[0]][0]
    run_ours(base, tok, task, warm, device), run_trl(base, tok, task, warm, device)  # first-use costs hit neither side
    rows, done = [], {}
    for sweep, x, s, vocab in settings:
        key = (s.num_generations, s.max_new_tokens, vocab)
        if key not in done:
            done[key] = measure(models[vocab][0], tok, task, s, device, args.logits_chunk)
        m = done[key]
        rows.append({"sweep": sweep, "x": x, "num_generations": s.num_generations, "max_new_tokens": s.max_new_tokens,
                     "vocab_size": models[vocab][0].config.vocab_size, "num_prompts": s.num_prompts, **m})
        print(f"{sweep:>6} {x:5d}: ours {m['ours']['step_s']:6.2f} s/step {m['ours']['peak_mib']:7.1f} MiB "
              f"({m['ours']['tokens_per_step']:.0f} tok) | TRL {m['trl']['step_s']:6.2f} s/step {m['trl']['peak_mib']:7.1f} MiB "
              f"({m['trl']['tokens_per_step']:.0f} tok)", flush=True)
    fits = {}
    for sweep in sweeps:
        part = [r for r in rows if r["sweep"] == sweep]
        for side in ("ours", "trl"):
            for metric in ("step_s", "peak_mib"):
                fits[f"{sweep} {side} {metric}"] = exponent([r["x"] for r in part], [r[side][metric] for r in part])
    print("\nfitted growth exponents (slope of log cost on log x):")
    for sweep in sweeps:
        print(f"  vs {sweep:<6}  step time: ours {fits[f'{sweep} ours step_s']:.2f}, TRL {fits[f'{sweep} trl step_s']:.2f}   "
              f"peak memory: ours {fits[f'{sweep} ours peak_mib']:.2f}, TRL {fits[f'{sweep} trl peak_mib']:.2f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    meta = {"device": str(device), "threads": torch.get_num_threads(), "loadavg_1m": os.getloadavg()[0],
            "model": "random tiny Qwen2 (hidden 256, 4 layers), EOS and ids past the tokenizer suppressed", "steps": args.steps,
            "ours_logits_chunk": args.logits_chunk}
    with open(args.out, "w") as f:
        json.dump({"rows": rows, "exponents": fits, "meta": meta}, f, indent=2)
    fig_path = os.path.splitext(args.out)[0] + ".png"
    plot(rows, fig_path)
    print(f"wrote {args.out} and {fig_path}")


if __name__ == "__main__":
    main()
