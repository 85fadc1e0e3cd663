"""Token-type perturbations: visual dependency, ToR's perception / reasoning split, attention on the image."""

import math

import numpy as np
import pytest
import torch

from workbench.analysis import perturbation as P
from workbench.models.generation import encode_prompts, sample
from workbench.models.scoring import completion_logprobs
from workbench.models.vlm import encode_vl_prompts, format_vl_prompt
from workbench.tasks import shapes


@pytest.fixture(scope="module")
def rollout(vlm, processor, examples):
    """Two sampled responses per example: (questions, images, scenes, Generation) with 6 rows."""
    enc = encode_vl_prompts(processor, [format_vl_prompt(e.prompt, processor) for e in examples],
                            [e.image for e in examples])
    gen = sample(vlm, processor, input_ids=enc.pop("input_ids"), attention_mask=enc.pop("attention_mask"),
                 num_samples=2, max_new_tokens=8, generator=torch.Generator().manual_seed(0), **enc)
    rep = lambda xs: [x for x in xs for _ in range(2)]  # noqa: E731
    return rep([e.prompt for e in examples]), rep([e.image for e in examples]), rep([e.scene for e in examples]), gen


def test_dependency_is_exactly_zero_for_the_same_image(vlm, processor, rollout):
    questions, images, _, gen = rollout
    dep = P.visual_dependency(vlm, processor, questions, images, gen.completion_ids, gen.completion_mask,
                              variants={"same": [img.copy() for img in images]})
    assert torch.equal(dep.dependency("same"), torch.zeros_like(dep.logp))
    assert dep.entropy is not None and dep.entropy.shape == dep.logp.shape


def test_removed_image_equals_the_text_only_prompt(vlm, processor, rollout):
    questions, images, scenes, gen = rollout
    dep = P.visual_dependency(vlm, processor, questions, images, gen.completion_ids, gen.completion_mask,
                              variants=("removed", "blank"), scenes=scenes)
    text_prompts = [format_vl_prompt(q, processor, with_image=False) for q in questions]
    ids, mask = encode_prompts(processor.tokenizer, text_prompts)
    with torch.no_grad():
        ref, _ = completion_logprobs(vlm, ids, mask, gen.completion_ids, gen.completion_mask)
    torch.testing.assert_close(dep.perturbed_logp["removed"], ref, atol=1e-5, rtol=1e-5)
    delta = dep.delta("removed")
    torch.testing.assert_close(delta, (dep.logp - ref) * gen.completion_mask, atol=1e-5, rtol=1e-5)
    assert torch.equal(dep.dependency("removed"), delta.abs())
    assert float(dep.dependency("removed").sum()) > 0 and float(dep.dependency("blank").sum()) > 0
    assert bool((dep.dependency("removed")[gen.completion_mask == 0] == 0).all())
    with pytest.raises(KeyError, match="noise"):
        dep.delta("noise")


def test_image_perturbations(examples):
    ex = examples[0]
    r = ex.render()
    assert P.perturb_images("removed", [r.image]) == [None]
    np.testing.assert_array_equal(P.perturb_images("blank", [r.image], scenes=[ex.scene])[0], r.background)
    flat = np.zeros((8, 8, 3), np.uint8)
    flat[:] = (10, 20, 30)
    flat[3:5, 3:5] = 255
    np.testing.assert_array_equal(P.blank(flat)[0, 0], [10, 20, 30])
    assert (P.blank(flat) == flat[0, 0]).all()
    a, b = P.perturb_images("noise", [r.image], seed=1)[0], P.perturb_images("noise", [r.image], seed=1)[0]
    c = P.perturb_images("noise", [r.image], seed=2)[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c) and a.dtype == np.uint8
    k = int(np.random.default_rng([0, 0]).integers(len(ex.scene.shapes)))
    removed = P.perturb_images("object_removed", [r.image], scenes=[ex.scene])[0]
    np.testing.assert_array_equal(removed, shapes.remove_object(ex.scene, k).image)
    np.testing.assert_array_equal(P.object_removed(r.image, scene=ex.scene, index=0),
                                  shapes.remove_object(ex.scene, 0).image)
    with pytest.raises(ValueError, match="scene"):
        P.perturb_images("object_removed", [r.image])
    with pytest.raises(KeyError, match="blank"):
        P.perturb_images("blur", [r.image])


