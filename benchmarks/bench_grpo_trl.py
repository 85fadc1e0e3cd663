"""GRPO training throughput and peak memory: our trainer against TRL's `GRPOTrainer`, in one process.

    python benchmarks/bench_grpo_trl.py                      # tiny-arith, 8 prompts x G=8, 48 tokens, 6 timed steps
    python benchmarks/bench_grpo_trl.py --threads 1          # one torch thread: steadier on a shared 2-core box
    python benchmarks/bench_grpo_trl.py --quick              # 2 timed steps, 4 prompts x G=4, 32 tokens: seconds
    python benchmarks/bench_grpo_trl.py --quick --random-model   # no cached zoo model needed (reward: digit share)

Both sides train a fresh copy of the same weights (the zoo's `tiny-arith`, or with `--random-model` a
randomly initialised tiny Qwen2 from `tiny_qwen2_config`) on the same arithmetic prompts (step s uses
the problems our trainer draws at step s, fed to TRL in that order with shuffling off, as plain
strings in our chat format so TRL applies no chat template), with the same G, prompts per step, max
completion length, temperature 1, top-p 1, learning rate, AdamW betas (0.9, 0.99), no weight decay,
grad-norm clip 1, constant schedule, no KL (β = 0), loss `grpo` (TRL `loss_type="grpo"`: sequence
mean of token means; group z-scored advantages), μ = 1, and one optimizer step per rollout: TRL's
`gradient_accumulation_steps = steps_per_generation = N / micro`, our `micro_batch_size = micro`,
N = prompts × G. The reward is our task's exact-match reward wrapped in TRL's signature.

Measured per side: completion tokens (EOS included, padding excluded; ours from `history[i]
["completion_tokens"]`, TRL's from `completion_ids` handed to its reward function, checked against its
logged `completions/mean_length`) per second of training wall time, timed from the end of the first
(warm-up) step to the end of the last, so model setup and first-call costs are excluded; and peak
memory over the whole `train()` call: on CPU the increase of the process RSS over its value at the
call's start, sampled every 10 ms by a background thread (after `gc.collect()` + `malloc_trim(0)` so
memory freed by the previous run does not hide this one's growth); on CUDA `max_memory_allocated`
minus the memory allocated at the start. The sides run `--repeats` times in alternating order
(ours, TRL, TRL, ours, ...); throughput = all timed tokens / all timed seconds, memory = the largest peak.

Both run without activation checkpointing by default, so they do the same compute (TRL's own default
is `gradient_checkpointing=True`; `--gradient-checkpointing` turns it on for both, ours through HF's
`model.gradient_checkpointing_enable()`, which acts in train mode, i.e. in our update only). Before the
timed runs, each side trains one step once, discarded, so imports and first-use costs hit neither.
What differs by design (and is part of what is measured): TRL samples with `model.generate`, we with
our KV-cache decode loop (finished rows leave the batch and the cache); with μ = 1 neither side runs a
separate old-log-prob forward (the update's forward gives log π_old); and our update does less work
for the same gradient: it leaves out the rows whose advantage is 0 on every token (all-equal groups:
about half of them on tiny-arith; `tests/rl/test_trainer.py` checks the update is unchanged), runs
each group's prompt once with its completions on the prompt's KV cache (`tests/models/
test_generation.py` checks log-probs and gradients), and our sampler prefills each prompt once.
`--plain-update` turns the first two off (every row, every prompt copy), to show what they are worth.

Rows go to outputs/bench/grpo_trl.json: throughput (ratio = ours / TRL, target ≥ 1.5) and peak memory
(ratio = ours / TRL, target ≤ 1.0: `meets` when ratio ≤ target).
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import os
import random
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field, replace

import torch

from workbench.tasks.base import RewardSpec
from workbench.tasks.base import Task as RLTask
from workbench.rl.tasks import arithmetic_task
from workbench.rl import RLConfig, train
from workbench.utils import repo_root, resolve_device, seed_everything
from rows import write_rows  # noqa: E402  (benchmarks/rows.py: the script's folder is on sys.path)


@dataclass
class Settings:
    """One benchmark setting, shared by both sides."""

    num_prompts: int
    num_generations: int
    max_new_tokens: int
    steps: int  # timed optimizer steps (one warm-up step more is run, untimed)
    micro_batch_size: int
    lr: float = 1e-5
    seed: int = 0

    @property
    def rollout_size(self) -> int:
        return self.num_prompts * self.num_generations


@dataclass
class RunResult:
    """One training run of one side."""

    side: str
    tokens: int  # completion tokens in the timed steps
    seconds: float  # wall time of the timed steps
    total_seconds: float  # the whole train() call, setup and warm-up included
    peak_mem_bytes: int
    reward_mean: float
    step_tokens: list[int] = field(default_factory=list)


class PeakMemory:
    """Peak memory growth of this process during a `with` block (bytes, in `.peak`).

    CPU: RSS sampled every `interval` s by a daemon thread, minus the RSS at entry (the kernel's
    high-water mark cannot be reset, hence the sampling; a spike shorter than the interval can be
    missed). CUDA: `torch.cuda.max_memory_allocated` minus the allocation at entry."""

    def __init__(self, device: torch.device, interval: float = 0.01):
        import psutil  # an accelerate dependency

        self.device, self.interval, self.peak = device, interval, 0
        self._stop = threading.Event()
        self._process = psutil.Process()

    def _rss(self) -> int:
        return self._process.memory_info().rss

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._rss())
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            _malloc_trim()
            self._base = self._max = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> bool:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self._base
        else:
            self._stop.set()
            self._thread.join()
            self._max = max(self._max, self._rss())
            self.peak = self._max - self._base
        return False


LIVE_MMAP_THRESHOLD = 1 << 20


def fix_mmap_threshold() -> bool:
    """Make the process's peak RSS follow its live memory: glibc `mallopt(M_MMAP_THRESHOLD, LIVE_MMAP_THRESHOLD)`
    serves every allocation of that many bytes or more with its own mmap, unmapped when freed, and turns off the
    threshold's dynamic growth (which otherwise lets freed tensors of up to 32 MiB stay in the heap, where they
    count in RSS until reused). Set once, before either side runs: it applies to both. Returns False where
    this is not glibc (then RSS includes freed heap memory, as by default)."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, LIVE_MMAP_THRESHOLD))  # M_MMAP_THRESHOLD = -3
    except (OSError, AttributeError):
        return False


