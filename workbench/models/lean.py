"""Lean activations: the decoder's SwiGLU MLP and RMSNorm keep fewer tensors for the backward, same bits.

A training forward of a Qwen2-style decoder keeps, per token and layer, about 4.6k floats for the backward at
hidden 256 / intermediate 512 (`tests/models/test_lean.py` counts them). Two blocks hold tensors that are cheap to
recompute from ones kept anyway:

- **SwiGLU MLP** y = (silu(g) ⊙ u) W_downᵀ with g = x W_gateᵀ, u = x W_upᵀ. Autograd keeps g (for silu), s = silu(g)
  and u (for the product) and p = s ⊙ u (for W_down's gradient): 4 × intermediate. `_SwiGLUDown` keeps g and u and
  recomputes s and p in the backward: 2 × intermediate fewer.
- **RMSNorm** y = w ⊙ n, n = x · r, r = rsqrt(mean(x²) + ε). Autograd keeps n (hidden) for w's gradient on top of
  x and r, which the mean-square's backward keeps anyway. `_RMSScale` recomputes n = x · r: hidden fewer per norm.

At the issue-27 long shape (4 layers, 32 rows × 276 tokens) that is 1,536 of the 4,617 floats a token keeps
per layer. The backward repeats autograd's own kernels on the same operands in the same order
(`aten.silu_backward`, the mm layouts of `MmBackward0`, `sum_to` as the broadcasting mul does), so gradients are
bitwise equal to the plain modules' (tested with `torch.equal`), and every caller's numbers stay as they were.

    with lean_activations(model):          # patches the model's MLP / RMSNorm instances, restores them on exit
        loss = forward(model, batch); loss.backward()

A module is patched only where the rewrite is exact: an MLP whose `act_fn` is SiLU and whose `down_proj` is a
plain bias-free `nn.Linear` (a LoRA-wrapped `down_proj` keeps its forward); an RMSNorm with `weight` and
`variance_epsilon`; never a module whose class forward was replaced. Under autocast, or with gradients off,
the patched forwards run the original code.
"""

from __future__ import annotations

import contextlib
import types

import torch
import torch.nn.functional as F
from torch import nn

#: class names whose forward is `down_proj(act_fn(gate_proj(x)) * up_proj(x))` (transformers 5)
MLP_CLASSES = frozenset({"Qwen2MLP", "Qwen2_5_VLMLP", "Qwen3MLP", "LlamaMLP", "MistralMLP"})
#: class names whose forward is `weight * (x.float() * rsqrt(mean(x²) + eps)).to(dtype)`
RMSNORM_CLASSES = frozenset({"Qwen2RMSNorm", "Qwen2_5_VLRMSNorm", "Qwen3RMSNorm", "LlamaRMSNorm", "MistralRMSNorm"})