def _naive_top(scores, mask, frac):
    """float64 loop reference of one batch-wide top-fraction threshold (ties at the threshold count)."""
    cells = [(b, t) for b in range(len(mask)) for t in range(len(mask[0]))]
    vals = sorted((float(scores[b][t]) for b, t in cells if mask[b][t]), reverse=True)
    k = math.ceil(frac * len(vals) - 1e-9)
    if k == 0:
        return [[False] * len(mask[0]) for _ in mask]
    tau = vals[k - 1]
    return [[bool(mask[b][t]) and float(scores[b][t]) >= tau for t in range(len(mask[0]))] for b in range(len(mask))]


def test_classification_against_naive_reference():
    dependency = torch.tensor([[0.9, -2.0, 0.1, 0.0, 5.0], [0.3, 0.3, 0.05, 0.7, 0.0]], dtype=torch.float64)
    entropy = torch.tensor([[0.1, 0.2, 2.5, 1.9, 9.0], [1.0, 0.0, 3.0, 0.4, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    types = P.classify_tokens(dependency, entropy, mask)
    assert types.perception.tolist() == _naive_top(dependency.abs().tolist(), mask.tolist(), 0.3)
    assert types.reasoning.tolist() == _naive_top(entropy.tolist(), mask.tolist(), 0.3)
    # 9 valid tokens -> 3 each; |dep| top: -2.0, 0.9, 0.7 ; entropy top: 3.0, 2.5, 1.9
    assert types.labels.tolist() == [[1, 1, 2, 2, -1], [0, 0, 2, 1, 0]]
    fr = types.fractions()
    assert fr == pytest.approx({"neither": 3 / 9, "perception": 3 / 9, "reasoning": 3 / 9, "both": 0.0})
    empty = P.classify_tokens(dependency, entropy, torch.zeros_like(mask))
    assert not empty.perception.any() and not empty.reasoning.any()
    assert all(v == 0.0 for v in empty.fractions().values())
    with pytest.raises(ValueError, match="same shape"):
        P.classify_tokens(dependency[:, :3], entropy, mask)


def test_image_attention_against_eager_weights(vlm, processor, rollout):
    questions, images, _, gen = rollout
    att = P.image_attention(vlm, processor, questions, images, gen.completion_ids, gen.completion_mask)
    assert vlm.config._attn_implementation != "eager"  # restored after the analysis
    assert att.grid == (4, 4) and att.patch_weights.shape == (*gen.completion_ids.shape, 16)
    # naive float64 reference from the eager attention weights
    enc = encode_vl_prompts(processor, [format_vl_prompt(q, processor) for q in questions], images)
    ids, mask = enc.pop("input_ids"), enc.pop("attention_mask")
    P_len = ids.size(1)
    types = torch.cat([enc.pop("mm_token_type_ids"), torch.zeros_like(gen.completion_ids)], 1)
    with P.eager_attention(vlm), torch.no_grad():
        out = vlm(input_ids=torch.cat([ids, gen.completion_ids], 1), mm_token_type_ids=types, output_attentions=True,
                  attention_mask=torch.cat([mask, gen.completion_mask], 1), **enc)
    layers = [a.double() for a in out.attentions]
    B, T = gen.completion_ids.shape
    for b in range(B):
        img_keys = [k for k in range(P_len) if int(ids[b, k]) == processor.image_token_id]
        for t in range(T):
            if not gen.completion_mask[b, t]:
                assert float(att.image_mass[b, t]) == 0.0
                continue
            total = 0.0
            for a in layers:
                for h in range(a.size(1)):
                    total += sum(float(a[b, h, P_len - 1 + t, k]) for k in img_keys)
            ref = total / (len(layers) * layers[0].size(1))
            assert float(att.image_mass[b, t]) == pytest.approx(ref, abs=1e-5)
            assert 0.0 <= ref <= 1.0 + 1e-6
    assert att.heatmap(0, 0).shape == (4, 4)
    assert att.heatmap(0, 0).sum() == pytest.approx(float(att.image_mass[0, 0]), abs=1e-5)


def test_eager_attention_keeps_the_logits(vlm, processor, examples):
    prompts = [format_vl_prompt(e.prompt, processor) for e in examples]
    enc = encode_vl_prompts(processor, prompts, [e.image for e in examples])
    with torch.no_grad():
        sdpa = vlm(**enc).logits
        with P.eager_attention(vlm):
            eager = vlm(**enc).logits
    valid = enc["attention_mask"].bool()  # padded query rows are fully masked: their output is arbitrary
    torch.testing.assert_close(eager[valid], sdpa[valid], atol=1e-4, rtol=1e-4)
