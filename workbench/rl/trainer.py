"""The RLVR loop all methods plug into: sample → score → filter → μ epochs × n mini-batches → log.

    for step in range(steps):
        rollout = collect_rollout(...)                    # G completions per prompt, rewards, DAPO filter
        rollout.old_logp = log π_old(y)                   # the sampling policy, kept for all epochs (scored in the update)
        A = compute_advantages(cfg.advantage, ...)        # registry: grpo | dr_grpo | rloo | ...
        for epoch in range(μ): for mini-batch in split(rollout, n):
            w = compose_token_weights(cfg.token_weights, ctx)   # registry: low_prob | future_kl | tor | ...
            loss = policy_loss(logp, old_logp, A, mask, token_weights=w, **LossConfig)  # one optimizer step

A method is a config: DAPO is `RLConfig.for_method("dapo")`; ToR on DAPO adds `token_weights=["tor"]`;
FIPO is `loss="fipo", token_weights=[("future_kl", {"decay_rate": 32})]`, `num_minibatches > 1`.

Runs on `accelerate.Accelerator`, so `accelerate launch --num_processes 8 train.py` scales it: each
process samples its shard of the prompts, the token-mean denominator is the *global* token count,
and DDP averages gradients. Checkpoints (model, optimizer, scheduler, RNG, step) are safetensors +
JSON; every step's sampling is seeded from (seed, step), so `resume=True` ends with exactly the
numbers of an uninterrupted run.

Work the update does not do (the gradient is unchanged, see `tests/rl/test_trainer.py`): rows whose
advantage is 0 on every token are counted in the loss denominators but not run (`skip_zero_advantage`;
on tiny-arith about half of GRPO's groups are all-correct or all-wrong); a prompt repeated in a
micro-batch runs once and its completions attend to its KV cache (`share_prompts`, Prefix Grouper);
micro-batches hold rows of similar length and are trimmed to their longest completion.

Simplifications (said plainly): the entropy handed to token weights is that of the full softmax
(not top-p renormalised); no vLLM / separate inference engine — sampling uses the training model.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from workbench.models.scoring import completion_logprobs
from workbench.rl.advantages import compute_advantages, group_stats
from workbench.rl.checkpoint import load_checkpoint, save_checkpoint
from workbench.rl.losses import LossConfig, masked_mean, policy_loss
from workbench.rl.rollout import Rollout, RLTask, collect_rollout
from workbench.rl.selective import PromptHistory
from workbench.rl.weights import WeightContext, compose_token_weights, weights_are_row_local
from workbench.train.sft import lr_lambda
from workbench.utils import seed_everything


@dataclass
class RLConfig:
    """Every knob of an RLVR run (each field documents itself, TRL-style)."""

    # the method
    loss: str = field(default="grpo", metadata={"help": "policy-loss preset: grpo | dapo | dr_grpo | fipo (LOSSES registry)"})
    advantage: str = field(default="grpo", metadata={"help": "advantage estimator: grpo | dr_grpo | rloo (ADVANTAGES registry)"})
    token_weights: list = field(default_factory=list, metadata={"help": "token weights composed by product, e.g. ['low_prob', ('future_kl', {...})]"})
    epsilon_low: float | None = field(default=None, metadata={"help": "override the preset's lower clip ε"})
    epsilon_high: float | None = field(default=None, metadata={"help": "override the preset's upper clip ε (DAPO clip-higher: 0.28)"})
    dual_clip_c: float | None = field(default=None, metadata={"help": "override the preset's dual-clip constant c (> 1)"})
    kl_coef: float = field(default=0.0, metadata={"help": "β of the k3 KL penalty against the reference policy"})
    agg: str | None = field(default=None, metadata={"help": "override the preset's loss aggregation"})
    # rollouts
    num_prompts: int = field(default=16, metadata={"help": "prompts (groups) per step, across all processes"})
    num_generations: int = field(default=8, metadata={"help": "G: completions per prompt"})
    max_new_tokens: int = field(default=48, metadata={"help": "completion length cap (also Dr.GRPO's L_max)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    dynamic_sampling: bool = field(default=False, metadata={"help": "DAPO: drop all-equal-reward groups and refill"})
    max_sampling_rounds: int = field(default=4, metadata={"help": "cap on sampling rounds per step with dynamic sampling"})
    refill_headroom: float = field(default=1.5, metadata={"help": "dynamic sampling: a refill round samples missing / keep-rate × this many prompts"})
    explore: float = field(default=1.0, metadata={"help": "GRESO selective rollouts (arXiv 2506.02177): a prompt whose last z groups had all-equal rewards is sampled with probability explore^z (1 = off)"})
    overlong_buffer: int = field(default=0, metadata={"help": "DAPO soft overlong penalty buffer L_cache (0 = off)"})
    overlong_factor: float = field(default=1.0, metadata={"help": "scale of the overlong penalty"})
    mask_truncated: bool = field(default=False, metadata={"help": "DAPO overlong filtering: no loss on truncated completions"})
    # the update
    num_epochs: int = field(default=1, metadata={"help": "μ: passes over each rollout"})
    num_minibatches: int = field(default=1, metadata={"help": "n: optimizer steps per epoch (rollout split n ways)"})
    micro_batch_size: int = field(default=64, metadata={"help": "rows per forward/backward (gradient accumulation)"})
    share_prompts: bool = field(default=True, metadata={"help": "run each distinct prompt once per micro-batch and its G completions on its KV cache (same numbers, fewer prompt tokens)"})
    skip_zero_advantage: bool = field(default=True, metadata={"help": "leave rows whose advantage is 0 on every token out of the update's forward/backward (exact: their gradient is 0); off automatically with a KL penalty or a batch-coupled token weight"})
    lr: float = field(default=2e-5, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up (optimizer steps), then cosine to 10%"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm"})
    mixed_precision: str = field(default="no", metadata={"help": "'bf16': sampling, scoring and the update's forward run under bfloat16 autocast (float32 weights, optimizer and loss; held-out evaluation stays float32) | 'no'"})
    # model
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters (peft) instead of all weights"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    # the run
    steps: int = field(default=100, metadata={"help": "training steps (one rollout each)"})
    seed: int = field(default=0, metadata={"help": "seed of prompts, sampling and shuffling"})
    output_dir: str | None = field(default=None, metadata={"help": "metrics.jsonl and checkpoints go here"})
    checkpoint_every: int = field(default=0, metadata={"help": "save a checkpoint every k steps (0 = only at the end)"})
    resume: bool = field(default=False, metadata={"help": "continue from output_dir/checkpoint if present"})
    eval_every: int = field(default=0, metadata={"help": "held-out greedy accuracy every k steps (0 = off)"})
    eval_n: int = field(default=200, metadata={"help": "held-out problems per evaluation"})
    progress: bool = field(default=True, metadata={"help": "show a tqdm bar"})

    @classmethod
    def for_method(cls, method: str, **overrides) -> "RLConfig":
        """Paper presets: `grpo`, `dr_grpo` (advantage without std + sum-norm loss), `dapo` (clip-higher,
        token-mean, dynamic sampling, overlong shaping + filtering), `fipo` (DAPO + future-KL weights,
        dual clip, 4 mini-batches so the weights act)."""
        presets: dict[str, dict[str, Any]] = {
            "grpo": dict(loss="grpo", advantage="grpo"),
            "dr_grpo": dict(loss="dr_grpo", advantage="dr_grpo"),
            "dapo": dict(loss="dapo", advantage="grpo", dynamic_sampling=True, overlong_buffer=8, mask_truncated=True),
            "fipo": dict(loss="fipo", advantage="grpo", dynamic_sampling=True, overlong_buffer=8, mask_truncated=True,
                         token_weights=[("future_kl", {"decay_rate": 32})], num_minibatches=4),
        }
        if method not in presets:
            raise ValueError(f"unknown method {method!r}; known: {', '.join(presets)}")
        return cls(**{**presets[method], **overrides})

    def loss_config(self) -> LossConfig:
        over = {k: getattr(self, k) for k in ("epsilon_low", "epsilon_high", "dual_clip_c", "agg") if getattr(self, k) is not None}
        return LossConfig.from_name(self.loss, kl_coef=self.kl_coef, **over)

    def validate(self) -> None:
        for name in ("num_prompts", "num_generations", "max_new_tokens", "num_epochs", "num_minibatches", "micro_batch_size", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"RLConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.explore <= 1.0:
            raise ValueError(f"RLConfig.explore must be in [0, 1], got {self.explore}")
        if self.refill_headroom < 1:
            raise ValueError(f"RLConfig.refill_headroom must be >= 1, got {self.refill_headroom}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"RLConfig.mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")
        if self.temperature <= 0:
            raise ValueError(f"RLConfig.temperature must be > 0, got {self.temperature}")
        if self.num_generations < 2 and self.advantage in ("grpo", "dr_grpo", "rloo"):
            raise ValueError(f"RLConfig.num_generations must be >= 2 for group advantages, got {self.num_generations}")
        self.loss_config()


def seeded_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded from a tuple (seed, step, ...) — no state to carry across a resume."""
    return torch.Generator().manual_seed(hash(key) % (2**63))


