"""`RLConfig`: every knob of an RLVR run, each field documenting itself (TRL-style).

    cfg = RLConfig.for_method("dapo", token_weights=["low_prob"], steps=200)   # a method preset + overrides
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from workbench.rl.advantages import ADVANTAGES
from workbench.rl.filters import ROLLOUT_FILTERS
from workbench.rl.losses import LossConfig
from workbench.rl.methods import METHODS, loss_preset
from workbench.rl.sources import ROLLOUT_SOURCES, parse_spec


#: the automatic `RLConfig.logits_chunk`: chunk the LM head at vocabularies of this many ids and more
AUTO_CHUNK_VOCAB, AUTO_LOGITS_CHUNK = 16384, 256


def resolve_logits_chunk(cfg, model):
    """`cfg` with a concrete `logits_chunk`: an explicit value is kept; None (auto) becomes `AUTO_LOGITS_CHUNK`
    when `model`'s output embedding has >= `AUTO_CHUNK_VOCAB` rows (a real tokenizer's ~150k: no [B, T, V]
    float32 logits), else 0 (small vocabularies gain nothing from chunking)."""
    if cfg.logits_chunk is not None:
        return cfg
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    vocab = head.weight.shape[0] if head is not None else 0
    return dataclasses.replace(cfg, logits_chunk=AUTO_LOGITS_CHUNK if vocab >= AUTO_CHUNK_VOCAB else 0)


@dataclass
class RLConfig:
    """Every knob of an RLVR run (each field documents itself, TRL-style)."""

    # the method
    loss: str = field(default="grpo", metadata={"help": "whose policy loss (clip range, dual clip, aggregation): grpo | dapo | dr_grpo | fipo (METHODS registry)"})
    advantage: Any = field(default="grpo", metadata={"help": "advantage estimator: a name or (name, kwargs): grpo | dr_grpo | rloo | durian (ADVANTAGES registry)"})
    token_weights: list = field(default_factory=list, metadata={"help": "token weights composed by product, e.g. ['low_prob', ('future_kl', {...})]"})
    epsilon_low: float | None = field(default=None, metadata={"help": "override the preset's lower clip ε"})
    epsilon_high: float | None = field(default=None, metadata={"help": "override the preset's upper clip ε (DAPO clip-higher: 0.28)"})
    dual_clip_c: float | None = field(default=None, metadata={"help": "override the preset's dual-clip constant c (> 1)"})
    kl_coef: float = field(default=0.0, metadata={"help": "β of the k3 KL penalty against the reference policy"})
    off_policy_gamma: float = field(default=0.1, metadata={"help": "γ of the shaped ratio π/(π+γ) on off-policy (expert) tokens (TGRL / LUFFY)"})
    off_policy_shaping: bool = field(default=True, metadata={"help": "shape the off-policy ratio (False: the plain unclipped π_θ)"})
    agg: str | None = field(default=None, metadata={"help": "override the preset's loss aggregation"})
    # rollouts
    num_prompts: int = field(default=16, metadata={"help": "prompts (groups) per step, across all processes"})
    num_generations: int = field(default=8, metadata={"help": "G: completions per prompt"})
    max_new_tokens: int = field(default=48, metadata={"help": "completion length cap (also Dr.GRPO's L_max)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    rollout_source: Any = field(default="policy", metadata={"help": "where completions come from: a ROLLOUT_SOURCES name or (name, kwargs); 'policy' = on-policy sampling"})
    rollout_filters: list = field(default_factory=list, metadata={"help": "ROLLOUT_FILTERS specs applied to every sampled round, with refill (e.g. ['dapo_dynamic'])"})
    dynamic_sampling: bool = field(default=False, metadata={"help": "DAPO: drop all-equal-reward groups and refill (adds the 'dapo_dynamic' filter)"})
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
    pack: bool = field(default=False, metadata={"help": "padding-free packed update: per micro-batch one row per distinct prompt, its completions back to back under a block mask (models.packing; same gradient, no padding, one forward so DDP runs it too); text models only"})
    logits_chunk: int | None = field(default=None, metadata={"help": "completion tokens per LM-head chunk in the update and scoring (models.chunked: no [B, T, V] logits); 0: full logits; None (default): auto, AUTO_LOGITS_CHUNK when the policy's LM head has >= AUTO_CHUNK_VOCAB ids, else full logits (benchmarks/bench_grpo_shapes.py: at a 32k vocabulary chunking is 1.24x faster at 0.25x the memory, at 128 ids 0.92-0.99x)"})
    lean_activations: bool = field(default=True, metadata={"help": "SwiGLU MLPs and RMSNorms keep fewer tensors for the backward in the update (models.lean: same gradient bit for bit, about a third less activation memory)"})
    skip_zero_advantage: bool = field(default=True, metadata={"help": "leave rows whose advantage is 0 on every token out of the update's forward/backward (exact: their gradient is 0); off automatically with a KL penalty or a batch-coupled token weight"})
    lr: float = field(default=2e-5, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up (optimizer steps), then cosine to 10%"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm"})
    device: str = field(default="auto", metadata={"help": "'auto' (cuda > mps > cpu) | 'cpu' | 'cuda' | 'mps': where the Accelerator puts the run"})
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
    resume: bool = field(default=False, metadata={"help": "continue from output_dir/checkpoint if present (the saved config must match, see rl/run_dir.py)"})
    resume_changes: list = field(default_factory=list, metadata={"help": "config fields a resumed run changes on purpose (e.g. ['lr']); any other difference stops the resume"})
    eval_every: int = field(default=0, metadata={"help": "held-out greedy accuracy every k steps (0 = off)"})
    eval_n: int = field(default=200, metadata={"help": "held-out problems per evaluation"})
    progress: bool = field(default=True, metadata={"help": "show a tqdm bar"})

    @classmethod
    def for_method(cls, method: str, **overrides) -> "RLConfig":
        """The preset of `method` (`METHODS`: grpo, dr_grpo, dapo, fipo) with `overrides` applied; an unknown
        field is a ValueError naming it."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS.names())}")
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(overrides) - known)
        if bad:
            raise ValueError(f"unknown RLConfig field {bad[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**{**METHODS.get(method).config, **overrides})

    def loss_config(self) -> LossConfig:
        over = {k: getattr(self, k) for k in ("epsilon_low", "epsilon_high", "dual_clip_c", "agg") if getattr(self, k) is not None}
        return loss_preset(self.loss, kl_coef=self.kl_coef, **over)

    def validate(self) -> None:
        """Every field checked before the first rollout: one sentence naming the first bad value."""
        for name in ("num_prompts", "num_generations", "max_new_tokens", "num_epochs", "num_minibatches", "micro_batch_size",
                     "steps", "max_sampling_rounds", "lora_r"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"RLConfig.{name} must be an integer >= 1, got {v!r}")
        for name in ("eval_every", "checkpoint_every", "overlong_buffer", "eval_n", "warmup_steps", "seed", "logits_chunk"):
            v = getattr(self, name)
            if name == "logits_chunk" and v is None:  # auto
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise ValueError(f"RLConfig.{name} must be an integer >= 0, got {v!r}")
        for name in ("lr", "weight_decay", "grad_clip", "temperature", "top_p", "kl_coef", "overlong_factor", "off_policy_gamma"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"RLConfig.{name} must be a finite number, got {v!r}")
        if not self.grad_clip > 0:  # a negative clip norm flips the update into gradient ascent, 0 freezes it
            raise ValueError(f"RLConfig.grad_clip must be > 0, got {self.grad_clip}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"RLConfig.top_p must be in (0, 1], got {self.top_p}")
        if self.lr < 0 or self.weight_decay < 0:
            raise ValueError(f"RLConfig.lr and weight_decay must be >= 0, got {self.lr} and {self.weight_decay}")
        if self.resume and not self.output_dir:
            raise ValueError("RLConfig.resume=True needs output_dir (where the checkpoint is), got None")
        if not 0.0 <= self.explore <= 1.0:
            raise ValueError(f"RLConfig.explore must be in [0, 1], got {self.explore}")
        if self.refill_headroom < 1:
            raise ValueError(f"RLConfig.refill_headroom must be >= 1, got {self.refill_headroom}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"RLConfig.device must be 'auto', 'cpu', 'cuda[:i]' or 'mps', got {self.device!r}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"RLConfig.mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")
        if not self.off_policy_gamma > 0:
            raise ValueError(f"RLConfig.off_policy_gamma must be > 0, got {self.off_policy_gamma}")
        if self.temperature <= 0:
            raise ValueError(f"RLConfig.temperature must be > 0, got {self.temperature}")
        advantage, adv_kwargs = parse_spec(self.advantage)
        if self.num_generations < 2 and advantage in ("grpo", "dr_grpo", "rloo", "durian"):
            raise ValueError(f"RLConfig.num_generations must be >= 2 for group advantages, got {self.num_generations}")
        check_kwargs(ADVANTAGES.get(advantage), adv_kwargs, f"advantage estimator {advantage!r}")  # unknown name -> KeyError
        source, source_kwargs = parse_spec(self.rollout_source)
        check_kwargs(ROLLOUT_SOURCES.get(source), source_kwargs, f"rollout source {source!r}", ("ctx", "problems", "first_group_id"))
        for spec in self.rollout_filters:
            name, kwargs = parse_spec(spec)
            check_kwargs(ROLLOUT_FILTERS.get(name), kwargs, f"rollout filter {name!r}", ("rollout", "num_generations"))
        self.loss_config()


def check_kwargs(fn, kwargs: dict, what: str, reserved=("rewards", "group_ids", "mask", "ctx")) -> None:
    """A ValueError naming the first of `kwargs` that `fn` does not take (a misspelled option must not be
    ignored); `reserved` are the positional inputs the caller passes itself."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    reserved = set(reserved)
    bad = sorted(k for k in kwargs if k not in params or k in reserved)
    if bad:
        known = ", ".join(k for k in params if k not in reserved) or "none"
        raise ValueError(f"{what} has no option {bad[0]!r}; its options: {known}")


def jsonable_config(cfg: RLConfig) -> dict:
    """The config as plain JSON types (tuples as lists, anything else as its string)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
