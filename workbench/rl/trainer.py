"""The RLVR loop all methods plug into, one named step per line:

    for step in range(steps):
        rollout = sample(...)        # rollout source + filters (DAPO dynamic sampling refills): collect_rollout
        annotate(rollout)            # task hook (ToR's visual dependency) and log π_old where a piece needs it
        score_reference(rollout)     # log π_ref for a KL penalty
        A = advantages(rollout)      # registry: grpo | dr_grpo | rloo | ... with an AdvantageContext
        update_policy(rollout, A)    # μ epochs × n mini-batches, token weights, policy loss (`update.py`)
        log(metrics)                 # metrics.jsonl, the tqdm bar, checkpoints

A method is a config: DAPO is `RLConfig.for_method("dapo")`; ToR on DAPO adds `token_weights=["tor"]`;
FIPO is `RLConfig.for_method("fipo")` (future-KL weights, dual clip, 4 mini-batches).

Runs on `accelerate.Accelerator` (on `cfg.device`; `cfg.mixed_precision` by the loop's autocast), so
`accelerate launch --num_processes 8 train.py` scales it: each process samples its shard of the prompts,
the token-mean denominator is the *global* token count, and DDP averages gradients. Checkpoints (model,
optimizer, scheduler, RNG, step) are safetensors + JSON; every step's sampling is seeded from
(seed, step), so `resume=True` ends with exactly the numbers of an uninterrupted run.

Simplifications (said plainly): the entropy handed to token weights is that of the full softmax
(not top-p renormalised); no vLLM / separate inference engine — sampling uses the training model.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from workbench.live import live_curve
from workbench.utils import tqdm

from workbench.evaluation.heldout import evaluate
from workbench.rl.advantages import (AdvantageContext, advantage_diagnostics, compute_advantages, estimator_needs_sequence_logp,
                                     group_stats)
from workbench.rl.collect import CollectConfig, SamplingStats, collect_rollout
from workbench.rl.config import RLConfig, resolve_logits_chunk
from workbench.rl.rollout import Rollout, RLTask
from workbench.rl.run_dir import RunDir
from workbench.rl.selective import PromptHistory
from workbench.rl.sources import parse_spec
from workbench.rl.update import autocast, score_rollout, update_policy
from workbench.train.sft import lr_lambda
from workbench.utils import resolve_device, seed_everything, seeded_generator


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


def make_accelerator(cfg: RLConfig):
    """An `accelerate.Accelerator` on `cfg.device` ('auto': cuda > mps > cpu).

    `cfg.mixed_precision` is applied by the trainer's own autocast (`update.autocast`) around sampling,
    scoring and the update's forward, not by the Accelerator: accelerate keeps one process-wide state,
    so a second run in the same notebook with another precision would be refused."""
    from accelerate import Accelerator

    return Accelerator(cpu=resolve_device(cfg.device).type == "cpu")


def sample_step(policy, tokenizer, task: RLTask, cfg: RLConfig, step: int, rank: int, world: int, history: list,
                prompt_history: PromptHistory, accelerator) -> tuple[Rollout, SamplingStats]:
    """Collect this process's rollout of `step` (seeded from (seed, step, rank)); with GRESO, every process
    applies every process's group outcomes to the one prompt history, in rank order."""
    prev = history[-1] if history else {}
    prior_keep = (prev["groups_sampled"] - prev["groups_dropped"], prev["groups_sampled"]) if prev.get("groups_sampled") else None
    with autocast(cfg, accelerator.device):
        rollout, stats = collect_rollout(policy, tokenizer, task, CollectConfig.from_rl(cfg, world),
                                         generator=seeded_generator(cfg.seed, step, rank),
                                         rng=random.Random(f"{cfg.seed}/{step}/{rank}"), prior_keep=prior_keep,
                                         prompt_history=prompt_history if cfg.explore < 1 else None)
    if cfg.explore < 1:
        outcomes = stats.prompt_outcomes
        if world > 1:
            from accelerate.utils import gather_object

            outcomes = gather_object(outcomes)
        prompt_history.record(outcomes)
    return rollout, stats


