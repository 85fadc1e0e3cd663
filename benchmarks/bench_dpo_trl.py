"""DPO training throughput and peak memory: our preference trainer against TRL's `DPOTrainer`, in one process.

    python benchmarks/bench_dpo_trl.py                      # tiny-arith, batch 16 pairs, 10 timed steps, 3 repeats
    python benchmarks/bench_dpo_trl.py --quick --random-model   # seconds, no cached zoo model needed

Both sides train a fresh copy of the same weights (the zoo's `tiny-arith`, or a random tiny Qwen2) on the same
text-only pairs (prompt = an arithmetic question in our chat format, chosen = its reference chain, rejected = a
chain whose final answer is off by one), with loss `sigmoid`, β = 0.1, the same batch of pairs per step, learning
rate, AdamW betas (0.9, 0.95) on ours and TRL's default (0.9, 0.999) — the optimizer step is a negligible share of
a step — no weight decay, grad-norm clip 1, constant schedule, a frozen reference model recomputed every step on
both sides (TRL `precompute_ref_log_probs=False`; each side gets its reference copy before `train()`, so the
peak counts neither's construction), no activation checkpointing, one process. TRL's dataset is
exactly the pairs our trainer draws, in that order, so both process the same tokens; shuffling is off.

Measured per side: tokens per second of training wall time — prompt + chosen and prompt + rejected tokens (EOS
included, padding excluded) of every timed step — from the end of the first (warm-up) step to the end of the last;
and the peak memory of the whole `train()` call (`bench_grpo_trl.PeakMemory`: RSS growth on CPU, sampled every
10 ms; `max_memory_allocated` on CUDA). What differs by design: ours sends only the answer tokens' hidden states
through the LM head, in chunks under activation checkpointing (`models.chunked`; `--logits-chunk 0` turns this
lever off and materialises the [B, T, V] logits as before); ours scores chosen and rejected rows in one forward
of the policy and one of the reference, TRL does the same (its batch is [chosen; rejected]); TRL also computes
per-token entropy, mean logits and top-1 accuracy for its logs. `--pack` runs ours with `PreferenceConfig(pack=True)`:
each pair's prompt once, its chosen and rejected answers behind it in one padding-free row (`models.packing`;
measured 1.05× TRL against 0.96× without, memory unchanged at 1.30×, so off by default). `--precompute-reference`
turns on each side's own way of scoring the frozen reference once before the first step (ours: the pairs the steps
will draw, each once; TRL: every row of its dataset) and takes it off every step; that pass runs before the timed
window on both sides, so the rows compare the steps that follow (each run's `total_seconds` includes it).

Each side first runs once untimed (`--warmup`): the first run in a process (ours, in the first repeat) peaked up to 40 MiB
above the later runs. Rows go to outputs/bench/dpo_trl.json: throughput (ratio = ours / TRL, target ≥ 1.3; each side's tokens/s is the
median over its repeats, each repeat's rate and the spread are printed and saved) and peak memory (ours / TRL, the
largest peak of each side, target ≤ 1.0). `--live-memory` fixes glibc's mmap threshold for both sides so peak RSS
follows live memory (rows to dpo_trl_live.json): on 2026-12-04, with lean activations on, the default run measured
1.03× throughput and 1.11× memory (200 vs 181 MiB RSS), the live-memory run 1.05× and 0.80× (134 vs 169 MiB): the
default row's excess is heap the allocator keeps, not tensors.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grpo_trl import PeakMemory, _now, fix_mmap_threshold, load_base, memory_label  # noqa: E402

from workbench.models.tokenizer import format_prompt  # noqa: E402
from workbench.preference.pairs import PreferencePair  # noqa: E402
from workbench.preference.trainer import PreferenceConfig, step_pairs, train_preference  # noqa: E402
from workbench.tasks import arithmetic  # noqa: E402
from workbench.utils import repo_root  # noqa: E402


DEFAULT_OUT = os.path.join(repo_root(), "outputs", "bench", "dpo_trl.json")


@dataclass
class RunResult:
    side: str
    tokens: int
    seconds: float
    total_seconds: float
    peak_mem_bytes: int


def make_pairs(n: int, seed: int) -> list[PreferencePair]:
    """`n` text pairs: chosen = the reference chain of a 3-step problem, rejected = the chain with the answer off by one."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = arithmetic.make_problem(rng, 3, 1)
        wrong = p.cot.rsplit("answer:", 1)[0] + f"answer: {p.answer + 1}"
        out.append(PreferencePair(f"a{i}", None, format_prompt(p.question), p.cot, wrong))
    return out


