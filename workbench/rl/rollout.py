"""The rollout record: G completions per prompt and everything a policy update needs.

A `Rollout` is the typed record that flows from sampling to the update (GRPO-Zero's `Episode`,
batched). It is made by a rollout source (`workbench.rl.sources`), thinned by rollout filters
(`workbench.rl.filters`) inside `workbench.rl.collect.collect_rollout`, and read by the update.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import torch

from workbench.tasks.base import Task as RLTask  # noqa: F401  (the trainer's name for a task)


@dataclass
class Rollout:
    """N = (groups × G) completions. Shapes: prompt_* [N, P] (left-padded), completion_* [N, T]
    (right-padded), rewards/group_ids/truncated [N]; old_logp/ref_logp/entropy [N, T] once computed;
    `row_inputs`: per-row extra model inputs (e.g. pixel_values) or None; `extras`: named [N, T] per-token
    or [N] per-row tensors (visual dependency, an off-policy token mask, per-prompt features)."""

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
                       extras={k: cut(v) if v.dim() == 2 else v for k, v in self.extras.items()})

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
        extras={k: torch.cat([_pad_to(r.extras[k], T, 0, False) if r.extras[k].dim() == 2 else r.extras[k] for r in parts])
                for k in parts[0].extras},
    )


def pad_token_id(tokenizer) -> int:
    """The pad id of a tokenizer or of a processor's tokenizer."""
    tok = getattr(tokenizer, "tokenizer", tokenizer)
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