def annotate_step(policy, tokenizer, task: RLTask, rollout: Rollout, cfg: RLConfig, device) -> None:
    """log π_old of every row where a piece reads it before the update (the task's `annotate` hook, an
    estimator marked `needs_sequence_logp`), then the hook's tensors into `rollout.extras`. Otherwise the
    update scores only the rows it needs."""
    if not (task.annotate or estimator_needs_sequence_logp(parse_spec(cfg.advantage)[0])):
        return
    with autocast(cfg, device):
        rollout.old_logp, rollout.entropy = score_rollout(policy, rollout, cfg.micro_batch_size, cfg.temperature,
                                                          share_prompts=cfg.share_prompts, chunk=cfg.logits_chunk or None)
        if task.annotate:
            rollout.extras.update(task.annotate(policy, tokenizer, rollout))


def score_reference_step(policy, ref_model, rollout: Rollout, cfg: RLConfig, device) -> None:
    """log π_ref of the rollout for the k3 KL penalty (LoRA: the policy with its adapters off)."""
    if cfg.kl_coef <= 0:
        return
    with autocast(cfg, device):
        if cfg.lora:
            with policy.disable_adapter():
                rollout.ref_logp, _ = score_rollout(policy, rollout, cfg.micro_batch_size, cfg.temperature, False, share_prompts=cfg.share_prompts, chunk=cfg.logits_chunk or None)
        else:
            rollout.ref_logp, _ = score_rollout(ref_model, rollout, cfg.micro_batch_size, cfg.temperature, False, share_prompts=cfg.share_prompts, chunk=cfg.logits_chunk or None)


def advantage_step(rollout: Rollout, cfg: RLConfig) -> tuple[torch.Tensor, dict]:
    """[N, T] advantages from the configured estimator (`cfg.advantage`: a name or (name, kwargs)), with the
    rollout's extras and (when scored) its per-completion sequence log-likelihoods in the `AdvantageContext`;
    and the step's advantage metrics: the estimator's own (`ctx.metrics`) and the |A| scale overall and on
    near-extreme groups (`advantage_diagnostics`, success = the "correct" reward part, else reward > 0.5)."""
    name, kwargs = parse_spec(cfg.advantage)
    seq_logp = (rollout.old_logp * rollout.completion_mask).sum(-1) if rollout.old_logp is not None else None
    ctx = AdvantageContext(extras=rollout.extras, sequence_logp=seq_logp, problems=rollout.problems, config=cfg)
    adv = compute_advantages(name, rollout.rewards, rollout.group_ids, rollout.completion_mask, ctx=ctx, **kwargs)
    success = rollout.reward_parts.get("correct", rollout.rewards) > 0.5
    first = adv[:, 0] if adv.size(1) else adv.new_zeros(len(rollout))
    return adv, {**advantage_diagnostics(first, success, rollout.group_ids), **ctx.metrics}


def rollout_metrics(rollout: Rollout, update_metrics: list[dict]) -> dict:
    """The step's update metrics (mean over its optimizer steps) and the rollout's reward / length statistics."""
    metrics = {k: sum(s[k] for s in update_metrics) / len(update_metrics) for k in update_metrics[0]}
    gs = group_stats(rollout.rewards, rollout.group_ids)
    metrics.update(
        reward_mean=float(rollout.rewards.mean()), reward_std=float(rollout.rewards.std()) if len(rollout) > 1 else 0.0,
        response_length=float(rollout.lengths.float().mean()), truncated_frac=float(rollout.truncated.float().mean()),
        frac_zero_std_groups_after_filter=gs.frac_zero_std_groups,
    )
    for name, part in rollout.reward_parts.items():
        metrics[f"reward/{name}"] = float(part.mean())
    if "off_policy" in rollout.extras:  # expert-guided sources: how many expert rows reached the update
        metrics["off_policy_rows"] = int(rollout.extras["off_policy"].bool().any(-1).sum())
    return metrics


def sampling_metrics(stats: SamplingStats, accelerator, elapsed: float, t_gen: float, lr: float) -> dict:
    """What sampling did (global group counts, so every process sizes its next first round from the same keep rate)."""
    sampled, dropped = stats.groups_sampled, stats.groups_dropped
    if accelerator.num_processes > 1:
        sampled, dropped = (int(v) for v in accelerator.reduce(torch.tensor([sampled, dropped], device=accelerator.device), "sum"))
    return dict(frac_zero_std_groups=stats.frac_zero_std_groups, groups_sampled=sampled, groups_dropped=dropped,
                rows_dropped=stats.rows_dropped,
                sampling_rounds=stats.rounds, completion_tokens=stats.completion_tokens,
                tokens_per_s=stats.completion_tokens / max(elapsed, 1e-9), gen_seconds=t_gen, step_seconds=elapsed, lr=lr)