@torch.no_grad()
def score_rollout(model, rollout: Rollout, micro_batch_size: int, temperature: float, with_entropy: bool = True,
                  share_prompts: bool = True):
    """log π(y) [N, T] (and entropy) of the rollout's completions under `model`, in micro-batches
    (a micro-batch's repeated prompts run once with `share_prompts`, see `completion_logprobs`)."""
    logps, ents = [], []
    for i in range(0, len(rollout), micro_batch_size):
        mb = rollout.select(torch.arange(i, min(i + micro_batch_size, len(rollout))))
        dev = next(model.parameters()).device
        lp, ent = completion_logprobs(model, mb.prompt_ids.to(dev), mb.prompt_mask.to(dev), mb.completion_ids.to(dev),
                                      mb.completion_mask.to(dev), with_entropy=with_entropy, temperature=temperature,
                                      share_prompts=share_prompts, **{k: v.to(dev) for k, v in mb.model_inputs().items()})
        logps.append(lp.cpu())
        ents.append(ent.cpu() if ent is not None else None)
    return torch.cat(logps), (torch.cat(ents) if with_entropy else None)


def autocast(cfg: RLConfig, device: torch.device):
    """bfloat16 autocast on `device` when `cfg.mixed_precision == 'bf16'`, else a no-op context.

    Matmuls run in bfloat16 with float32 weights kept as the master copy (AdamW updates of size
    lr·|g| ≈ 1e-5 would round away in bf16 weights); log-softmax, the loss and the backward's
    accumulation stay float32 (`completion_logprobs` upcasts the logits)."""
    if cfg.mixed_precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return _nullcontext()


