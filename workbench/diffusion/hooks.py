"""Module-output reuse across denoising steps: the one mechanism every cache of `diffusion.caches` uses.

`ReusePlan(model, names, decide)` replaces the `forward` of each named submodule (a UNet block, a
cross-attention, the whole ControlNet) with a wrapper, and puts the original back on `close()` (or on
leaving its `with`). Within a denoising step (`begin_step(i)`), a wrapped module called with

- an output already computed *this step* (a probe ran it before the real forward) → that output (a memo hit);
- `decide(name, i)` true → its real forward; the output is kept as its cache and as this step's output;
- `decide(name, i)` false → its cached output, and its body does not run (so it costs no MACs);

a module asked to reuse before it ever ran computes (an empty cache cannot be reused). Outputs are
stored as returned (tensors or tuples of tensors); diffusers' UNet and ControlNet never modify a block's
output in place, so a stored output stays valid.

`plan.computed[i]` / `plan.reused[i]` list, per step, the modules that ran and those that were reused —
the record behind "where each cache's skips fall" in notebook 10.

    with ReusePlan(model, ["unet.mid_block"], lambda name, i: i % 3 == 0) as plan:
        ...  # sampling loop calling plan.begin_step(i) before each step
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable

import torch

Decide = Callable[[str, int], bool]


def submodule(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """`model.get_submodule(name)` with one sentence naming a wrong name."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise KeyError(f"the model has no submodule {name!r}") from None


class ReusePlan:
    """Wrap `names` (submodule paths of `model`) so that `decide(name, step)` chooses compute or reuse."""

    def __init__(self, model: torch.nn.Module, names: Iterable[str], decide: Decide):
        self.model, self.decide = model, decide
        self.names = list(dict.fromkeys(names))
        self.cache: dict[str, object] = {}
        self.fresh: dict[str, object] = {}
        self.step = -1
        self.computed: dict[int, list[str]] = defaultdict(list)
        self.reused: dict[int, list[str]] = defaultdict(list)
        self._originals: dict[str, object] = {}
        modules = dict(model.named_modules())
        for name in self.names:
            module = modules.get(name)
            if module is None or "forward" in vars(module):
                self.close()  # what was wrapped so far goes back before the error
                if module is None:
                    raise KeyError(f"the model has no submodule {name!r}")
                raise RuntimeError(f"{name} already has a wrapped forward (another cache is attached)")
            self._originals[name] = module.forward
            module.forward = self._wrap(name, module.forward)

    def _wrap(self, name: str, forward):
        def wrapped(*args, **kwargs):
            if name in self.fresh:
                return self.fresh[name]
            if name not in self.cache or self.decide(name, self.step):
                out = forward(*args, **kwargs)
                self.cache[name] = out
                self.computed[self.step].append(name)
            else:
                out = self.cache[name]
                self.reused[self.step].append(name)
            self.fresh[name] = out
            return out

        return wrapped

    def begin_step(self, step: int) -> None:
        """Start denoising step `step`: this step's memo is emptied."""
        self.step = step
        self.fresh = {}

    def close(self) -> None:
        """Put every original `forward` back and drop the cached outputs."""
        for name in self._originals:
            module = submodule(self.model, name)
            if "forward" in vars(module):
                del module.forward
        self._originals, self.cache, self.fresh = {}, {}, {}

    def __enter__(self) -> "ReusePlan":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def cross_attention_names(model: torch.nn.Module, prefix: str = "") -> list[str]:
    """Paths of every diffusers `Attention` whose keys come from the prompt (`is_cross_attention`)."""
    return [f"{prefix}{n}" for n, m in model.named_modules() if getattr(m, "is_cross_attention", False)
            and hasattr(m, "to_q")]


class LeafCalls:
    """Counts calls of every leaf module (Conv2d, Linear, …) under `model` while attached: a reused block's leaves
    are not called, so the counts prove a skip. `counts[name]` = calls of the leaf at that path. A leaf that is
    itself wrapped by a `ReusePlan` counts every call, reused or not (the hook fires before its forward)."""

    def __init__(self, model: torch.nn.Module):
        self.counts: dict[str, int] = defaultdict(int)
        self._handles = [m.register_forward_pre_hook(self._hook(n)) for n, m in model.named_modules()
                         if not list(m.children())]

    def _hook(self, name: str):
        def hook(module, args):
            self.counts[name] += 1

        return hook

    def under(self, prefix: str) -> int:
        """Total calls of the leaves whose path starts with `prefix`."""
        return sum(c for n, c in self.counts.items() if n == prefix or n.startswith(prefix + "."))

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "LeafCalls":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