def train(model, tokenizer, task: RLTask, cfg: RLConfig, *, accelerator=None,
          on_step: Callable[[dict], None] | None = None) -> TrainResult:
    """Run `cfg.steps` RLVR steps of `model` on `task` (see the module docstring for the loop).

    Args:
        model: any HF causal LM (or a VLM whose task provides `encode`); trained in place.
        tokenizer: its tokenizer (or processor).
        task: a `Task` (problems, prompt format, reward functions, optional held-out set).
        cfg: the `RLConfig`.
        accelerator: an `accelerate.Accelerator` (default: `make_accelerator(cfg)`).
        on_step: called with each step's metrics (e.g. a live plot in a notebook).

    Returns:
        TrainResult with the per-step history. Metrics per step: reward mean/std, fraction of
        zero-std groups, groups sampled and dropped and sampling rounds (dynamic sampling), entropy, clip
        fractions low/high/dual, response length, truncation rate, KL, loss, grad norm, lr,
        tokens/s, `rows_run_frac` (rows the update ran: the rest had zero advantage), and
        `eval_accuracy` on evaluation steps.
    """
    cfg.validate()
    cfg = resolve_logits_chunk(cfg, model)
    accelerator = accelerator or make_accelerator(cfg)
    seed_everything(cfg.seed)
    model, ref_model, optimizer, scheduler = _prepare(model, cfg, accelerator)
    run = RunDir(cfg, accelerator.is_main_process)
    start, history, prompt_history = run.resume(accelerator.unwrap_model(model), optimizer, scheduler)
    eval_problems = task.eval_problems(cfg.eval_n) if (cfg.eval_every and task.eval_problems) else None
    world, rank = accelerator.num_processes, accelerator.process_index
    if cfg.num_prompts % world:
        raise ValueError(f"num_prompts={cfg.num_prompts} must be divisible by the number of processes ({world})")
    bar = tqdm(range(start, cfg.steps), desc=f"RL {cfg.loss}", disable=not (cfg.progress and accelerator.is_main_process),
               initial=start, total=cfg.steps)
    policy, device = accelerator.unwrap_model(model), accelerator.device
    # live only (a notebook frontend); runs without a bar (compare_methods' ablations) draw it too
    curve = live_curve(f"RL {cfg.loss} seed {cfg.seed}", ("reward_mean", "response_length", "eval_accuracy"),
                       kind="rl") if accelerator.is_main_process else None
    try:
        for step in bar:
            t0 = time.time()
            rollout, stats = sample_step(policy, tokenizer, task, cfg, step, rank, world, history, prompt_history, accelerator)
            t_gen = time.time() - t0
            metrics = {"step": step + 1}
            if len(rollout):
                annotate_step(policy, tokenizer, task, rollout, cfg, device)
                score_reference_step(policy, ref_model, rollout, cfg, device)
                adv, adv_metrics = advantage_step(rollout, cfg)
                model.train()
                update = update_policy(model, optimizer, scheduler, accelerator, rollout, adv, cfg, seeded_generator(cfg.seed, step, 7919))
                model.eval()
                metrics.update(rollout_metrics(rollout, update), **adv_metrics)
            else:  # every group dropped (e.g. all-equal rewards under dynamic sampling): no update, but what was sampled
                rows = max(stats.rows_sampled, 1)
                metrics.update(skipped=1, reward_mean=stats.reward_sum / rows, response_length=stats.length_sum / rows)
            metrics.update(sampling_metrics(stats, accelerator, time.time() - t0, t_gen, scheduler.get_last_lr()[0]))
            if eval_problems and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
                metrics["eval_accuracy"] = evaluate(policy, tokenizer, task, eval_problems).accuracy
            history.append(metrics)
            run.log(metrics, bar)
            if on_step:
                on_step(metrics)
            if curve:
                curve(metrics)
            run.checkpoint(step + 1, policy, optimizer, scheduler, history, prompt_history)
    finally:
        run.release()
    if curve:
        curve.close()
    accelerator.wait_for_everyone()
    return TrainResult(history=history, model=policy, output_dir=cfg.output_dir, prompt_history=prompt_history)


def _prepare(model, cfg: RLConfig, accelerator):
    """LoRA or a frozen reference copy (KL penalty), AdamW, the warm-up/cosine schedule, `accelerator.prepare`."""
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
    return model, ref_model, optimizer, scheduler
