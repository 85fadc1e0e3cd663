"""Every cache: at its never-skip setting bit-identical to no cache; at a skipping setting its modules really skip."""

import pytest
import torch

from workbench.diffusion.caches import CACHES, deep_blocks
from workbench.diffusion.hooks import LeafCalls, ReusePlan
from workbench.diffusion.sampling import sample

STEPS = 6
NEVER_SKIP = {"deepcache": dict(interval=1), "block": dict(tau=0.0, lam_inter=1.0), "prompt": dict(gate=STEPS),
              "hgc": dict(tau=0.0, lam_inter=1.0, gate=STEPS), "pab": dict(interval=1),
              "controlnet": dict(start=0, stop=0)}


def _sample(model, batch, cache="none", **kw):
    return sample(model, batch.maps, batch.prompts, steps=STEPS, guidance=3.0, seeds=[1, 2, 3], cache=cache, **kw)


def test_every_registered_cache_has_a_never_skip_setting():
    assert set(CACHES.names()) == {"none", *NEVER_SKIP}


@pytest.mark.parametrize("name", sorted(NEVER_SKIP))
def test_never_skip_is_bit_identical_to_no_cache(tiny_model, batch, name):
    ref = _sample(tiny_model, batch).images
    out = _sample(tiny_model, batch, name, **NEVER_SKIP[name])
    assert torch.equal(out.images, ref)
    assert not any(out.reused.values())


def test_caches_leave_the_model_as_they_found_it(tiny_model, batch):
    ref = _sample(tiny_model, batch).images
    for name in ("hgc", "deepcache", "pab", "prompt"):
        _sample(tiny_model, batch, name)
    assert not any("forward" in vars(m) for m in tiny_model.modules())
    assert torch.equal(_sample(tiny_model, batch).images, ref)


def _leaf_calls(model, batch, cache, **kw):
    with LeafCalls(model) as calls:
        out = _sample(model, batch, cache, **kw)
    return calls, out


def test_deepcache_skips_the_deep_blocks_on_cached_steps(tiny_model, batch):
    calls, out = _leaf_calls(tiny_model, batch, "deepcache", interval=3, branch=1)
    full, _ = _leaf_calls(tiny_model, batch, "none")
    computed_steps = len([i for i in range(STEPS) if i % 3 == 0])
    for name in deep_blocks(tiny_model, 1):
        assert calls.under(name) == full.under(name) * computed_steps // STEPS, name
    assert calls.under("unet.down_blocks.0") == full.under("unet.down_blocks.0")
    assert calls.under("controlnet") == full.under("controlnet")
    assert not torch.equal(out.images, _sample(tiny_model, batch).images)


def test_block_cache_reuses_controlnet_and_deep_blocks_between_refreshes(tiny_model, batch):
    calls, out = _leaf_calls(tiny_model, batch, "block", tau=10.0, lam_inter=0.5)
    full, _ = _leaf_calls(tiny_model, batch, "none")
    assert out.refresh_steps == [0, 2, 4]
    assert calls.under("controlnet") == full.under("controlnet") * 3 // STEPS
    assert calls.under("unet.mid_block") == full.under("unet.mid_block") * 3 // STEPS
    assert calls.under("unet.down_blocks.0") == full.under("unet.down_blocks.0")  # the probe is not a second pass
    macs = _sample(tiny_model, batch, "block", tau=10.0, lam_inter=0.5, count_macs=True).macs
    ref = _sample(tiny_model, batch, count_macs=True).macs
    assert macs[0] == ref[0] and macs[2] == ref[2] and macs[1] < 0.5 * ref[1]  # refresh = one full step, probe included


def test_block_cache_round_robin_recomputes_a_share_of_deep_blocks(tiny_model, batch):
    deep = deep_blocks(tiny_model, 1)
    _, out = _leaf_calls(tiny_model, batch, "block", tau=10.0, lam_inter=1 / STEPS, lam_intra=0.2)
    per_step = {i: [n for n in deep if n not in out.reused.get(i, [])] for i in range(1, STEPS)}
    assert all(len(v) == 1 for v in per_step.values())  # ceil(0.2 * 5) = 1 deep block per cached step
    assert [v[0] for v in per_step.values()] == deep  # in forward order, round robin


def test_prompt_cache_skips_every_cross_attention_after_the_gate(tiny_model, batch):
    calls, out = _leaf_calls(tiny_model, batch, "prompt", gate=2)
    full, _ = _leaf_calls(tiny_model, batch, "none")
    q = [n for n in full.counts if n.endswith("attn2.to_q")]
    assert q and all(calls.counts[n] == 2 and full.counts[n] == STEPS for n in q)
    self_attn = [n for n in full.counts if n.endswith("attn1.to_q") and "down_blocks.1" in n]
    assert self_attn and all(calls.counts[n] == STEPS for n in self_attn)  # self-attention is not a prompt module


def test_pab_through_diffusers_skips_unet_cross_attention(tiny_model, batch):
    calls, _ = _leaf_calls(tiny_model, batch, "pab", interval=2, skip_range=(0, 1000))
    full, _ = _leaf_calls(tiny_model, batch, "none")
    q = [n for n in full.counts if n.startswith("unet.") and n.endswith("attn2.to_q")]
    assert q and all(calls.counts[n] == STEPS // 2 for n in q)


def test_hgc_composes_both_grains(tiny_model, batch):
    calls, out = _leaf_calls(tiny_model, batch, "hgc", tau=10.0, lam_inter=0.5, gate=3)
    full, _ = _leaf_calls(tiny_model, batch, "none")
    assert out.refresh_steps == [0, 2, 4]
    name = "unet.up_blocks.2.attentions.0.transformer_blocks.0.attn2.to_q"  # shallow: runs every step until the gate
    assert full.counts[name] == STEPS and calls.counts[name] == 3
    assert calls.under("controlnet") < full.under("controlnet")


def test_reuse_plan_names_a_wrong_module_and_leaves_nothing_wrapped(tiny_model):
    with pytest.raises(KeyError, match="no submodule 'unet.nope'"):
        ReusePlan(tiny_model, ["unet.mid_block", "unet.nope"], lambda n, i: True)
    assert not any("forward" in vars(m) for m in tiny_model.modules())


def test_reuse_plan_refuses_double_attachment_and_restores(tiny_model):
    with ReusePlan(tiny_model, ["unet.mid_block"], lambda n, i: True):
        with pytest.raises(RuntimeError, match="already has a wrapped forward"):
            ReusePlan(tiny_model, ["unet.mid_block"], lambda n, i: True)
    assert "forward" not in vars(tiny_model.unet.mid_block)


@pytest.mark.parametrize("name,kw,match", [("block", dict(tau=-1.0), "tau"), ("block", dict(lam_inter=0.0), "lam_inter"),
                                           ("deepcache", dict(interval=0), "interval"), ("deepcache", dict(branch=3), "branch"),
                                           ("prompt", dict(gate=0), "gate"), ("pab", dict(skip_range=(5, 1)), "skip_range"),
                                           ("hgc", dict(gate=0), "gate")])
def test_bad_settings_are_one_sentence(tiny_model, batch, name, kw, match):
    with pytest.raises(ValueError, match=match):
        _sample(tiny_model, batch, name, **kw)
    assert not any("forward" in vars(m) for m in tiny_model.modules())


def test_unknown_cache_and_setting(tiny_model, batch):
    with pytest.raises(KeyError, match="unknown diffusion cache 'hcg'"):
        _sample(tiny_model, batch, "hcg")
    with pytest.raises(TypeError, match="intervl"):
        _sample(tiny_model, batch, "deepcache", intervl=2)
