"""`models.lean`: the lean MLP / RMSNorm give the plain modules' values and gradients bit for bit, keep less for
the backward, and leave every module as it was."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from workbench.models.lean import _RMSScale, _SwiGLUDown, lean_activations, lean_targets
from workbench.models.tiny import tiny_causal_lm
from workbench.models.tokenizer import build_tokenizer


def _lm(hidden: int = 64, layers: int = 2):
    return tiny_causal_lm(build_tokenizer(), seed=0, hidden=hidden, layers=layers).train()


def _loss(logits: torch.Tensor) -> torch.Tensor:
    return logits.log_softmax(-1)[..., 7].sum() * 1e-2 + logits.pow(2).mean()


def _run(model, lean: bool, **inputs):
    model.zero_grad(set_to_none=True)
    with lean_activations(model, lean) as patched:
        logits = model(**inputs, use_cache=False).logits
    _loss(logits).backward()  # after the block: the graph built inside outlives the patch
    return patched, logits.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


def test_gradients_of_a_text_decoder_are_bitwise_equal():
    model = _lm()
    ids = torch.randint(5, 100, (3, 17), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding
    n0, l0, g0 = _run(model, False, input_ids=ids, attention_mask=mask)
    n1, l1, g1 = _run(model, True, input_ids=ids, attention_mask=mask)
    assert (n0, n1) == (0, 2 * 3 + 1)  # 2 layers × (MLP + 2 norms) + the final norm
    assert torch.equal(l0, l1)
    assert [k for k in g0 if not torch.equal(g0[k], g1[k])] == []
    assert all("forward" not in vars(m) for m in model.modules())  # restored


def test_gradients_of_the_tiny_vlm_are_bitwise_equal():
    from workbench.models.vlm import build_processor, build_tiny_vlm, encode_vl_prompts, format_vl_prompt
    from workbench.tasks.shapes.render import render
    from workbench.tasks.shapes.sampler import sample_scene

    processor = build_processor()
    model = build_tiny_vlm(processor, seed=0).train()
    images = [[render(sample_scene(rng=i)).image] for i in range(2)]
    enc = encode_vl_prompts(processor, [format_vl_prompt("How many shapes?", processor)] * 2, images)
    n0, l0, g0 = _run(model, False, **enc)
    n1, l1, g1 = _run(model, True, **enc)
    assert n1 > 0 and torch.equal(l0, l1)
    assert [k for k in g0 if g0[k] is not None and not torch.equal(g0[k], g1[k])] == []


@pytest.mark.parametrize("shape", [(2, 5, 6), (7, 6)])
def test_swiglu_down_matches_autograd_in_float64(shape):
    gen = torch.Generator().manual_seed(1)
    g, u = (torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(2))
    w = torch.randn(4, shape[-1], generator=gen, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(*shape[:-1], 4, generator=gen, dtype=torch.float64)
    ref = torch.nn.functional.linear(torch.nn.functional.silu(g) * u, w)
    expect = torch.autograd.grad(ref, (g, u, w), dy)
    out = _SwiGLUDown.apply(g, u, w)
    got = torch.autograd.grad(out, (g, u, w), dy)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-14)
    for a, b in zip(got, expect):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(_SwiGLUDown.apply, (g, u, w))


def test_rms_scale_matches_autograd_in_float64():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 4, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, generator=gen, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(3, 4, 8, generator=gen, dtype=torch.float64)

    def plain(x, w):  # the RMSNorm formula, y = w ⊙ x · rsqrt(mean(x²) + ε), by plain autograd
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))

    def lean(x, w):
        return _RMSScale.apply(x, torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6), w, torch.float64)

    for a, b in zip(torch.autograd.grad(lean(x, w), (x, w), dy), torch.autograd.grad(plain(x, w), (x, w), dy)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lean, (x, w))


def test_the_forward_keeps_at_least_a_quarter_less_for_the_backward():
    model = _lm(hidden=64, layers=2)
    ids = torch.randint(5, 100, (4, 64), generator=torch.Generator().manual_seed(0))

    def kept(lean: bool) -> int:
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), lean_activations(model, lean):
            model(input_ids=ids, use_cache=False)
        return sum(storages.values())

    plain, lean = kept(False), kept(True)
    assert lean < 0.75 * plain, (lean, plain)


def test_only_exact_rewrites_are_patched():
    model = _lm()
    lora_like = copy.deepcopy(model)

    class Wrapped(nn.Module):  # a LoRA-style wrapper: the MLP's down_proj is no plain Linear
        def __init__(self, base):
            super().__init__()
            self.base = base

        def forward(self, x):
            return self.base(x)

    for layer in lora_like.model.layers:
        layer.mlp.down_proj = Wrapped(layer.mlp.down_proj)
    names = [type(m).__name__ for m, _ in lean_targets(lora_like)]
    assert "Qwen2MLP" not in names and names.count("Qwen2RMSNorm") == 5
    with lean_activations(model, enabled=False) as n:
        assert n == 0 and all("forward" not in vars(m) for m in model.modules())
    with pytest.raises(RuntimeError, match="boom"), lean_activations(model):
        raise RuntimeError("boom")
    assert all("forward" not in vars(m) for m in model.modules())  # restored after an error too


def test_a_replaced_class_forward_is_left_alone(monkeypatch):
    from transformers.models.qwen2 import modeling_qwen2

    monkeypatch.setattr(modeling_qwen2.Qwen2RMSNorm, "forward", lambda self, h: self.weight * h)
    names = [type(m).__name__ for m, _ in lean_targets(_lm())]
    assert "Qwen2RMSNorm" not in names and "Qwen2MLP" in names


def test_rl_update_with_and_without_lean_activations_moves_the_weights_identically():
    from accelerate import Accelerator

    from workbench.rl import RLConfig
    from workbench.rl.advantages import compute_advantages
    from workbench.rl.collect import CollectConfig, collect_rollout
    from workbench.rl.tasks import arithmetic_task
    from workbench.rl.update import update_policy
    from workbench.utils import seeded_generator

    tok = build_tokenizer()
    base = tiny_causal_lm(tok, seed=0, hidden=64, layers=2)
    ro, _ = collect_rollout(base, tok, arithmetic_task(), CollectConfig(num_prompts=3, num_generations=4, max_new_tokens=8),
                            generator=seeded_generator(0, 0), rng=__import__("random").Random(0))
    ro.rewards = torch.arange(len(ro), dtype=torch.float32) % 3  # every group has a spread: every row runs
    adv = compute_advantages("grpo", ro.rewards, ro.group_ids, ro.completion_mask)
    after = []
    for lean in (False, True):
        model = copy.deepcopy(base).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        cfg = RLConfig(micro_batch_size=5, lean_activations=lean, progress=False)
        update_policy(model, opt, sched, Accelerator(cpu=True), ro.select(torch.arange(len(ro))), adv, cfg,
                      torch.Generator().manual_seed(0))
        after.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.equal(after[0], torch.cat([p.detach().flatten() for p in base.parameters()]))
    assert torch.equal(after[0], after[1])