def memory_label(device: torch.device, live: bool) -> str:
    """What the memory rows measure on `device` (`live`: `fix_mmap_threshold` is in effect)."""
    if device.type == "cuda":
        return "CUDA max_memory_allocated increase"
    return f"peak RSS increase, glibc mmap threshold fixed at {LIVE_MMAP_THRESHOLD >> 20} MiB" if live else "peak RSS increase"


def _malloc_trim() -> None:
    """Return freed heap memory to the OS (glibc only; a no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def load_base(random_model: bool, seed: int):
    """(model, tokenizer): the zoo's tiny-arith, or a random tiny Qwen2 with our char tokenizer."""
    if not random_model:
        from workbench.models.zoo import load_model

        model, tok = load_model("tiny-arith", device="cpu", dtype="float32", train_if_missing=False)
        return model, tok
    from transformers import Qwen2ForCausalLM

    from workbench.models.tiny import tiny_qwen2_config
    from workbench.models.tokenizer import build_tokenizer

    seed_everything(seed)
    tok = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok)))
    for cfg in (model.config, model.generation_config):
        cfg.pad_token_id, cfg.eos_token_id = tok.pad_token_id, tok.eos_token_id
    return model.eval(), tok


def digit_share(completion: str, problem) -> float:
    """The random-model reward: the fraction of the completion's characters that are digits (0 when empty)."""
    return sum(c.isdigit() for c in completion) / max(1, len(completion))


def digit_share_task(tokenizer=None) -> RLTask:
    """Arithmetic prompts rewarded by `digit_share`. A random model never answers right, so exact match would give
    every completion 0, every advantage 0, and our update (which leaves zero-advantage rows out) nothing to do:
    the comparison would time our sampler against TRL's sampler + update. Two completions almost never share a
    digit share, so both sides update on every row."""
    return replace(arithmetic_task(tokenizer=tokenizer), rewards=[RewardSpec("digit_share", digit_share)])


