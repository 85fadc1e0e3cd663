"""Pairs from the scene graph and the preference trainer: metrics, vision negatives, exact resume."""

import json
import os

import numpy as np
import pytest
import torch

from workbench.models.zoo import load_model
from workbench.preference.pairs import build_pairs, hallucinated_caption, vision_negative
from workbench.preference.scoring import vl_sequence_logps
from workbench.preference.trainer import PreferenceConfig, train_preference
from workbench.tasks import halbench
from workbench.tasks.shapes import fill_with_background, render, scene_graph
from workbench.tasks.shapes.cooccurrence import CAPTION_PROMPT, caption_text, kinds_present


@pytest.fixture(scope="module")
def setup():
    bench = halbench.load_halbench()
    model, proc = load_model("tiny-shapes-vl-cooc-smoke-r90")
    return bench, model, proc


def test_language_pair_inserts_one_cooccurring_absent_object(setup):
    bench, _, _ = setup
    for im in bench.images[:20]:
        g = scene_graph(im.scene)
        made = hallucinated_caption(g, bench.counts, bench.kinds, ("red",), np.random.default_rng(0))
        if made is None:
            assert kinds_present(im.scene) == set(bench.kinds)
            continue
        rejected, kind = made
        assert kind not in kinds_present(im.scene)
        assert rejected.count(f"a red {kind}") == 1
        assert sorted(rejected.replace(".", "").replace(",", "").replace(" and ", " ").split()) == sorted(
            (caption_text(g).replace(".", "").replace(",", "").replace(" and ", " ") + f" a red {kind}").split())


def test_vision_negative_is_the_argmin_of_the_policy_loglik(setup):
    bench, model, proc = setup
    scene = next(im.scene for im in bench.images if len(im.scene.objects) >= 3)
    chosen = caption_text(scene_graph(scene))
    idx, image = vision_negative(model, proc, scene, CAPTION_PROMPT, chosen)
    with torch.no_grad():
        lps = [float(vl_sequence_logps(model, proc, [CAPTION_PROMPT], [chosen], [fill_with_background(scene, i).image])[0][0])
               for i in scene.objects]
    assert idx == scene.objects[int(np.argmin(lps))]
    assert np.array_equal(image, fill_with_background(scene, idx).image)


def test_pairs_are_cached_as_json(setup, tmp_path):
    bench, model, proc = setup
    scenes = [im.scene for im in bench.images[:5]]
    a = build_pairs(model, proc, scenes, bench.counts, bench.kinds, seed=1, cache_dir=str(tmp_path), model_name="m")
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].endswith(".json")
    b = build_pairs(model, proc, scenes, bench.counts, bench.kinds, seed=1, cache_dir=str(tmp_path), model_name="m")
    assert [(p.rejected, p.removed) for p in a] == [(p.rejected, p.removed) for p in b]


def test_training_logs_metrics_and_resumes_exactly(setup, tmp_path):
    bench, _, proc = setup
    scenes = [im.scene for im in bench.images[:8]]

    class Killed(Exception):
        pass

    def kill_after_2(entry):
        if entry["step"] == 2:
            raise Killed

    def run(out, resume=False, on_log=None):
        model, _ = load_model("tiny-shapes-vl-cooc-smoke-r90")
        pairs = build_pairs(model, proc, scenes, bench.counts, bench.kinds, seed=0)
        cfg = PreferenceConfig(loss="adavip", steps=4, batch_size=3, lr=1e-3, output_dir=str(out),
                               checkpoint_every=2, resume=resume)
        hist = train_preference(model, proc, pairs, cfg, on_log=on_log)
        return model, hist

    full_model, full = run(tmp_path / "full")
    assert {"loss", "rewards/chosen", "rewards/vision_margins", "vision_share"} <= set(full[-1])
    assert all(np.isfinite(h["loss"]) for h in full)
    with pytest.raises(Killed):  # dies after step 2 and its checkpoint
        run(tmp_path / "part", on_log=kill_after_2)
    resumed_model, resumed = run(tmp_path / "part", resume=True)
    assert [h["loss"] for h in resumed] == pytest.approx([h["loss"] for h in full], rel=1e-6)
    for a, b in zip(full_model.parameters(), resumed_model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    lines = open(tmp_path / "part" / "metrics.jsonl").read().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="config differs in beta"):
        model, _ = load_model("tiny-shapes-vl-cooc-smoke-r90")
        pairs = build_pairs(model, proc, scenes, bench.counts, bench.kinds, seed=0)
        train_preference(model, proc, pairs, PreferenceConfig(loss="adavip", beta=0.2, steps=4, batch_size=3, lr=1e-3,
                                                              output_dir=str(tmp_path / "part"), resume=True))


def test_config_and_pool_checks(setup):
    bench, model, proc = setup
    with pytest.raises(KeyError, match="unknown preference loss"):
        PreferenceConfig(loss="dpo")
    with pytest.raises(ValueError, match="need an output_dir"):
        PreferenceConfig(resume=True)
    pairs = build_pairs(model, proc, [im.scene for im in bench.images[:3]], bench.counts, bench.kinds, vision=False)
    with pytest.raises(ValueError, match="needs at least batch_size = 8 pairs with a vision negative"):
        train_preference(model, proc, pairs, PreferenceConfig(loss="adavip", steps=1))


def test_lora_policy_uses_its_disabled_adapter_as_reference():
    """With a PEFT policy and no reference, π_ref is the policy with adapters off: at step 0 (LoRA B = 0) the
    policy equals the reference, so every implicit reward is exactly 0 and the DPO loss is log 2."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2ForCausalLM

    from workbench.models.tiny import tiny_qwen2_config
    from workbench.models.tokenizer import build_tokenizer, format_prompt
    from workbench.preference.pairs import PreferencePair

    torch.manual_seed(0)
    tok = build_tokenizer()
    base = Qwen2ForCausalLM(tiny_qwen2_config(len(tok)))
    policy = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    pairs = [PreferencePair(f"p{i}", None, format_prompt(f"{i}+1"), f"answer: {i + 1}", f"answer: {i + 2}") for i in range(6)]
    hist = train_preference(policy, tok, pairs, PreferenceConfig(loss="sigmoid", steps=3, batch_size=4, lr=1e-2))
    assert hist[0]["rewards/chosen"] == 0.0 and hist[0]["loss"] == pytest.approx(np.log(2), rel=1e-9)
    assert hist[-1]["rewards/margins"] != 0.0  # the adapter learned; the reference (adapter off) did not move
    lora = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert lora and all("lora" in n for n in lora)


def test_vl_sequence_logps_chunked_equals_full_logits(setup):
    bench, model, proc = setup
    ims = bench.images[:3]
    prompts, answers = [CAPTION_PROMPT] * 3, [caption_text(scene_graph(im.scene)) for im in ims]
    images = [render(im.scene).image for im in ims]
    full, n_full = vl_sequence_logps(model, proc, prompts, answers, images, chunk=None)
    part, n_part = vl_sequence_logps(model, proc, prompts, answers, images, chunk=5)
    assert torch.equal(n_full, n_part) and torch.allclose(full, part, atol=1e-4, rtol=1e-5)