def drawn_pairs(pairs: list[PreferencePair], batch: int, steps: int, seed: int) -> list[PreferencePair]:
    """The pairs our trainer draws at steps 0 … steps − 1 (`step_pairs`), flattened."""
    return [p for s in range(steps) for p in step_pairs(pairs, batch, seed, s)]


def count_tokens(tok, drawn: list[PreferencePair]) -> list[int]:
    """Per pair: tokens of prompt + chosen + EOS and prompt + rejected + EOS."""
    n = lambda text: len(tok(text, add_special_tokens=False)["input_ids"]) + 1  # noqa: E731
    return [n(p.prompt + p.chosen) + n(p.prompt + p.rejected) for p in drawn]


def run_ours(base, tok, pairs, args, device) -> RunResult:
    model, reference = copy.deepcopy(base).to(device), copy.deepcopy(base).to(device)
    stamps: list[float] = []
    cfg = PreferenceConfig(loss="sigmoid", beta=0.1, steps=args.steps + 1, batch_size=args.batch, lr=args.lr, seed=args.seed,
                           logits_chunk=args.logits_chunk, pack=args.pack,
                           precompute_reference=args.precompute_reference)
    start = time.perf_counter()
    with PeakMemory(device) as mem:
        train_preference(model, tok, pairs, cfg, reference=reference, on_log=lambda e: stamps.append(_now(device)))
    total = time.perf_counter() - start
    tokens = count_tokens(tok, drawn_pairs(pairs, args.batch, args.steps + 1, args.seed)[args.batch:])
    return RunResult("ours", sum(tokens), stamps[-1] - stamps[0], total, mem.peak)