def step_problems(task: RLTask, s: Settings, total_steps: int) -> list:
    """The problems our trainer draws, step by step (its rng is `Random(f"{seed}/{step}/{rank}")`), flattened."""
    return [p for step in range(total_steps) for p in task.sample(s.num_prompts, random.Random(f"{s.seed}/{step}/0"))]


def run_ours(base, tok, task: RLTask, s: Settings, device: torch.device, gradient_checkpointing: bool = False,
             plain_update: bool = False, **config) -> RunResult:
    """Train a copy of `base` with our trainer for 1 + `s.steps` steps (`config`: further RLConfig fields, e.g.
    `logits_chunk`)."""
    from accelerate import Accelerator

    model = copy.deepcopy(base).to(device)
    if gradient_checkpointing:  # RLConfig has no knob: HF's switch acts in train mode (our update), not in sampling
        model.gradient_checkpointing_enable()
    cfg = RLConfig(loss="grpo", advantage="grpo", num_prompts=s.num_prompts, num_generations=s.num_generations,
                   max_new_tokens=s.max_new_tokens, temperature=1.0, top_p=1.0, lr=s.lr, weight_decay=0.0,
                   grad_clip=1.0, micro_batch_size=s.micro_batch_size, steps=s.steps + 1, seed=s.seed,
                   kl_coef=0.0, progress=False,
                   **{"skip_zero_advantage": not plain_update, "share_prompts": not plain_update, **config})
    stamps: list[float] = []
    start = time.perf_counter()
    with PeakMemory(device) as mem:
        result = train(model, tok, task, cfg, accelerator=Accelerator(cpu=device.type == "cpu"),
                       on_step=lambda m: stamps.append(_now(device)))
    total = time.perf_counter() - start
    step_tokens = [int(h["completion_tokens"]) for h in result.history]
    rewards = [h["reward_mean"] for h in result.history[1:]] or [float("nan")]
    return RunResult("ours", sum(step_tokens[1:]), stamps[-1] - stamps[0], total, mem.peak,
                     sum(rewards) / len(rewards), step_tokens)


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def trl_reward(task: RLTask, problems: list, counts: list[int], seen: list[int]):
    """Our task's weighted reward in TRL's signature `fn(prompts, completions, completion_ids, **columns)`;
    also records the completion tokens of each call (one call per generation batch)."""

    def correct(prompts, completions, completion_ids, problem_index, **_) -> list[float]:
        counts.append(sum(len(ids) for ids in completion_ids))
        seen.extend(problem_index)
        return [sum(spec.weight * float(spec.fn(c, problems[i])) for spec in task.rewards)
                for c, i in zip(completions, problem_index)]

    return correct


