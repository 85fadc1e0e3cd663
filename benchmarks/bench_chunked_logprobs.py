"""Chunked log-probs (`workbench.models.chunked`) against full logits: peak memory and time of scoring + backward.

    python benchmarks/bench_chunked_logprobs.py                  # V = 32768, 16 rows x (32 prompt + 256 completion)
    python benchmarks/bench_chunked_logprobs.py --quick          # V = 4096, 4 x (8 + 32): seconds

One process, one random tiny Qwen2 (hidden 64, 2 layers) with a `--vocab`-token vocabulary. Each side runs
`models.scoring.completion_logprobs` (with entropy, as the RL update's first mini-batch does) on the same ids and
masks (a quarter of the completion positions padded), then the backward of Σ log π: full logits (`chunk=None`:
the [B, T, V] logits, their float32 log-softmax and its gradient) against `chunk` rows per LM-head call under
activation checkpointing. Peak memory is the growth over the call (`bench_grpo_trl.PeakMemory`: RSS sampled every
10 ms on CPU, `max_memory_allocated` on CUDA); time is the median of `--repeats`. The log-probs of the two sides
are compared too (max |Δ|). Rows go to outputs/bench/chunked_logprobs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grpo_trl import PeakMemory  # noqa: E402

from workbench.models.scoring import completion_logprobs  # noqa: E402
from workbench.utils import repo_root  # noqa: E402


def model_of(vocab: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=False)
    return Qwen2ForCausalLM(cfg)


def run(model, batch, chunk):
    model.zero_grad(set_to_none=True)
    logp, _ = completion_logprobs(model, *batch, with_entropy=True, chunk=chunk)
    logp.sum().backward()
    return logp.detach()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--vocab", type=int, default=None, help="vocabulary size (default 32768; quick 4096)")
    ap.add_argument("--rows", type=int, default=None, help="completions (default 16; quick 4)")
    ap.add_argument("--tokens", type=int, default=None, help="completion length (default 256; quick 32)")
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(repo_root(), "outputs", "bench", "chunked_logprobs.json"))
    args = ap.parse_args(argv)
    V = args.vocab or (4096 if args.quick else 32768)
    B, T, P = args.rows or (4 if args.quick else 16), args.tokens or (32 if args.quick else 256), 8 if args.quick else 32
    device = torch.device("cpu")
    model = model_of(V).to(device).train()
    g = torch.Generator().manual_seed(1)
    prompt_ids, completion_ids = torch.randint(0, V, (B, P), generator=g), torch.randint(0, V, (B, T), generator=g)
    completion_mask = torch.ones(B, T, dtype=torch.long)
    completion_mask[: B // 2, 3 * T // 4:] = 0  # padding: a quarter of the positions of half the rows
    batch = (prompt_ids, torch.ones_like(prompt_ids), completion_ids, completion_mask)
    rows, out = [], {}
    for name, chunk in (("full logits", None), (f"chunked ({args.chunk})", args.chunk)):
        run(model, batch, chunk)  # warm-up
        peaks, times = [], []
        for _ in range(args.repeats):
            with PeakMemory(device) as mem:
                t0 = time.perf_counter()
                out[name] = run(model, batch, chunk)
                times.append(time.perf_counter() - t0)
            peaks.append(mem.peak)
        rows.append({"side": name, "peak_mib": statistics.median(peaks) / 2**20, "seconds": statistics.median(times),
                     "seconds_min_max": [min(times), max(times)]})
        print(f"{name:16s} peak {rows[-1]['peak_mib']:8.1f} MiB   {rows[-1]['seconds']:.3f} s "
              f"({min(times):.3f}-{max(times):.3f})")
    full, part = out["full logits"], out[f"chunked ({args.chunk})"]
    diff = float((full - part).abs().max())
    ratio = {"memory_chunked_over_full": rows[1]["peak_mib"] / max(rows[0]["peak_mib"], 1e-9),
             "time_chunked_over_full": rows[1]["seconds"] / rows[0]["seconds"], "max_abs_logp_diff": diff}
    print(f"V={V}, {B} x ({P} + {T}): memory ratio {ratio['memory_chunked_over_full']:.3f}, time ratio "
          f"{ratio['time_chunked_over_full']:.3f}, max |Δ log p| {diff:.2e} "
          f"(a [B, T, V] float32 tensor is {B * T * V * 4 / 2**20:.0f} MiB)")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"vocab": V, "rows": B, "prompt": P, "tokens": T, "chunk": args.chunk, "sides": rows, **ratio}, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
