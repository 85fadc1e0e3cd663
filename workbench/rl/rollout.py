"""Rollouts: sample G completions per prompt, score them, and keep everything a policy update needs.

A `Rollout` is the typed record that flows from sampling to the update (GRPO-Zero's `Episode`,
batched). `collect_rollout` does sample → score → shape (DAPO overlong) → filter (DAPO dynamic
sampling: drop groups whose rewards are all equal and sample more prompts until the batch is full,
up to a cap of rounds).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Sequence

import torch

from workbench.models.generation import encode_prompts, sample
from workbench.rl.advantages import group_stats
from workbench.rl.rewards import RewardSpec, overlong_penalty, score_completions


@dataclass
class RLTask:
    """What the trainer needs from a task.

    Attributes:
        name: for logs.
        sample: `(n, rng: random.Random) -> list[problem]` training problems.
        prompt: `problem -> str` the chat prompt.
        rewards: weighted reward functions `fn(completion, problem) -> float`.
        encode: optional `(tokenizer_or_processor, problems, prompts) -> (prompt_ids, prompt_mask, row_inputs)`
            for tasks with images; `row_inputs` is a list (one dict per prompt) of extra model inputs.
        eval_problems: optional `n -> list[problem]` held-out problems; `correct(completion, problem) -> bool`.
        annotate: optional `(policy, tokenizer, rollout) -> {name: [N, T] tensor}` run after log π_old is
            scored and before the update; the tensors land in `rollout.extras`, where token weights read
            them (ToR's `visual_dependency`). The trainer scores log π_old up front when it is set.
        heldout_metrics: optional `(completions, problems) -> {name: float}` extra held-out metrics
            (e.g. ShapeWorld perception accuracy), reported next to accuracy by `evaluate_heldout`.
    """

    name: str
    sample: Callable[[int, random.Random], list]
    prompt: Callable[[object], str]
    rewards: list[RewardSpec]
    encode: Callable | None = None
    eval_problems: Callable[[int], list] | None = None
    correct: Callable[[str, object], bool] | None = None
    annotate: Callable | None = None
    heldout_metrics: Callable | None = None


@dataclass
class Rollout:
    """N = (groups × G) completions. Shapes: prompt_* [N, P] (left-padded), completion_* [N, T]
    (right-padded), rewards/group_ids/truncated [N]; old_logp/ref_logp/entropy [N, T] once computed;
    `row_inputs`: per-row extra model inputs (e.g. pixel_values) or None."""

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    truncated: torch.Tensor
    rewards: torch.Tensor
    reward_parts: dict[str, torch.Tensor]
    group_ids: torch.Tensor
    texts: list[str]
    problems: list
    row_inputs: list[dict] | None = None
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.completion_ids.size(0)

    def select(self, idx: torch.Tensor | Sequence[int]) -> "Rollout":
        """Rows `idx` (a [K] long tensor or list) as a new Rollout."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if torch.is_tensor(v):
                out[f.name] = v[idx.to(v.device)]
            elif isinstance(v, dict):
                out[f.name] = {k: t[idx.to(t.device)] for k, t in v.items()}
            elif isinstance(v, list):
                out[f.name] = [v[i] for i in idx.tolist()]
            else:
                out[f.name] = v
        return Rollout(**out)

    def trim(self) -> "Rollout":
        """Drop completion columns that are padding in every row (work saved in micro-batches of short rows)."""
        T = int(self.completion_mask.sum(-1).max()) if len(self) else 0
        if T == self.completion_ids.size(1):
            return self
        cut = lambda t: t[:, :T] if t is not None else None  # noqa: E731
        return replace(self, completion_ids=cut(self.completion_ids), completion_mask=cut(self.completion_mask),
                       old_logp=cut(self.old_logp), ref_logp=cut(self.ref_logp), entropy=cut(self.entropy),
                       extras={k: cut(v) for k, v in self.extras.items()})

    def model_inputs(self) -> dict:
        """Extra model inputs of these rows, concatenated along dim 0 (e.g. pixel_values, image_grid_thw)."""
        if not self.row_inputs:
            return {}
        return {k: torch.cat([r[k] for r in self.row_inputs], 0) for k in self.row_inputs[0]}

    def to(self, device) -> "Rollout":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in moved.items():
            if torch.is_tensor(v):
                moved[k] = v.to(device)
            elif isinstance(v, dict):
                moved[k] = {kk: t.to(device) for kk, t in v.items()}
        if self.row_inputs:
            moved["row_inputs"] = [{k: t.to(device) for k, t in r.items()} for r in self.row_inputs]
        return Rollout(**moved)

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(-1)


def _pad_to(x: torch.Tensor, width: int, value, left: bool) -> torch.Tensor:
    pad = width - x.size(1)
    if pad == 0:
        return x
    filler = x.new_full((x.size(0), pad) + tuple(x.shape[2:]), value)
    return torch.cat([filler, x] if left else [x, filler], 1)


def cat_rollouts(parts: list[Rollout], pad_id: int) -> Rollout:
    """Concatenate rollouts (prompts re-padded on the left, completions on the right)."""
    if len(parts) == 1:
        return parts[0]
    P = max(r.prompt_ids.size(1) for r in parts)
    T = max(r.completion_ids.size(1) for r in parts)
    cat = lambda name, width=None, value=0, left=False: torch.cat(  # noqa: E731
        [_pad_to(getattr(r, name), width, value, left) if width else getattr(r, name) for r in parts], 0)
    opt = lambda name: cat(name, T) if getattr(parts[0], name) is not None else None  # noqa: E731
    return Rollout(
        prompt_ids=cat("prompt_ids", P, pad_id, True), prompt_mask=cat("prompt_mask", P, 0, True),
        completion_ids=cat("completion_ids", T, pad_id), completion_mask=cat("completion_mask", T, 0),
        truncated=cat("truncated"), rewards=cat("rewards"), group_ids=cat("group_ids"),
        reward_parts={k: torch.cat([r.reward_parts[k] for r in parts]) for k in parts[0].reward_parts},
        texts=sum((r.texts for r in parts), []), problems=sum((r.problems for r in parts), []),
        row_inputs=sum((r.row_inputs for r in parts), []) if parts[0].row_inputs else None,
        old_logp=opt("old_logp"), ref_logp=opt("ref_logp"), entropy=opt("entropy"),
        extras={k: torch.cat([_pad_to(r.extras[k], T, 0, False) for r in parts]) for k in parts[0].extras},
    )


def pad_token_id(tokenizer) -> int:
    """The pad id of a tokenizer or of a processor's tokenizer."""
    tok = getattr(tokenizer, "tokenizer", tokenizer)
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


@dataclass
class SamplingStats:
    """What dynamic sampling did in one step."""

    rounds: int = 0
    groups_sampled: int = 0
    groups_dropped: int = 0
    frac_zero_std_groups: float = 0.0
    completion_tokens: int = 0
    prompt_outcomes: list = field(default_factory=list)  # (prompt, group had all-equal rewards) per group, with a prompt history


def generate_group(model, tokenizer, task: RLTask, problems: list, *, num_generations: int, max_new_tokens: int,
                   temperature: float, top_p: float, generator: torch.Generator | None, first_group_id: int = 0,
                   greedy: bool = False) -> Rollout:
    """Sample `num_generations` completions for each problem and score them (no filtering)."""
    prompts = [task.prompt(p) for p in problems]
    device = next(model.parameters()).device
    row_inputs = None
    if task.encode is not None:
        ids, mask, per_prompt = task.encode(tokenizer, problems, prompts)
        row_inputs = [dict(r) for r in per_prompt for _ in range(num_generations)] if per_prompt else None
        extra = {k: torch.cat([r[k] for r in per_prompt], 0).to(device) for k in per_prompt[0]} if per_prompt else {}
    else:
        ids, mask = encode_prompts(tokenizer, prompts, device)
        extra = {}
    gen = sample(model, tokenizer, input_ids=ids, attention_mask=mask, num_samples=num_generations,
                 max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, generator=generator,
                 greedy=greedy, **extra)
    rows = [p for p in problems for _ in range(num_generations)]
    specs = task.rewards
    rewards, parts = score_completions(specs, gen.texts, rows)
    group_ids = torch.arange(first_group_id, first_group_id + len(problems)).repeat_interleave(num_generations)
    return Rollout(gen.prompt_ids.cpu(), gen.prompt_mask.cpu(), gen.completion_ids.cpu(), gen.completion_mask.cpu(),
                   gen.truncated.cpu(), rewards, parts, group_ids, gen.texts, rows, row_inputs)


def refill_size(need: int, kept: int, sampled: int, headroom: float, cap: int) -> int:
    """Prompts to sample in a dynamic-sampling round, so that one round usually suffices.

        n = ⌈need / q̂ · headroom⌉,   q̂ = (kept + 1) / (sampled + 2)   (a keep rate, Laplace-smoothed)

    clipped to [need, cap]. With headroom 1 the expected number kept is `need`, so a further round
    is needed about half the time; 1.5 makes that rare. Groups beyond `need` are discarded unseen by
    the update (verl's DAPO recipe likewise over-samples a fixed generation batch and trims).
    The first round of a step uses the previous step's counts with headroom 1 (`prior_keep`), a refill
    the step's own counts so far with `refill_headroom`."""
    rate = (kept + 1) / (sampled + 2)
    return int(min(max(math.ceil(need / rate * headroom), need), max(cap, need)))


def collect_rollout(
    model, tokenizer, task: RLTask, *, num_prompts: int, num_generations: int, max_new_tokens: int,
    temperature: float = 1.0, top_p: float = 1.0, generator: torch.Generator, rng: random.Random,
    dynamic_sampling: bool = False, max_sampling_rounds: int = 4, refill_headroom: float = 1.5,
    overlong_buffer: int = 0, overlong_factor: float = 1.0, mask_truncated: bool = False,
    prior_keep: tuple[int, int] | None = None, prompt_history=None, explore: float = 1.0,
) -> tuple[Rollout, SamplingStats]:
    """Sample, score, shape and filter one step's rollout.

    With `dynamic_sampling` (DAPO, arXiv 2503.14476), groups whose final rewards are all equal carry
    no gradient under GRPO-style advantages; they are dropped and new prompts are sampled until
    `num_prompts` groups are kept or `max_sampling_rounds` rounds have run (then the step proceeds
    with what it has; the count is logged). A refill round samples `refill_size(...)` prompts — the
    missing groups divided by the keep rate seen so far, times `refill_headroom` (at most
    2 × num_prompts) — and the surplus is dropped, so a step rarely needs a third round.
    `prior_keep` = (groups kept, groups sampled) of the previous step sizes the first round the same
    way with headroom 1 (`refill_size`), so a steady keep rate q costs about num_prompts / q groups
    in one round plus, about half the time, a small top-up — instead of num_prompts and then a
    refill sized with `refill_headroom`. Without it (first step, or no dynamic sampling) the first round is
    `num_prompts`.
    `prompt_history` (a `selective.PromptHistory`; None = off) draws the prompts GRESO-style: a prompt
    whose last z groups had all-equal rewards is sampled with probability explore^z. Every sampled
    group's outcome is then returned in `stats.prompt_outcomes` (the caller updates the history).
    `overlong_buffer` > 0 adds DAPO's soft overlong penalty; `mask_truncated` zeroes the completion
    mask of completions that hit `max_new_tokens` (overlong filtering: they neither help nor hurt).
    """
    if refill_headroom < 1:
        raise ValueError(f"refill_headroom must be >= 1, got {refill_headroom}")
    stats = SamplingStats()
    kept: list[Rollout] = []
    n_kept, next_gid = 0, 0
    while True:
        stats.rounds += 1
        if stats.rounds == 1:
            want = refill_size(num_prompts, *prior_keep, 1.0, 2 * num_prompts) if (dynamic_sampling and prior_keep) else num_prompts
        else:
            want = refill_size(num_prompts - n_kept, n_kept, stats.groups_sampled, refill_headroom, 2 * num_prompts)
        problems = prompt_history.draw(task, want, rng, explore) if prompt_history is not None else task.sample(want, rng)
        ro = generate_group(model, tokenizer, task, problems, num_generations=num_generations,
                            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                            generator=generator, first_group_id=next_gid)
        next_gid += len(problems)
        stats.groups_sampled += len(problems)
        stats.completion_tokens += int(ro.completion_mask.sum())
        if overlong_buffer > 0:
            pen = overlong_penalty(ro.lengths, max_new_tokens, overlong_buffer, overlong_factor)
            ro.reward_parts["overlong"] = pen
            ro.rewards = ro.rewards + pen
        if mask_truncated:
            ro.completion_mask = ro.completion_mask * (~ro.truncated)[:, None].long()
        gs = group_stats(ro.rewards, ro.group_ids)
        if prompt_history is not None:
            settled = gs.zero_std_mask.view(len(problems), num_generations)[:, 0].tolist()  # rows are group-major
            stats.prompt_outcomes += [(task.prompt(p), z) for p, z in zip(problems, settled)]
        if stats.rounds == 1:
            stats.frac_zero_std_groups = gs.frac_zero_std_groups
        if dynamic_sampling:
            stats.groups_dropped += int(gs.zero_std_mask.sum()) // num_generations
            keep = (~gs.zero_std_mask).nonzero().squeeze(-1)
            ro = ro.select(keep)
        if len(ro):
            kept.append(ro)
            n_kept += len(ro) // num_generations
        if not dynamic_sampling or n_kept >= num_prompts or stats.rounds >= max_sampling_rounds:
            break
    if not kept:  # every group was dropped: an empty rollout, the trainer skips the update
        return replace(ro, extras={}), stats
    out = cat_rollouts(kept, pad_token_id(tokenizer))
    if dynamic_sampling and n_kept > num_prompts:  # trim to exactly num_prompts groups
        out = out.select(torch.arange(num_prompts * num_generations))
    return out, stats
