"""The preference trainer: DPO-family losses on image-differing pairs, a frozen reference, checkpoints that resume exactly.

    history = train_preference(policy, processor, pairs, PreferenceConfig(loss="adavip", steps=40))

Per step, `batch_size` pairs drawn by `step_pairs` (a function of seed and step: a resumed run sees the same
batches) are scored in one forward of the policy and one of the reference (a frozen copy taken *before* any
checkpoint is loaded, so pass the same base model when resuming): rows (I_w, y_w), (I_w, y_l) and, for losses
that read it (`mdpo`, `adavip`, `vision_sigmoid`) and pairs that have one, (I_l, y_w). A batch mixes pairs with and without a vision
negative only for losses that do not read it; for the others a pair without one is skipped when sampling.
Metrics per step (loss, rewards/chosen, rewards/rejected, margins, accuracies, the vision twins and AdaViP's
vision share) go to `<output_dir>/metrics.jsonl`; `checkpoint_every` writes `<output_dir>/checkpoint` atomically
(`train.checkpoint`) and `resume=True` continues from it with the log cut to the checkpoint's step.
"""

from __future__ import annotations

import copy
import json
import os
import random
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor
from workbench.live import live_curve
from workbench.models.lean import lean_activations
from workbench.utils import tqdm

from workbench.preference.losses import PREFERENCE_LOSSES, PairLogps, preference_loss
from workbench.preference.pairs import PreferencePair
from workbench.preference.scoring import text_sequence_logps, vl_sequence_logps
from workbench.train.events import ScalarEvents
from workbench.train.checkpoint import load_checkpoint, recover_checkpoint, save_checkpoint
from workbench.train.sft import lr_lambda

VISION_LOSSES = ("mdpo", "adavip", "vision_sigmoid")


@dataclass(frozen=True)
class PreferenceConfig:
    """Hyper-parameters of `train_preference`."""

    loss: str = field(default="sigmoid", metadata={"help": "a PREFERENCE_LOSSES name: sigmoid | ipo | hinge | mdpo | adavip | vision_sigmoid"})
    beta: float = field(default=0.1, metadata={"help": "β of the implicit reward"})
    steps: int = field(default=40, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "pairs per step"})
    lr: float = field(default=1e-5, metadata={"help": "peak AdamW learning rate"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps, then cosine decay"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm"})
    seed: int = field(default=0, metadata={"help": "batch-order seed"})
    output_dir: str | None = field(default=None, metadata={"help": "metrics.jsonl and checkpoint/ (None: nothing written)"})
    checkpoint_every: int = field(default=0, metadata={"help": "steps between checkpoints (0: none)"})
    resume: bool = field(default=False, metadata={"help": "continue from output_dir/checkpoint"})
    logits_chunk: int = field(default=1024, metadata={"help": "answer tokens per LM-head chunk (0: full [B, T, V] logits)"})
    pack: bool = field(default=False, metadata={"help": "text pairs: each prompt once, its chosen and rejected answers behind it in one padding-free row (models.packing)"})
    lean_activations: bool = field(default=True, metadata={"help": "the policy's SwiGLU MLPs and RMSNorms keep fewer tensors for the backward (models.lean: same gradient bit for bit)"})
    precompute_reference: bool = field(default=False, metadata={"help": "score π_ref once, before step 0, for every pair a step will draw, and reuse it (the reference is frozen; TRL's precompute_ref_log_probs)"})

    def __post_init__(self):
        PREFERENCE_LOSSES.get(self.loss)  # unknown name -> one sentence listing the known ones
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"PreferenceConfig.{name} must be a positive int, got {v!r}")
        for name in ("warmup_steps", "checkpoint_every", "seed", "logits_chunk"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"PreferenceConfig.{name} must be a non-negative int, got {v!r}")
        if not self.beta > 0 or not 0 < self.lr < 1 or not self.grad_clip > 0:
            raise ValueError(f"PreferenceConfig needs beta > 0, 0 < lr < 1 and grad_clip > 0, got beta={self.beta}, "
                             f"lr={self.lr}, grad_clip={self.grad_clip}")
        if (self.resume or self.checkpoint_every) and not self.output_dir:
            raise ValueError("PreferenceConfig.resume and checkpoint_every need an output_dir")


def step_pairs(pool: Sequence, batch_size: int, seed: int, step: int) -> list:
    """The `batch_size` pairs (or pool positions, given a range) of step `step`: `random.Random(f"{seed}-{step}").sample(pool, batch_size)` — a
    function of (seed, step) alone, so a resumed run, an SFT baseline and a peer benchmark see the same batches."""
    return random.Random(f"{seed}-{step}").sample(pool, batch_size)


