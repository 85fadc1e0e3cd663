"""The policy update: μ epochs × n mini-batches of clipped-surrogate steps on one rollout.

    for epoch in range(μ): for mini-batch in split(rollout, n):
        w = compose_token_weights(cfg.token_weights, ctx)                  # registry: low_prob | future_kl | tor | ...
        loss = policy_loss(logp, old_logp, A, mask, token_weights=w, **LossConfig)   # one optimizer step

Work the update does not do (the gradient is unchanged, see `tests/rl/test_trainer.py`): rows whose
advantage is 0 on every token are counted in the loss denominators but not run (`skip_zero_advantage`);
a prompt repeated in a micro-batch runs once and its completions attend to its KV cache
(`share_prompts`, Prefix Grouper); micro-batches hold rows of similar length and are trimmed to their
longest completion; log π_old is scored only for the rows a later optimizer step runs. Memory it does
not keep: the SwiGLU MLPs and RMSNorms recompute their cheap intermediates in the backward
(`lean_activations`, `models.lean`, same gradient bit for bit).
"""

from __future__ import annotations

import torch

from workbench.models.lean import lean_activations
from workbench.models.scoring import completion_logprobs
from workbench.rl.losses import masked_mean, policy_loss
from workbench.rl.rollout import Rollout
from workbench.rl.weights import WeightContext, compose_token_weights, weights_are_row_local


@torch.no_grad()
def score_rollout(model, rollout: Rollout, micro_batch_size: int, temperature: float, with_entropy: bool = True,
                  share_prompts: bool = True, chunk: int | None = None):
    """log π(y) [N, T] (and entropy) of the rollout's completions under `model`, in micro-batches
    (a micro-batch's repeated prompts run once with `share_prompts`, see `completion_logprobs`)."""
    logps, ents = [], []
    for i in range(0, len(rollout), micro_batch_size):
        mb = rollout.select(torch.arange(i, min(i + micro_batch_size, len(rollout))))
        dev = next(model.parameters()).device
        lp, ent = completion_logprobs(model, mb.prompt_ids.to(dev), mb.prompt_mask.to(dev), mb.completion_ids.to(dev),
                                      mb.completion_mask.to(dev), with_entropy=with_entropy, temperature=temperature,
                                      share_prompts=share_prompts, chunk=chunk,
                                      **{k: v.to(dev) for k, v in mb.model_inputs().items()})
        logps.append(lp.cpu())
        ents.append(ent.cpu() if ent is not None else None)
    return torch.cat(logps), (torch.cat(ents) if with_entropy else None)


def autocast(cfg, device: torch.device):
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


def skips_zero_advantage(cfg) -> bool:
    """Whether the update may leave zero-advantage rows out: asked for, no KL term (its gradient does not
    vanish with A), and only row-local token weights (a batch-wide threshold would see other rows)."""
    return cfg.skip_zero_advantage and cfg.kl_coef == 0 and weights_are_row_local(cfg.token_weights)


def update_policy(model, optimizer, scheduler, accelerator, rollout: Rollout, advantages: torch.Tensor,
                  cfg, generator: torch.Generator) -> list[dict]:
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
    policy = accelerator.unwrap_model(model)
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
                # the forward only: backward runs outside autocast (the lean modules' graph outlives the patch)
                with autocast(cfg, device), lean_activations(policy, cfg.lean_activations):
                    logp, ent = completion_logprobs(model, mb.prompt_ids, mb.prompt_mask, mb.completion_ids,
                                                    mb.completion_mask, temperature=cfg.temperature, with_entropy=on_policy,
                                                    share_prompts=share_prompts, chunk=cfg.logits_chunk or None,
                                                    packed=cfg.pack, **mb.model_inputs())
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
                                      max_len=cfg.max_new_tokens, off_policy=mb.extras.get("off_policy"),
                                      off_policy_gamma=cfg.off_policy_gamma, off_policy_shaping=cfg.off_policy_shaping,
                                      **loss_kwargs)
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


def _score_old_policy(model, rollout: Rollout, rows: torch.Tensor, cfg):
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
            lp, en = score_rollout(model, rollout.select(idx), cfg.micro_batch_size, cfg.temperature, share_prompts=cfg.share_prompts, chunk=cfg.logits_chunk or None)
        model.train(was_training)
        logp[idx, :lp.size(1)], ent[idx, :en.size(1)] = lp, en
    return logp, ent


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