def run_trl(base, tok, pairs, args, device) -> RunResult:
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    drawn = drawn_pairs(pairs, args.batch, args.steps + 1, args.seed)
    data = Dataset.from_dict({"prompt": [p.prompt for p in drawn], "chosen": [p.chosen for p in drawn],
                              "rejected": [p.rejected for p in drawn]})
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            stamps.append(_now(device))

    model = copy.deepcopy(base).to(device)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = DPOConfig(output_dir=tmp, report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True,
                        use_cpu=device.type == "cpu", bf16=False, fp16=False, seed=args.seed, data_seed=args.seed,
                        per_device_train_batch_size=args.batch, gradient_accumulation_steps=1, max_steps=args.steps + 1,
                        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                        max_grad_norm=1.0, beta=0.1, loss_type=["sigmoid"], precompute_ref_log_probs=args.precompute_reference,
                        gradient_checkpointing=False, dataloader_num_workers=0, max_length=None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(base).to(device).eval(), args=cfg, train_dataset=data,
                                 processing_class=tok, callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)
        trainer._get_train_sampler = lambda *a, **k: torch.utils.data.SequentialSampler(trainer.train_dataset)
        start = time.perf_counter()
        with PeakMemory(device) as mem:
            trainer.train()
        total = time.perf_counter() - start
    tokens = count_tokens(tok, drawn[args.batch:])
    return RunResult("trl", sum(tokens), stamps[-1] - stamps[0], total, mem.peak)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 timed steps of 4 pairs, 1 repeat")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per run (default 10; quick 3)")
    ap.add_argument("--batch", type=int, default=None, help="pairs per step (default 16; quick 4)")
    ap.add_argument("--repeats", type=int, default=None, help="runs per side, alternating order (default 3; quick 1)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs of each side before the repeats (default 1; "
                    "quick 0): the first run in a process, ours in the first repeat, peaked up to 40 MiB above the later ones")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--random-model", action="store_true", help="a random tiny Qwen2 instead of the cached tiny-arith")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--logits-chunk", type=int, default=1024,
                    help="ours: answer tokens per LM-head chunk (0: full [B, T, V] logits, the lever off)")
    ap.add_argument("--pack", action="store_true", help="ours: PreferenceConfig(pack=True), each prompt once with its "
                    "chosen and rejected answers in one padding-free row")
    ap.add_argument("--precompute-reference", action="store_true", help="both sides score the frozen reference once "
                    "before the first step (ours: PreferenceConfig(precompute_reference=True); TRL: precompute_ref_log_probs)")
    ap.add_argument("--live-memory", action="store_true", help="fix glibc's mmap threshold at 1 MiB for both sides, so "
                    "peak RSS follows live memory rather than freed heap the allocator keeps (`bench_grpo_trl.fix_mmap_threshold`)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="rows (with --precompute-reference: dpo_trl_precompute.json)")
    args = ap.parse_args()
    args.steps = args.steps or (3 if args.quick else 10)
    args.batch = args.batch or (4 if args.quick else 16)
    repeats = args.repeats or (1 if args.quick else 3)
    if args.threads:
        torch.set_num_threads(args.threads)
    live = args.live_memory and fix_mmap_threshold()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    base, tok = load_base(args.random_model, args.seed)
    pairs = make_pairs(max(4 * args.batch, 64), args.seed)
    for _ in range(args.warmup if args.warmup is not None else (0 if args.quick else 1)):
        for fn in (run_ours, run_trl):  # one-time costs of a process (kernel set-up, first allocations) land here
            fn(base, tok, pairs, args, device)
    ours, trl = [], []
    for r in range(repeats):
        order = (run_ours, run_trl) if r % 2 == 0 else (run_trl, run_ours)
        for fn in order:
            res = fn(base, tok, pairs, args, device)
            (ours if res.side == "ours" else trl).append(res)
            print(f"{res.side}: {res.tokens / res.seconds:.0f} tok/s, peak {res.peak_mem_bytes / 2**20:.0f} MiB", flush=True)
    import trl as trl_pkg

    rates = lambda runs: [x.tokens / x.seconds for x in runs]  # noqa: E731
    tps = lambda runs: statistics.median(rates(runs))  # noqa: E731  (one slow repeat cannot move a median of 3)
    mem = lambda runs: max(x.peak_mem_bytes for x in runs) / 2**20  # noqa: E731
    model = "random tiny Qwen2" if args.random_model else "tiny-arith"
    params = {"precompute_reference": args.precompute_reference, "steps": args.steps, "batch": args.batch,
              "repeats": repeats, "lr": args.lr, "model": model, "memory": memory_label(device, live),
              "device": str(device), "ours_runs": [asdict(x) for x in ours], "trl_runs": [asdict(x) for x in trl],
              "throughput_runs": {"ours": rates(ours), "trl": rates(trl)}, "throughput_is": "median over repeats"}
    peer = f"trl {trl_pkg.__version__} DPOTrainer"
    t_o, t_t, m_o, m_t = tps(ours), tps(trl), mem(ours), mem(trl)
    if args.precompute_reference:
        model += ", reference precomputed"
        if args.out == DEFAULT_OUT:
            args.out = DEFAULT_OUT.replace("dpo_trl.json", "dpo_trl_precompute.json")
    if live:
        model += ", live memory"
        if args.out == DEFAULT_OUT:
            args.out = DEFAULT_OUT.replace("dpo_trl.json", "dpo_trl_live.json")
    rows = [{"name": f"DPO train throughput batch={args.batch} {model}", "unit": "tokens/s", "ours": t_o, "peer": t_t,
             "peer_name": peer, "ratio": t_o / t_t, "target": 1.3, "meets": bool(t_o / t_t >= 1.3), "params": params},
            {"name": f"DPO peak memory batch={args.batch} {model}", "unit": f"MiB ({memory_label(device, live)})", "ours": m_o, "peer": m_t, "peer_name": peer, "ratio": m_o / max(m_t, 1e-9),
             "target": 1.0, "meets": bool(m_o <= m_t), "params": params}]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    for side, runs in (("ours", ours), ("TRL", trl)):
        r = rates(runs)
        print(f"{side} tokens/s per repeat: {', '.join(f'{x:.0f}' for x in r)} (median {statistics.median(r):.0f}, "
              f"spread {max(r) / min(r):.2f}x)")
    for row in rows:
        print(f"{row['name']}: ours {row['ours']:.1f} vs TRL {row['peer']:.1f} {row['unit']} -> ratio {row['ratio']:.2f} "
              f"(target {row['target']}, {'meets' if row['meets'] else 'misses'})")


if __name__ == "__main__":
    main()