class _SwiGLUDown(torch.autograd.Function):
    """y [..., O] = (silu(g) ⊙ u) Wᵀ from g, u [..., I] and W [O, I], keeping g, u, W (not silu(g) nor the product).

    Backward, as autograd computes it through silu → mul → linear (MmBackward0 on the flattened [M, I] input):
        p = silu(g) ⊙ u;  dW = dy₂ᵀ p₂;  dp = dy₂ W;  du = dp ⊙ silu(g);  dg = silu_backward(dp ⊙ u, g)."""

    @staticmethod
    def forward(ctx, g: torch.Tensor, u: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(g, u, weight)
        return F.linear(F.silu(g) * u, weight)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        g, u, weight = ctx.saved_tensors
        s = F.silu(g)
        p = s * u
        dy2 = dy.reshape(-1, dy.size(-1))
        dW = dy2.t().mm(p.reshape(-1, p.size(-1))) if ctx.needs_input_grad[2] else None
        dp = dy2.mm(weight).view(p.shape)
        du = dp * s if ctx.needs_input_grad[1] else None
        dg = torch.ops.aten.silu_backward(dp * u, g) if ctx.needs_input_grad[0] else None
        return dg, du, dW


class _RMSScale(torch.autograd.Function):
    """y [..., H] = w ⊙ (x · r).to(dtype) from x [..., H] (float32), r [..., 1] and w [H], keeping x, r, w (not n).

    Backward, as autograd computes it through the two broadcasting muls (and the dtype cast between them):
        n = (x·r).to(dtype);  dw = sum_to(dy ⊙ n, [H]);  dn = (dy ⊙ w).to(x.dtype);  dx = dn ⊙ r;  dr = Σ_h dn ⊙ x."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, r: torch.Tensor, weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        ctx.save_for_backward(x, r, weight)
        ctx.dtype = dtype
        return weight * (x * r).to(dtype)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, r, weight = ctx.saved_tensors
        dw = None
        if ctx.needs_input_grad[2]:
            n = (x * r).to(ctx.dtype)
            lead = tuple(range(dy.dim() - weight.dim()))
            dw = (dy * n).sum(lead, keepdim=True).view(weight.shape)
        dn = (dy * weight).to(x.dtype)
        dx = dn * r if ctx.needs_input_grad[0] else None
        dr = (dn * x).sum(-1, keepdim=True) if ctx.needs_input_grad[1] else None
        return dx, dr, dw, None


def _plain(x: torch.Tensor) -> bool:
    """Whether the original forward must run: no gradient to save for, or autocast (its casts are not repeated)."""
    return not torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type)


def _lean_mlp_forward(self, x: torch.Tensor) -> torch.Tensor:
    if _plain(x):
        return type(self).forward(self, x)
    return _SwiGLUDown.apply(self.gate_proj(x), self.up_proj(x), self.down_proj.weight)


def _lean_rmsnorm_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    if _plain(hidden_states):
        return type(self).forward(self, hidden_states)
    x = hidden_states.to(torch.float32)
    r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
    return _RMSScale.apply(x, r, self.weight, hidden_states.dtype)


def _is_silu(act) -> bool:
    return isinstance(act, nn.SiLU) or type(act).__name__ == "SiLUActivation"


def _own_forward(module: nn.Module) -> bool:
    """Whether `module`'s class runs the forward its library defines (a monkeypatched class forward — a test's
    float64 RMSNorm, say — computes something else, so it is left alone)."""
    cls = type(module)
    return getattr(cls.forward, "__module__", None) == cls.__module__


def lean_targets(model: nn.Module) -> list[tuple[nn.Module, object]]:
    """(module, its lean forward) for every MLP / RMSNorm of `model` the rewrite is exact for (see module doc)."""
    out = []
    for module in model.modules():
        name = type(module).__name__
        if not _own_forward(module):
            continue
        if name in MLP_CLASSES and _is_silu(getattr(module, "act_fn", None)) and \
                type(getattr(module, "down_proj", None)) is nn.Linear and module.down_proj.bias is None:
            out.append((module, _lean_mlp_forward))
        elif name in RMSNORM_CLASSES and hasattr(module, "variance_epsilon") and isinstance(getattr(module, "weight", None), nn.Parameter):
            out.append((module, _lean_rmsnorm_forward))
    return out


@contextlib.contextmanager
def lean_activations(model: nn.Module, enabled: bool = True):
    """Within the block, `model`'s SwiGLU MLPs and RMSNorms keep fewer tensors for the backward (same values and
    gradients, bit for bit); yields the number of modules patched (0 when `enabled` is False). The patch is an
    instance attribute `forward`, removed on exit whatever happens; a graph built inside may be backpropagated
    after the block."""
    targets = lean_targets(model) if enabled else []
    targets = [(m, fn) for m, fn in targets if "forward" not in vars(m)]  # already patched (nested use): leave it
    for module, fn in targets:
        module.forward = types.MethodType(fn, module)
    try:
        yield len(targets)
    finally:
        for module, _ in targets:
            vars(module).pop("forward", None)