def _score(model, processor, pairs: Sequence[PreferencePair], with_vision: bool, chunk: int | None = 1024,
           packed: bool = False):
    """Sequence log-probs of the rows (I_w, y_w), (I_w, y_l)[, (I_l, y_w)] of `pairs`, one forward (text-only
    pairs, `scene` None, through the tokenizer `processor`; `packed`: `scoring.packed_sequence_logps`)."""
    prompts = [p.prompt for p in pairs] * (3 if with_vision else 2)
    answers = [p.chosen for p in pairs] + [p.rejected for p in pairs] + ([p.chosen for p in pairs] if with_vision else [])
    if pairs[0].scene is None:
        logps, tokens = text_sequence_logps(model, processor, prompts, answers, chunk, packed)
        return logps.double().split(len(pairs)), tokens.double().split(len(pairs))
    images = [p.image for p in pairs] * 2 + ([p.rejected_image for p in pairs] if with_vision else [])
    logps, tokens = vl_sequence_logps(model, processor, prompts, answers, images, chunk)
    return logps.double().split(len(pairs)), tokens.double().split(len(pairs))


def _unwrap(model):
    return getattr(model, "module", model)  # DDP wraps the PEFT model


def _is_peft(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def _reference_logps(policy, reference, processor, pairs: Sequence[PreferencePair], with_vision: bool,
                     chunk: int | None, packed: bool) -> tuple[Tensor, ...]:
    """π_ref's sequence log-probs (chosen, rejected[, vision-rejected]), each [B], without grad; `reference` None
    with a PEFT policy: the policy with its adapters disabled."""
    with torch.no_grad():
        if reference is None:
            with _unwrap(policy).disable_adapter():
                return _score(policy, processor, pairs, with_vision, chunk, packed)[0]
        return _score(reference, processor, pairs, with_vision, chunk, packed)[0]


def batch_logps(policy, reference, processor, pairs: Sequence[PreferencePair], with_vision: bool,
                chunk: int | None = 1024, packed: bool = False, ref: Sequence[Tensor] | None = None,
                lean: bool = True) -> PairLogps:
    """`PairLogps` of `pairs` under the policy (with grad) and the reference (without). `reference` None with a
    PEFT policy: the policy with its adapters disabled (the base it was built on), no second copy in memory.
    `chunk`: answer tokens per LM-head chunk (`preference.scoring`; None = full logits; a DDP-wrapped policy always
    runs its own forward, so DDP's gradient hooks see it). `packed`: text pairs through the packed forward.
    `ref`: the reference's log-probs of these pairs, already computed (`precompute_reference_logps`). `lean`: the
    policy's forward under `models.lean.lean_activations` (same numbers, less kept for the backward)."""
    if ref is None:  # the reference first: its forward's buffers are freed before the policy's graph is built
        ref = _reference_logps(policy, reference, processor, pairs, with_vision, chunk, packed)
    with lean_activations(_unwrap(policy), lean):
        pol, tok = _score(policy, processor, pairs, with_vision, chunk, packed)
    return PairLogps(chosen=pol[0], rejected=pol[1], ref_chosen=ref[0], ref_rejected=ref[1],
                     vision_rejected=pol[2] if with_vision else None, ref_vision_rejected=ref[2] if with_vision else None,
                     chosen_tokens=tok[0], rejected_tokens=tok[1])


def precompute_reference_logps(policy, reference, processor, pool: Sequence[PreferencePair], cfg: PreferenceConfig,
                               rank: int = 0, world: int = 1) -> dict[int, Tensor]:
    """π_ref's log-probs of every pool pair that this process's shard of steps 0 … steps − 1 draws (`step_pairs`),
    scored once in pool order, `batch_size // world` pairs a forward: {pool index: [2 or 3] float64}. A function of
    (pool, config) alone, so a resumed run reuses exactly the numbers of the first (it scores steps 0 … start too)."""
    with_vision = cfg.loss in VISION_LOSSES
    positions = range(len(pool))  # step_pairs draws by position, so drawing positions names the same pairs
    needed = sorted({i for step in range(cfg.steps)
                     for i in step_pairs(positions, cfg.batch_size, cfg.seed, step)[rank::world]})
    size, out = max(1, cfg.batch_size // world), {}
    for j in range(0, len(needed), size):
        idx = needed[j:j + size]
        logps = _reference_logps(policy, reference, processor, [pool[i] for i in idx], with_vision,
                                 cfg.logits_chunk or None, cfg.pack)
        out.update(zip(idx, torch.stack(logps, 1)))
    return out


def _resume(cfg: PreferenceConfig, policy, optimizer, scheduler) -> tuple[int, list[dict]]:
    path = os.path.join(cfg.output_dir, "checkpoint")
    recover_checkpoint(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"resume=True but {path} holds no checkpoint")
    state = load_checkpoint(path, model=policy, optimizer=optimizer, scheduler=scheduler)
    saved = state.get("extra", {}).get("config", {})
    changed = [k for k, v in asdict(cfg).items() if k != "resume" and saved.get(k, v) != v]
    if changed:
        raise ValueError(f"cannot resume {cfg.output_dir}: the config differs in {', '.join(changed)} "
                         f"(saved {', '.join(f'{k}={saved[k]!r}' for k in changed)})")
    log = os.path.join(cfg.output_dir, "metrics.jsonl")
    history = [json.loads(x) for x in open(log)] if os.path.exists(log) else []
    return int(state["step"]), [h for h in history if h["step"] <= state["step"]]


def train_preference(policy, processor, pairs: Sequence[PreferencePair], config: PreferenceConfig, *, reference=None,
                     accelerator=None, desc: str | None = None, on_log: Callable[[dict], None] | None = None) -> list[dict]:
    """Train `policy` in place on `pairs` with `config.loss`; returns one metrics dict per step.

    `reference`: the frozen π_ref (default: a copy of `policy` taken now, before any checkpoint is loaded; for a
    PEFT (LoRA) policy, the policy with its adapters disabled);
    `processor`: the VLM processor for image pairs, or the tokenizer for text-only pairs. `accelerator`: an
    `accelerate.Accelerator`; with P processes (e.g. `torchrun --nproc_per_node P`) each scores its shard
    `batch[rank::P]` of the step's pairs and DDP averages the gradients, which equals the one-process gradient
    when `batch_size` is a multiple of P (checked). Logged metrics are the local shard's; rank 0 writes files."""
    cfg = config
    with_vision = cfg.loss in VISION_LOSSES
    pool = [p for p in pairs if p.rejected_image is not None] if with_vision else list(pairs)
    if len({p.scene is None for p in pool}) > 1:
        raise ValueError("pairs mix text-only pairs (scene None) with image pairs; train them separately")
    if len(pool) < cfg.batch_size:
        what = "pairs with a vision negative" if with_vision else "pairs"
        raise ValueError(f"preference loss {cfg.loss!r} needs at least batch_size = {cfg.batch_size} {what}, got {len(pool)}")
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of the {world} processes")
    if reference is not None:
        reference = reference.eval().requires_grad_(False)
    elif not _is_peft(policy):
        reference = copy.deepcopy(policy).eval().requires_grad_(False)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, cfg.warmup_steps, cfg.steps))
    start, history = _resume(cfg, policy, opt, sched) if cfg.resume else (0, [])
    model = policy
    if accelerator is not None:
        model, opt = accelerator.prepare(policy, opt)
    log_path = os.path.join(cfg.output_dir, "metrics.jsonl") if cfg.output_dir and rank == 0 else None
    if log_path:
        os.makedirs(cfg.output_dir, exist_ok=True)
        with open(log_path, "w") as f:
            f.writelines(json.dumps(h) + "\n" for h in history)
    events = ScalarEvents(cfg.output_dir, purge_step=start + 1) if log_path else None  # TensorBoard beside metrics.jsonl
    policy.train()
    opt.zero_grad(set_to_none=True)
    cached = precompute_reference_logps(policy, reference, processor, pool, cfg, rank, world) if cfg.precompute_reference else None
    bar = tqdm(range(start, cfg.steps), desc=desc or f"preference {cfg.loss}", initial=start, total=cfg.steps,
               disable=rank != 0)
    curve = live_curve(desc or f"preference {cfg.loss}", ("loss", "rewards/margins"), kind="preference") if rank == 0 else None
    try:
        for step in bar:
            drawn = step_pairs(range(len(pool)), cfg.batch_size, cfg.seed, step)[rank::world]
            batch = [pool[i] for i in drawn]
            ref = None if cached is None else torch.stack([cached[i] for i in drawn]).unbind(1)
            lp = batch_logps(model, reference, processor, batch, with_vision, cfg.logits_chunk or None, cfg.pack, ref,
                             cfg.lean_activations)
            loss, metrics = preference_loss(cfg.loss, lp, cfg.beta)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"preference loss became {loss.item()} at step {step}")
            accelerator.backward(loss) if accelerator is not None else loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip))
            opt.step()
            opt.zero_grad(set_to_none=True)  # here, not before the backward: no gradients live through the next forwards
            sched.step()
            entry = {"step": step + 1, "loss": float(loss.detach()), "grad_norm": grad_norm, "lr": sched.get_last_lr()[0], **metrics}
            history.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3f}", margin=f"{entry['rewards/margins']:.3f}", refresh=False)
            if log_path:
                with open(log_path, "a") as f:
                    f.write(json.dumps(entry) + "\n")
                events.write(entry)
            if rank == 0 and cfg.checkpoint_every and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
                save_checkpoint(os.path.join(cfg.output_dir, "checkpoint"), model=policy, optimizer=opt, scheduler=sched,
                                step=step + 1, extra={"config": asdict(cfg)})
            if on_log:
                on_log(entry)
            if curve:
                curve(entry)
    finally:
        if events is not None:
            events.close()
    bar.close()
    if curve:
        curve.close()
    policy.eval()
    return history
