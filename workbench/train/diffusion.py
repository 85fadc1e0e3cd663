"""Training of notebook 10's models: the controllable diffusion model (ε-prediction) and the fidelity segmenter.

Diffusion (DDPM, arXiv 2006.11239; ControlNet, arXiv 2302.05543, trained jointly with the UNet from
scratch here — there is no pre-trained UNet to freeze at this scale): for a batch of images x₀ [B, 3, H, W],
maps and prompts from `tasks.shapes.segmentation`,

    t ~ U{0, …, T−1},  ε ~ N(0, I),  x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε,
    L = ‖y − f_θ(x_t, t | prompt, map)‖²,    y = x₀ (`prediction="sample"`, the default), ε, or v = √ᾱ_t ε − √(1 − ᾱ_t) x₀

(x₀-prediction: these images are flat colours on black, and a model that predicts the clean image outright gives
clean backgrounds after a few hundred steps where ε-prediction still left visible noise in our runs)

with the prompt replaced by the null prompt with probability `cfg_dropout` (so one model gives both
branches of classifier-free guidance). Batch s of a run is examples s·B … (s+1)·B − 1 of the training
stream and its noise comes from a generator seeded by (seed, s), so a resumed run replays the same batches
and noise: `resume` from a checkpoint folder continues bit-identically (tested).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import torch
from workbench.live import live_curve
from workbench.utils import tqdm

from workbench.diffusion.model import ControlledDiffusion
from workbench.diffusion.segmenter import Segmenter
from workbench.tasks.shapes.segmentation import NULL_ID, one_hot_maps, seg_batch, seg_config
from workbench.train.checkpoint import load_checkpoint, recover_checkpoint, save_checkpoint
from workbench.train.sft import lr_lambda


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """Hyper-parameters of `train_diffusion` (and of `train_segmenter`, which uses steps/batch/lr/seed)."""

    steps: int = field(default=1500, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "images per step"})
    lr: float = field(default=2e-3, metadata={"help": "peak AdamW learning rate (warm-up, cosine to 10 %)"})
    warmup: int = field(default=50, metadata={"help": "linear warm-up steps"})
    cfg_dropout: float = field(default=0.1, metadata={"help": "probability of the null prompt (CFG training)"})
    seed: int = field(default=0, metadata={"help": "training stream and noise seed"})
    checkpoint_every: int = field(default=0, metadata={"help": "steps between checkpoints (0: none)"})

    def __post_init__(self):
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"DiffusionTrainConfig.{name} must be an integer >= 1, got {v!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"DiffusionTrainConfig.lr must be a finite number > 0, got {self.lr!r}")
        if not 0.0 <= self.cfg_dropout < 1.0:
            raise ValueError(f"DiffusionTrainConfig.cfg_dropout must be in [0, 1), got {self.cfg_dropout!r}")
        if self.checkpoint_every < 0 or self.warmup < 0:
            raise ValueError(f"checkpoint_every and warmup must be >= 0, got {self.checkpoint_every}, {self.warmup}")


def diffusion_loss(model: ControlledDiffusion, batch, scheduler, generator: torch.Generator, cfg_dropout: float):
    """The prediction MSE of one batch (see the module docstring); noise, t and the dropout from `generator`."""
    device = next(model.parameters()).device
    x0 = batch.images.to(device)
    B = x0.shape[0]
    t = torch.randint(0, scheduler.config.num_train_timesteps, (B,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    drop = torch.rand(B, generator=generator) < cfg_dropout
    prompts = torch.where(drop[:, None], torch.full_like(batch.prompts, NULL_ID), batch.prompts).to(device)
    x_t = scheduler.add_noise(x0, noise.to(device), t.to(device))
    out = model.predict_noise(x_t, t.to(device), model.prompt_encoder(prompts), one_hot_maps(batch.maps).to(device))
    kind = model.cfg.prediction
    target = (noise.to(device) if kind == "epsilon" else x0 if kind == "sample"
              else scheduler.get_velocity(x0, noise.to(device), t.to(device)))
    return torch.nn.functional.mse_loss(out, target)


def _optimizer(model, cfg: DiffusionTrainConfig):
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, min(cfg.warmup, cfg.steps), cfg.steps))
    return opt, sched


def train_diffusion(model: ControlledDiffusion, cfg: DiffusionTrainConfig, checkpoint: str | None = None,
                    desc: str = "train diffusion") -> list[dict]:
    """Train `model` for `cfg.steps`; with `checkpoint` (a folder), resume from it when it holds a complete
    checkpoint and save to it every `checkpoint_every` steps. Returns the history `[{"step", "loss", "lr"}]`
    (every 50 steps and the last; a resumed run returns the part after the resume point)."""
    scene_cfg = seg_config(model.cfg.size, model.cfg.prompt_length // 2)
    scheduler = model.scheduler("ddpm")
    opt, sched = _optimizer(model, cfg)
    start = 0
    if checkpoint and recover_checkpoint(checkpoint):
        start = load_checkpoint(checkpoint, model=model, optimizer=opt, scheduler=sched)["step"]
    model.train()
    history, running = [], []
    bar = tqdm(range(start, cfg.steps), desc=desc, initial=start, total=cfg.steps, leave=False)
    curve = live_curve(desc, ("loss",), kind="diffusion")
    for step in bar:
        batch = seg_batch(cfg.batch_size, cfg.seed, scene_cfg, start=step * cfg.batch_size)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        loss = diffusion_loss(model, batch, scheduler, gen, cfg.cfg_dropout)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"diffusion loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running.append(loss.item())
        if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
            history.append({"step": step + 1, "loss": sum(running) / len(running), "lr": sched.get_last_lr()[0]})
            running = []
            bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
            if curve:
                curve(history[-1])
        if checkpoint and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            save_checkpoint(checkpoint, model=model, optimizer=opt, scheduler=sched, step=step + 1,
                            extra={"config": asdict(cfg)})
    if curve:
        curve.close()
    model.eval()
    return history


def train_segmenter(seg: Segmenter, cfg: DiffusionTrainConfig, size: int = 32, max_objects: int = 3,
                    desc: str = "train segmenter") -> list[dict]:
    """Pixel-wise cross-entropy of `seg` on rendered scenes (stream `cfg.seed + 500`, disjoint from the diffusion
    stream); mild Gaussian noise on the inputs (σ = 0.1) so that the judge is not thrown by a generator's grain."""
    scene_cfg = seg_config(size, max_objects)
    opt, sched = _optimizer(seg, cfg)
    seg.train()
    history = []
    for step in tqdm(range(cfg.steps), desc=desc, leave=False):
        batch = seg_batch(cfg.batch_size, cfg.seed + 500, scene_cfg, start=step * cfg.batch_size)
        gen = torch.Generator().manual_seed(cfg.seed * 7_919 + step)
        images = batch.images + 0.1 * torch.randn(batch.images.shape, generator=gen)
        loss = torch.nn.functional.cross_entropy(seg(images), batch.maps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
            history.append({"step": step + 1, "loss": loss.item()})
    seg.eval()
    return history


def checkpoint_folder(root: str, name: str) -> str:
    """`<root>/<name>.ckpt`: where a recipe keeps its resumable training state."""
    return os.path.join(root, f"{name}.ckpt")