def run_trl(base, tok, task: RLTask, s: Settings, device: torch.device, gradient_checkpointing: bool = False) -> RunResult:
    """Train a copy of `base` with TRL's GRPOTrainer for 1 + `s.steps` steps, configured like ours."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    total_steps = s.steps + 1
    problems = step_problems(task, s, total_steps)
    dataset = Dataset.from_dict({"prompt": [task.prompt(p) for p in problems], "problem_index": list(range(len(problems)))})
    counts: list[int] = []
    seen: list[int] = []
    stamps: list[float] = []
    history: list[dict] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append(_now(device))

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs:
                history.append(dict(logs))

    model = copy.deepcopy(base).to(device)
    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(
            output_dir=tmp, report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True,
            use_cpu=device.type == "cpu", bf16=False, fp16=False, seed=s.seed, data_seed=s.seed,
            per_device_train_batch_size=s.micro_batch_size,
            gradient_accumulation_steps=s.rollout_size // s.micro_batch_size,  # = steps_per_generation (its default)
            num_generations=s.num_generations, max_completion_length=s.max_new_tokens,
            temperature=1.0, top_p=1.0, top_k=0, num_iterations=1, beta=0.0, loss_type="grpo",
            scale_rewards="group", epsilon=0.2, learning_rate=s.lr, lr_scheduler_type="constant", warmup_steps=0,
            adam_beta1=0.9, adam_beta2=0.99, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
            max_steps=total_steps, shuffle_dataset=False, dataloader_num_workers=0, log_completions=False,
            gradient_checkpointing=gradient_checkpointing,  # TRL's own default is True; ours has no such knob
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = GRPOTrainer(model=model, reward_funcs=trl_reward(task, problems, counts, seen), args=args,
                                  train_dataset=dataset, processing_class=tok, callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # it prints every log dict (we keep them in `history`)
        start = time.perf_counter()
        with PeakMemory(device) as mem:
            trainer.train()
        total = time.perf_counter() - start
    if len(counts) != total_steps or len(stamps) != total_steps:
        raise SystemExit(f"TRL generated {len(counts)} times over {len(stamps)} optimizer steps, expected {total_steps}: "
                         "the one-rollout-per-step configuration did not hold")
    expected = [i for i in range(len(problems)) for _ in range(s.num_generations)]
    if sorted(seen) != expected:
        raise SystemExit("TRL saw different prompts than ours: the prompt feed is misconfigured")
    logged = [round(h["completions/mean_length"] * s.rollout_size) for h in history]
    if logged != counts:
        raise SystemExit(f"TRL's logged completion lengths {logged} disagree with the counted tokens {counts}")
    rewards = [h["reward"] for h in history[1:]] or [float("nan")]
    return RunResult("trl", sum(counts[1:]), stamps[-1] - stamps[0], total, mem.peak, sum(rewards) / len(rewards), counts)


def make_rows(s: Settings, ours: list[RunResult], trl: list[RunResult], meta: dict) -> list[dict]:
    """Two rows: throughput (ours / TRL ≥ 1.5) and peak memory (ours / TRL ≤ 1)."""
    import trl as trl_pkg

    tps = lambda runs: sum(r.tokens for r in runs) / sum(r.seconds for r in runs)  # noqa: E731
    mem = lambda runs: max(r.peak_mem_bytes for r in runs) / 2**20  # noqa: E731
    params = {**asdict(s), **meta, "warmup_steps": 1, "repeats": len(ours),
              "ours_runs": [asdict(r) for r in ours], "trl_runs": [asdict(r) for r in trl]}
    peer = f"trl {trl_pkg.__version__} GRPOTrainer"
    setting = f"G={s.num_generations} prompts={s.num_prompts} max_new={s.max_new_tokens} {meta['model']}"
    t_ours, t_trl, m_ours, m_trl = tps(ours), tps(trl), mem(ours), mem(trl)
    return [
        {"name": f"GRPO train throughput {setting}", "unit": "completion tokens/s", "ours": t_ours, "peer": t_trl,
         "peer_name": peer, "ratio": t_ours / t_trl, "target": 1.5, "meets": bool(t_ours / t_trl >= 1.5), "params": params},
        {"name": f"GRPO peak memory {setting}", "unit": f"MiB ({meta['memory']})", "ours": m_ours, "peer": m_trl,
         "peer_name": peer, "ratio": m_ours / max(m_trl, 1e-9), "target": 1.0, "meets": bool(m_ours <= m_trl),
         "params": {**params, "target_is": "upper bound: meets when ours / TRL <= 1"}},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 timed steps of 4 prompts x G=4, 32 tokens, 1 repeat")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps per run (default 6; quick 2)")
    parser.add_argument("--num-prompts", type=int, default=None, help="prompts per step (default 8; quick 4)")
    parser.add_argument("--num-generations", type=int, default=None, help="G (default 8; quick 4)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="max completion length (default 48; quick 32)")
    parser.add_argument("--micro-batch-size", type=int, default=None,
                        help="rows per forward/backward on both sides (default: the whole rollout)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per side, alternating order (default 2; quick 1)")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random-model", action="store_true", help="a random tiny Qwen2 instead of the cached tiny-arith")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="activation checkpointing on both sides (TRL's default; ours via HF's model switch)")
    parser.add_argument("--plain-update", action="store_true",
                        help="ours runs every row and every prompt copy through the update, as TRL does "
                             "(RLConfig skip_zero_advantage=False, share_prompts=False)")
    parser.add_argument("--live-memory", action="store_true",
                        help="fix glibc's mmap threshold at 1 MiB for both sides, so peak RSS follows live memory "
                             "rather than freed heap the allocator keeps (`fix_mmap_threshold`)")
    parser.add_argument("--out", default=os.path.join(repo_root(), "outputs", "bench", "grpo_trl.json"))
    args = parser.parse_args()
    live = args.live_memory and fix_mmap_threshold()
    pick = lambda value, full, quick: value if value is not None else (quick if args.quick else full)  # noqa: E731
    num_prompts, G = pick(args.num_prompts, 8, 4), pick(args.num_generations, 8, 4)
    micro = args.micro_batch_size or num_prompts * G
    s = Settings(num_prompts=num_prompts, num_generations=G, max_new_tokens=pick(args.max_new_tokens, 48, 32),
                 steps=pick(args.steps, 6, 2), micro_batch_size=micro, lr=args.lr, seed=args.seed)
    repeats = pick(args.repeats, 2, 1)
    for name in ("num_prompts", "num_generations", "max_new_tokens", "steps", "micro_batch_size"):
        if getattr(s, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(s, name)}")
    if s.num_generations < 2:
        raise SystemExit(f"--num-generations must be >= 2 for group advantages, got {s.num_generations}")
    if s.rollout_size % micro:
        raise SystemExit(f"--micro-batch-size {micro} must divide prompts x G = {s.rollout_size}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' gradient_checkpointing renames, per call
    device = resolve_device(args.device)
    load_start = os.getloadavg()[0]  # other processes share the cores: the load goes next to the numbers
    base, tok = load_base(args.random_model, args.seed)
    task = digit_share_task() if args.random_model else arithmetic_task()
    # A one-step run of each side first, discarded: imports, kernel and allocator first-use costs
    # would otherwise land on whichever side runs first.
    warm = replace(s, steps=0)
    gc_on = args.gradient_checkpointing
    plain = args.plain_update
    run_ours(base, tok, task, warm, device, gc_on, plain), run_trl(base, tok, task, warm, device, gc_on)
    ours, trl = [], []
    for r in range(repeats):
        for side in (("ours", "trl") if r % 2 == 0 else ("trl", "ours")):
            res = run_ours(base, tok, task, s, device, gc_on, plain) if side == "ours" else run_trl(base, tok, task, s, device, gc_on)
            (ours if side == "ours" else trl).append(res)
            print(f"  run {r + 1} {side:>4}: {res.tokens:6d} tokens in {res.seconds:7.2f} s = {res.tokens / res.seconds:8.1f} tok/s"
                  f"   peak +{res.peak_mem_bytes / 2**20:7.1f} MiB   reward {res.reward_mean:.3f}   (train() {res.total_seconds:.1f} s)")
    meta = {"model": "random tiny Qwen2" if args.random_model else "tiny-arith", "device": str(device),
            "plain_update": plain,
            "gradient_checkpointing": gc_on, "threads": torch.get_num_threads(), "loadavg_1m_start": load_start,
            "loadavg_1m": os.getloadavg()[0], "cpu_count": os.cpu_count(),
            "memory": memory_label(device, live)}
    rows = make_rows(s, ours, trl, meta)
    print(f"\nGRPO, {meta['model']} on {device} ({meta['threads']} threads, 1-min load {load_start:.2f} -> {meta['loadavg_1m']:.2f}): "
          f"{s.num_prompts} prompts x G={s.num_generations}, max {s.max_new_tokens} new tokens, {s.steps} timed steps x {repeats}")
    print(f"{'metric':<28}{'ours':>12}{'TRL':>12}{'ratio':>9}{'target':>9}  meets")
    for row, label in zip(rows, ("throughput (tok/s)", "peak memory (MiB)")):
        bound = ">=" if row is rows[0] else "<="
        print(f"{label:<28}{row['ours']:12.1f}{row['peer']:12.1f}{row['ratio']:9.2f}{bound:>5}{row['target']:4.1f}  {row['meets']}")
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