def gradient_rows(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N] bool: rows with a nonzero advantage on some valid token ([N, T] advantages and mask).

    Every other row has per-token loss −min(r·w·0, clip(r)·w·0) = 0 for any ratio r and token weight w,
    hence zero gradient: a GRPO group whose rewards are all equal, or a DAPO-masked truncated completion."""
    return ((advantages != 0) & mask.bool()).any(-1)


def skips_zero_advantage(cfg: RLConfig) -> bool:
    """Whether the update may leave zero-advantage rows out: asked for, no KL term (its gradient does not
    vanish with A), and only row-local token weights (a batch-wide threshold would see other rows)."""
    return cfg.skip_zero_advantage and cfg.kl_coef == 0 and weights_are_row_local(cfg.token_weights)


def update_policy(model, optimizer, scheduler, accelerator, rollout: Rollout, advantages: torch.Tensor,
                  cfg: RLConfig, generator: torch.Generator) -> list[dict]:
    """μ epochs × n mini-batches of clipped-surrogate steps on one rollout; returns per-optimizer-step metrics.

    Each mini-batch is one optimizer step, accumulated over micro-batches; the aggregation's
    denominators are global (summed over processes, divided by the process count because DDP
    averages gradients), so micro-batching and multi-process runs give the same update as one
    big batch on one process.

    Rows whose advantage is zero everywhere (`gradient_rows`) are counted in the denominators but not
    run through the model when `skips_zero_advantage(cfg)`: the gradient is the same, and with GRPO on
    a task where half the groups are all-correct or all-wrong that halves the update's compute. The
    loss metrics (clip fractions, ratio, weights, and the entropy of π_old) are then token means over
    the rows that were run.

    `rollout.old_logp` may be None: the first mini-batch's forward then gives log π_old of its rows (the
    policy has not stepped yet), and the rows later optimizer steps run are scored once before the first
    step (`_score_old_policy`). A pre-filled `rollout.old_logp` (a task's `annotate` hook needs it) is used
    as it is."""
    loss_kwargs = cfg.loss_config().as_kwargs()
    world = accelerator.num_processes
    N, out = len(rollout), []
    n_mb = min(cfg.num_minibatches, N)
    device = accelerator.device
    carries = gradient_rows(advantages, rollout.completion_mask) if skips_zero_advantage(cfg) else torch.ones(N, dtype=torch.bool)
    # one optimizer step per chunk: μ epochs, each a fresh split of the rollout into n mini-batches
    chunks = [chunk for _ in range(cfg.num_epochs)
              for chunk in (torch.randperm(N, generator=generator) if n_mb > 1 else torch.arange(N)).chunk(n_mb)]
    # denominators count every row of a chunk; the forward/backward only the rows that carry gradient
    runs = [_active_rows(chunk, carries) for chunk in chunks]
    lazy = rollout.old_logp is None  # the first mini-batch's own forward gives log π_old of its rows
    if lazy and len(runs) > 1:  # the rows later optimizer steps run, scored before the first one
        later = torch.zeros(N, dtype=torch.bool)
        later[torch.cat(runs[1:])] = True
        later[runs[0]] = False
        rollout.old_logp, rollout.entropy = _score_old_policy(accelerator.unwrap_model(model), rollout, later, cfg)
    # prefix sharing calls the model twice (prompts, then completions) before one backward; a DDP-wrapped
    # model must see one forward per backward (a second forward's sync deadlocks the processes), so
    # several processes run the one-pass forward
    share_prompts = cfg.share_prompts and world == 1
    for i, (chunk, active) in enumerate(zip(chunks, runs)):
        on_policy = lazy and i == 0
        tokens = rollout.completion_mask[chunk].sum().float().to(device)
        seqs = torch.tensor(float(len(chunk)), device=device)
        if world > 1:
            tokens, seqs = accelerator.reduce(tokens, "sum"), accelerator.reduce(seqs, "sum")
        # micro-batches of similar lengths, so trimming each removes most padding (the sum of their
        # gradients, with global denominators, is the mini-batch gradient whatever the grouping)
        by_length = active[rollout.lengths[active].argsort(stable=True)] if len(active) > cfg.micro_batch_size else active
        micro = by_length.split(cfg.micro_batch_size)
        active_tokens = max(float(rollout.completion_mask[active].sum()), 1.0)
        metrics: dict[str, float] = {}
        for j, idx in enumerate(micro):
            mb = rollout.select(idx).trim().to(device)
            Tm = mb.completion_ids.size(1)
            sync = j == len(micro) - 1
            ctx = accelerator.no_sync(model) if (world > 1 and not sync) else _nullcontext()
            with ctx:
                with autocast(cfg, device):  # the forward only: backward runs outside autocast
                    logp, ent = completion_logprobs(model, mb.prompt_ids, mb.prompt_mask, mb.completion_ids,
                                                    mb.completion_mask, temperature=cfg.temperature, with_entropy=on_policy,
                                                    share_prompts=share_prompts, **mb.model_inputs())
                if on_policy:  # the first mini-batch's forward *is* the old policy
                    mb.old_logp, mb.entropy = logp.detach(), ent
                    if rollout.old_logp is not None:  # later optimizer steps will read these rows again
                        rollout.old_logp[idx, :Tm] = mb.old_logp.to(rollout.old_logp)
                        rollout.entropy[idx, :Tm] = ent.detach().to(rollout.entropy)
                adv = advantages[idx, :Tm].to(device)
                wctx = WeightContext(logp=logp, old_logp=mb.old_logp, mask=mb.completion_mask, advantages=adv,
                                     entropy=mb.entropy, extras=mb.extras)
                weights = compose_token_weights(cfg.token_weights, wctx) if cfg.token_weights else None
                loss, m = policy_loss(logp, mb.old_logp, adv, mb.completion_mask, ref_logp=mb.ref_logp,
                                      token_weights=weights, num_tokens=tokens / world, num_seqs=seqs / world,
                                      max_len=cfg.max_new_tokens, **loss_kwargs)
                accelerator.backward(loss)
            share = float(mb.completion_mask.sum()) / active_tokens
            if mb.entropy is not None:
                m["entropy"] = masked_mean(mb.entropy, mb.completion_mask)
            for k, v in m.items():
                metrics[k] = metrics.get(k, 0.0) + float(v) * share
            metrics["loss"] = metrics.get("loss", 0.0) + float(loss.detach())
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        metrics["grad_norm"] = float(grad_norm)
        metrics["rows_run_frac"] = len(active) / max(len(chunk), 1)
        out.append(metrics)
    return out


def _active_rows(chunk: torch.Tensor, carries: torch.Tensor) -> torch.Tensor:
    """The rows of `chunk` the update runs: those that carry gradient, or its first row if none does (so
    every process joins DDP's all-reduce and AdamW steps as usual)."""
    return chunk[carries[chunk]] if carries[chunk].any() else chunk[:1]


def _score_old_policy(model, rollout: Rollout, rows: torch.Tensor, cfg: RLConfig):
    """log π_old and entropy [N, T] of `rows` ([N] bool), zero elsewhere, scored before the first optimizer step.

    Only the rows a later optimizer step runs need them: a row with zero advantage everywhere is not run
    (its loss is 0 whatever its ratio), and the first mini-batch takes log π_old from its own forward. With GRPO
    on two mini-batches that scores about a fifth of the rollout instead of all of it."""
    dtype = torch.promote_types(next(model.parameters()).dtype, torch.float32)
    logp = torch.zeros(rollout.completion_mask.shape, dtype=dtype)
    ent = torch.zeros_like(logp)
    if rows.any():
        idx = rows.nonzero().squeeze(-1)
        was_training = model.training
        model.eval()
        with torch.no_grad(), autocast(cfg, next(model.parameters()).device):
            lp, en = score_rollout(model, rollout.select(idx), cfg.micro_batch_size, cfg.temperature, share_prompts=cfg.share_prompts)
        model.train(was_training)
        logp[idx, :lp.size(1)], ent[idx, :en.size(1)] = lp, en
    return logp, ent


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@dataclass
class TrainResult:
    """`history`: one metrics dict per step (also in metrics.jsonl); `model`: the trained (unwrapped) policy;
    `prompt_history`: the selective-rollout record (`selective.PromptHistory`, filled when `explore` < 1)."""

    history: list[dict]
    model: Any
    output_dir: str | None
    prompt_history: PromptHistory | None = None


def _apply_lora(model, cfg: RLConfig):
    from peft import LoraConfig, get_peft_model

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    return get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=targets, lora_dropout=0.0))


