"""Supervised fine-tuning with a loss masked to the response tokens.

Reused by the zoo (tiny bases), the vision-language model and reward models. The loss is the mean
negative log-likelihood of the completion tokens only:

    L = − Σ_{b,t} m_{b,t} · log π(y_{b,t} | y_{b,<t}) / Σ_{b,t} m_{b,t},   m = 1 on completion tokens

Batches are right-padded (training needs no left padding) and built by `collate_sft`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from workbench.live import live_curve
from workbench.models.lean import lean_activations
from workbench.utils import tqdm

IGNORE_INDEX = -100


def collate_sft(tokenizer, prompts: Sequence[str], completions: Sequence[str], max_length: int | None = None) -> dict:
    """Tokenise (prompt, completion) pairs into a right-padded batch with prompt tokens masked.

    Returns:
        dict with `input_ids: [B, L]`, `attention_mask: [B, L]`, `labels: [B, L]` (−100 on the
        prompt and padding). Raises if a pair exceeds `max_length` (no silent truncation).
    """
    if len(prompts) != len(completions):
        raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
    if not prompts:
        raise ValueError("collate_sft got an empty batch")
    rows = []
    for p, c in zip(prompts, completions):
        p_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        c_ids = tokenizer(c, add_special_tokens=False)["input_ids"]
        if max_length is not None and len(p_ids) + len(c_ids) > max_length:
            raise ValueError(f"example of {len(p_ids) + len(c_ids)} tokens exceeds max_length={max_length}: {p[:40]!r}...")
        rows.append((p_ids, c_ids))
    L = max(len(p) + len(c) for p, c in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(rows), L), pad, dtype=torch.long)
    labels = torch.full((len(rows), L), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, (p, c) in enumerate(rows):
        ids = p + c
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention_mask[i, : len(ids)] = 1
        labels[i, len(p) : len(ids)] = torch.tensor(c)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def masked_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL over positions whose label is not −100. logits: [B, L, V], labels: [B, L]."""
    logits = logits[:, :-1].float()
    target = labels[:, 1:]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE_INDEX
    )


@dataclass
class SFTConfig:
    """Hyper-parameters of `sft`."""

    steps: int = field(default=200, metadata={"help": "optimizer steps"})
    lr: float = field(default=1e-3, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=20, metadata={"help": "linear warm-up steps, then cosine decay to 10%"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm"})
    log_every: int = field(default=10, metadata={"help": "steps between history entries"})
    lean_activations: bool = field(default=True, metadata={"help": "SwiGLU MLPs and RMSNorms keep fewer tensors for the backward (models.lean: same gradient bit for bit)"})

    def __post_init__(self):
        for name in ("steps", "log_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SFTConfig.{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"SFTConfig.warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        for name in ("lr", "weight_decay", "grad_clip"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"SFTConfig.{name} must be a finite number >= 0, got {v!r}")
        if not self.grad_clip > 0:
            raise ValueError(f"SFTConfig.grad_clip must be > 0 (a negative clip norm reverses the update), got {self.grad_clip}")


def lr_lambda(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0.1."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def sft(
    model: torch.nn.Module,
    batches: Iterator[dict],
    config: SFTConfig | None = None,
    on_log: Callable[[dict], None] | None = None,
    desc: str = "SFT",
) -> list[dict]:
    """Train `model` on `config.steps` batches from `batches` (dicts from `collate_sft`, plus any extra
    model inputs such as `pixel_values`). Returns the history: a list of `{"step", "loss", "lr"}`."""
    config = config or SFTConfig()
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, config.warmup_steps, config.steps))
    model.train()
    opt.zero_grad(set_to_none=True)
    history, running = [], []
    bar = tqdm(range(config.steps), desc=desc, leave=False)
    curve = live_curve(desc, ("loss",), kind="sft")  # None unless a live notebook frontend is attached
    for step in bar:
        batch = next(batches)
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        labels = batch.pop("labels")
        with lean_activations(model, config.lean_activations):
            logits = model(**batch, use_cache=False).logits  # no KV cache to build and hold in training
        loss = masked_nll(logits, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"SFT loss became {loss.item()} at step {step}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)  # after the step: no gradients live through the next forward
        sched.step()
        running.append(loss.item())
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            entry = {"step": step + 1, "loss": sum(running) / len(running), "lr": sched.get_last_lr()[0]}
            history.append(entry)
            running = []
            bar.set_postfix(loss=f"{entry['loss']:.3f}")
            if on_log:
                on_log(entry)
            if curve:
                curve(entry)
    if curve:
        curve.close()
    model.eval()
    return history
