"""GRPO against TRL's `GRPOTrainer` at the three shapes of issue 27 (item 3), and what each of our levers buys.

    python benchmarks/bench_grpo_shapes.py                   # the three shapes, levers at each: ~15 min on 2 cores
    python benchmarks/bench_grpo_shapes.py --shapes vocab32k --no-levers
    python benchmarks/bench_grpo_shapes.py --quick           # 1 timed step, 2 prompts: a smoke run

Shapes (both sides exactly as in `bench_grpo_trl.py`, whose docstring lists every setting: same weights, prompts,
G, optimizer, loss `grpo`, one optimizer step per rollout, no activation checkpointing):

- `arith`: the zoo's `tiny-arith` (char tokenizer, ~110 ids), 8 prompts × G 8, ≤ 48 tokens, exact-match reward;
- `long`: a random tiny Qwen2 (char tokenizer) whose LM head never emits EOS, 4 prompts × G 8, 256 tokens each;
- `vocab32k`: a random tiny Qwen2 with a 32,768-id byte-level BPE tokenizer built offline (`models.bpe`, prompts
  in its ChatML template), EOS never emitted, 8 prompts × G 8, 48 tokens.

The random models get the digit-share reward (`bench_grpo_trl.digit_share_task`; exact match would be 0
everywhere). Targets (issue 27): ours / TRL ≥ 2 in completion tokens/s and ≤ 0.8 in peak memory, at every shape.

Levers: each of our update's levers is turned off in turn (one more run of ours per lever and shape), and the row
gives that run against ours with the defaults: `skip_zero_advantage` (rows whose advantage is 0 everywhere leave
the update), `share_prompts` (each group's prompt runs once, its completions on its KV cache), `lean_activations`
(the SwiGLU MLPs and RMSNorms recompute their cheap intermediates in the backward, `models.lean`), `pack` (off by
default; its row turns it on: one padding-free row per prompt with its completions, `models.packing`), `logits_chunk`
(automatic: 256 completion tokens per LM-head chunk, no [B, T, V] logits, at vocabularies of 16,384 ids and
more; its row flips it: off at `vocab32k`, on elsewhere). Rows go to outputs/bench/grpo_trl.json.

Memory on CPU is the peak RSS increase, and by default that includes freed memory glibc keeps: its mmap threshold
grows with the tensors freed (up to 32 MiB), so a backward's [N, 512] activations come back to the heap, where
they stay in RSS until reused or trimmed. At `long` that retention is a third of the peak: in fresh processes
(one timed step) ours with lean activations peaked at +948 MiB RSS, without them +912, TRL +929; with
`--live-memory` (threshold fixed at 1 MiB for every run, so RSS follows live memory) +581, +729 and +667.
The lever's saving is real and the default RSS row hides it; `--live-memory` shows it.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import replace

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grpo_growth import full_length_model  # noqa: E402
from bench_grpo_trl import Settings, digit_share_task, fix_mmap_threshold, load_base, make_rows, memory_label, run_ours, run_trl  # noqa: E402

from workbench.rl import RLConfig  # noqa: E402
from workbench.rl.config import AUTO_LOGITS_CHUNK, resolve_logits_chunk  # noqa: E402
from workbench.rl.tasks import arithmetic_task  # noqa: E402
from workbench.utils import repo_root, resolve_device  # noqa: E402
from rows import write_rows  # noqa: E402  (benchmarks/rows.py: the script's folder is on sys.path)

TARGET_SPEED, TARGET_MEMORY = 2.0, 0.8
#: shape -> (prompts, G, max new tokens)
SHAPES = {"arith": (8, 8, 48), "long": (4, 8, 256), "vocab32k": (8, 8, 48)}
#: lever -> the RLConfig change of its run (each lever off; logits_chunk flipped from what auto picks, see `lever_change`)
LEVERS = {"skip_zero_advantage": ({"skip_zero_advantage": False}, "off"), "share_prompts": ({"share_prompts": False}, "off"),
          "lean_activations": ({"lean_activations": False}, "off"), "pack": ({"pack": True}, "on"), "logits_chunk": None}


def lever_change(lever: str, model) -> tuple[dict, str]:
    """The RLConfig change of a lever's run and its label. `logits_chunk` is automatic (`rl.config.resolve_logits_chunk`:
    on at large vocabularies): its run turns it off where auto turns it on, and on (256) where auto leaves it off."""
    if LEVERS[lever] is not None:
        return LEVERS[lever]
    auto_on = resolve_logits_chunk(RLConfig(), model).logits_chunk > 0
    return ({"logits_chunk": 0}, "off") if auto_on else ({"logits_chunk": AUTO_LOGITS_CHUNK}, "on")


def shape_setup(shape: str, seed: int):
    """(model, tokenizer, task, model label) of one shape."""
    if shape == "arith":
        model, tok = load_base(False, seed)
        return model, tok, arithmetic_task(), "tiny-arith"
    if shape == "long":
        model, tok = full_length_model(seed, max_positions=512)
        return model, tok, digit_share_task(), "random tiny Qwen2, no EOS"
    from workbench.models.bpe import bpe_tokenizer

    model, tok = full_length_model(seed, max_positions=512, tokenizer=bpe_tokenizer(32768, seed=seed))
    return model, tok, digit_share_task(tok), f"random tiny Qwen2, {len(tok)}-id BPE, no EOS"


def rate(r) -> float:
    return r.tokens / r.seconds


def run_shape(shape: str, s: Settings, device, seed: int, levers: bool, live: bool = False) -> list[dict]:
    """Warm-up (one step per side, discarded), then ours, TRL, and ours with each lever changed."""
    base, tok, task, label = shape_setup(shape, seed)
    run_ours(base, tok, task, replace(s, steps=0), device), run_trl(base, tok, task, replace(s, steps=0), device)
    ours, trl = run_ours(base, tok, task, s, device), run_trl(base, tok, task, s, device)
    meta = {"model": label, "device": str(device), "plain_update": False, "gradient_checkpointing": False,
            "threads": torch.get_num_threads(), "loadavg_1m": os.getloadavg()[0], "shape": shape,
            "memory": memory_label(device, live)}
    rows = make_rows(s, [ours], [trl], meta)
    rows[0].update(target=TARGET_SPEED, meets=bool(rows[0]["ratio"] >= TARGET_SPEED))
    rows[1].update(target=TARGET_MEMORY, meets=bool(rows[1]["ratio"] <= TARGET_MEMORY))
    print(f"{shape:<9} ours {rate(ours):8.1f} tok/s {ours.peak_mem_bytes / 2**20:7.1f} MiB | TRL {rate(trl):8.1f} tok/s "
          f"{trl.peak_mem_bytes / 2**20:7.1f} MiB | speed {rows[0]['ratio']:.2f}x (>= {TARGET_SPEED}: {rows[0]['meets']}) "
          f"memory {rows[1]['ratio']:.2f}x (<= {TARGET_MEMORY}: {rows[1]['meets']})", flush=True)
    for lever in (LEVERS if levers else ()):
        change, state = lever_change(lever, base)
        r = run_ours(base, tok, task, s, device, **change)
        speed, memory = rate(r) / rate(ours), r.peak_mem_bytes / max(ours.peak_mem_bytes, 1)
        rows.append({"name": f"lever {lever} {state} at {shape}",
                     "unit": "ratio to ours with the defaults", "change": change, "shape": shape,
                     "speed_ratio": speed, "memory_ratio": memory, "tokens_per_s": rate(r),
                     "peak_mib": r.peak_mem_bytes / 2**20})
        print(f"  {rows[-1]['name']:<36} speed {speed:5.2f}x  memory {memory:5.2f}x of the defaults", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="arith,long,vocab32k", help="comma-separated, among " + ", ".join(SHAPES))
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per run (one warm-up step more)")
    parser.add_argument("--no-levers", action="store_true", help="skip the lever-off runs")
    parser.add_argument("--quick", action="store_true", help="1 timed step, 2 prompts per step, levers skipped")
    parser.add_argument("--live-memory", action="store_true",
                        help="glibc mmap threshold fixed at 1 MiB for every run: peak RSS follows live memory (see above)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=os.path.join(repo_root(), "outputs", "bench", "grpo_trl.json"))
    args = parser.parse_args()
    shapes = [x.strip() for x in args.shapes.split(",") if x.strip()]
    unknown = [x for x in shapes if x not in SHAPES]
    if unknown or not shapes:
        raise SystemExit(f"--shapes {args.shapes!r}: unknown {unknown}; choose among {', '.join(SHAPES)}")
    if args.steps < 1:
        raise SystemExit(f"--steps must be >= 1, got {args.steps}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    device = resolve_device(args.device)
    live = args.live_memory and fix_mmap_threshold()
    rows = []
    for shape in shapes:
        prompts, G, length = SHAPES[shape]
        prompts = 2 if args.quick else prompts
        s = Settings(num_prompts=prompts, num_generations=G, max_new_tokens=length, steps=1 if args.quick else args.steps,
                     micro_batch_size=prompts * G, seed=args.seed)
        rows += run_shape(shape, s, device, args.seed, levers=not (args.no_levers or args.quick), live=live)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