def train(model, tokenizer, task: RLTask, cfg: RLConfig, *, accelerator=None,
          on_step: Callable[[dict], None] | None = None) -> TrainResult:
    """Run `cfg.steps` RLVR steps of `model` on `task` (see the module docstring for the loop).

    Args:
        model: any HF causal LM (or a VLM whose task provides `encode`); trained in place.
        tokenizer: its tokenizer (or processor).
        task: an `RLTask` (problems, prompt format, reward functions, optional held-out set).
        cfg: the `RLConfig`.
        accelerator: an `accelerate.Accelerator` (default: a new one; CPU if no GPU).
        on_step: called with each step's metrics (e.g. a live plot in a notebook).

    Returns:
        TrainResult with the per-step history. Metrics per step: reward mean/std, fraction of
        zero-std groups, groups sampled and dropped and sampling rounds (dynamic sampling), entropy, clip
        fractions low/high/dual, response length, truncation rate, KL, loss, grad norm, lr,
        tokens/s, `rows_run_frac` (rows the update ran: the rest had zero advantage), and
        `eval_accuracy` on evaluation steps.
    """
    from accelerate import Accelerator

    cfg.validate()
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    seed_everything(cfg.seed)
    ref_model = None
    if cfg.lora:
        model = _apply_lora(model, cfg)
    elif cfg.kl_coef > 0:
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    opt_steps = cfg.steps * cfg.num_epochs * cfg.num_minibatches
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_lambda(s, cfg.warmup_steps, opt_steps) if cfg.warmup_steps else 1.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    if ref_model is not None:
        ref_model = ref_model.to(accelerator.device)
    start, history = 0, []
    prompt_history = PromptHistory()
    ckpt = os.path.join(cfg.output_dir, "checkpoint") if cfg.output_dir else None
    log_path = os.path.join(cfg.output_dir, "metrics.jsonl") if cfg.output_dir else None
    if cfg.output_dir and accelerator.is_main_process:
        os.makedirs(cfg.output_dir, exist_ok=True)
    if cfg.resume and ckpt and os.path.exists(os.path.join(ckpt, "state.json")):
        meta = load_checkpoint(ckpt, model=accelerator.unwrap_model(model), optimizer=optimizer, scheduler=scheduler)
        start, history = meta["step"], meta["extra"].get("history", [])
        prompt_history = PromptHistory.from_state_dict(meta["extra"].get("prompt_history"))
    elif log_path and accelerator.is_main_process and os.path.exists(log_path):
        os.remove(log_path)
    if log_path and accelerator.is_main_process:  # keep exactly the steps the checkpoint covers
        with open(log_path, "w") as f:
            f.writelines(json.dumps(h) + "\n" for h in history)
    eval_problems = task.eval_problems(cfg.eval_n) if (cfg.eval_every and task.eval_problems) else None
    world, rank = accelerator.num_processes, accelerator.process_index
    if cfg.num_prompts % world:
        raise ValueError(f"num_prompts={cfg.num_prompts} must be divisible by the number of processes ({world})")
    bar = tqdm(range(start, cfg.steps), desc=f"RL {cfg.loss}", disable=not (cfg.progress and accelerator.is_main_process),
               initial=start, total=cfg.steps)
    policy = accelerator.unwrap_model(model)
    for step in bar:
        prev = history[-1] if history else {}
        prior_keep = (prev["groups_sampled"] - prev["groups_dropped"], prev["groups_sampled"]) if prev.get("groups_sampled") else None
        t0 = time.time()
        rng = random.Random(f"{cfg.seed}/{step}/{rank}")
        gen = seeded_generator(cfg.seed, step, rank)
        with autocast(cfg, accelerator.device):
            rollout, sstats = collect_rollout(
                policy, tokenizer, task, num_prompts=cfg.num_prompts // world, num_generations=cfg.num_generations,
                max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, generator=gen, rng=rng,
                dynamic_sampling=cfg.dynamic_sampling, max_sampling_rounds=cfg.max_sampling_rounds, refill_headroom=cfg.refill_headroom,
                overlong_buffer=cfg.overlong_buffer, overlong_factor=cfg.overlong_factor, mask_truncated=cfg.mask_truncated,
                prior_keep=prior_keep, prompt_history=prompt_history if cfg.explore < 1 else None, explore=cfg.explore)
        if cfg.explore < 1:  # one history for all processes: each applies every process's outcomes, in rank order
            outcomes = sstats.prompt_outcomes
            if world > 1:
                from accelerate.utils import gather_object

                outcomes = gather_object(outcomes)
            prompt_history.record(outcomes)
        t_gen = time.time() - t0
        metrics = {"step": step + 1}
        if len(rollout):
            with autocast(cfg, accelerator.device):
                if task.annotate:  # the hook reads log π_old of every row; else the update scores what it needs
                    rollout.old_logp, rollout.entropy = score_rollout(policy, rollout, cfg.micro_batch_size, cfg.temperature, share_prompts=cfg.share_prompts)
                    rollout.extras.update(task.annotate(policy, tokenizer, rollout))
                if cfg.kl_coef > 0:
                    if cfg.lora:
                        with policy.disable_adapter():
                            rollout.ref_logp, _ = score_rollout(policy, rollout, cfg.micro_batch_size, cfg.temperature, False, share_prompts=cfg.share_prompts)
                    else:
                        rollout.ref_logp, _ = score_rollout(ref_model, rollout, cfg.micro_batch_size, cfg.temperature, False, share_prompts=cfg.share_prompts)
            adv = compute_advantages(cfg.advantage, rollout.rewards, rollout.group_ids, rollout.completion_mask)
            model.train()
            steps_metrics = update_policy(model, optimizer, scheduler, accelerator, rollout, adv, cfg,
                                          seeded_generator(cfg.seed, step, 7919))
            model.eval()
            for k in steps_metrics[0]:
                metrics[k] = sum(s[k] for s in steps_metrics) / len(steps_metrics)
            gs = group_stats(rollout.rewards, rollout.group_ids)
            metrics.update(
                reward_mean=float(rollout.rewards.mean()), reward_std=float(rollout.rewards.std()) if len(rollout) > 1 else 0.0,
                response_length=float(rollout.lengths.float().mean()), truncated_frac=float(rollout.truncated.float().mean()),
                frac_zero_std_groups_after_filter=gs.frac_zero_std_groups,
            )
            for name, part in rollout.reward_parts.items():
                metrics[f"reward/{name}"] = float(part.mean())
        else:
            metrics["skipped"] = 1
        elapsed = time.time() - t0
        sampled, dropped = sstats.groups_sampled, sstats.groups_dropped
        if world > 1:  # global counts: every process then sizes its next first round from the same keep rate
            sampled, dropped = (int(v) for v in accelerator.reduce(torch.tensor([sampled, dropped], device=accelerator.device), "sum"))
        metrics.update(frac_zero_std_groups=sstats.frac_zero_std_groups, groups_sampled=sampled, groups_dropped=dropped,
                       sampling_rounds=sstats.rounds, completion_tokens=sstats.completion_tokens,
                       tokens_per_s=sstats.completion_tokens / max(elapsed, 1e-9), gen_seconds=t_gen,
                       step_seconds=elapsed, lr=scheduler.get_last_lr()[0])
        if eval_problems and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            metrics["eval_accuracy"] = evaluate_task(policy, tokenizer, task, eval_problems)
        history.append(metrics)
        if accelerator.is_main_process:
            if log_path:
                with open(log_path, "a") as f:
                    f.write(json.dumps(metrics) + "\n")
            bar.set_postfix(reward=f"{metrics.get('reward_mean', float('nan')):.2f}",
                            **({"acc": f"{metrics['eval_accuracy']:.2f}"} if "eval_accuracy" in metrics else {}))
        if on_step:
            on_step(metrics)
        last = step + 1 == cfg.steps
        if ckpt and accelerator.is_main_process and ((cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0) or last):
            save_checkpoint(ckpt, model=policy, optimizer=optimizer, scheduler=scheduler, step=step + 1,
                            extra={"history": history, "config": _jsonable_config(cfg),
                                   "prompt_history": prompt_history.state_dict()})
    accelerator.wait_for_everyone()
    return TrainResult(history=history, model=policy, output_dir=cfg.output_dir, prompt_history=prompt_history)


def _jsonable_config(cfg: RLConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def evaluate_task(model, tokenizer, task: RLTask, problems: list, batch_size: int = 128, max_new_tokens: int = 64) -> float:
    """Greedy held-out accuracy of `model` on `problems` (task.correct, else reward ≥ 1)."""
    from workbench.rl.rollout import generate_group

    correct = task.correct or (lambda c, p: sum(s.weight * s.fn(c, p) for s in task.rewards) >= 1.0)
    hits = 0
    for i in range(0, len(problems), batch_size):
        chunk = problems[i : i + batch_size]
        ro = generate_group(model, tokenizer, dataclasses.replace(task, rewards=task.rewards), chunk, num_generations=1,
                            max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0, generator=None, greedy=True)
        hits += sum(bool(correct(t, p)) for t, p in zip(ro.texts, chunk))
    return hits / max(len(problems), 1)
