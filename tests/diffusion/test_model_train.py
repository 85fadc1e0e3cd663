"""The controllable model's save / load, its training (loss falls, exact resume), the segmentation task, the zoo entries."""

import json
import os

import numpy as np
import pytest
import torch

from workbench.diffusion.model import ControlledDiffusion, DiffusionConfig
from workbench.diffusion.segmenter import Segmenter
from workbench.tasks.shapes.segmentation import (NULL_ID, PROMPT_VOCAB, SEG_KINDS, one_hot_maps, prompt_ids, prompt_text,
                                                 seg_batch, seg_config, segmentation_map)
from workbench.tasks.shapes.render import render
from workbench.train.diffusion import DiffusionTrainConfig, train_diffusion, train_segmenter

SMALL = DiffusionConfig(channels=(8, 16, 32), head_dim=8, prompt_dim=32)


def test_segmentation_map_and_prompt_match_the_scene():
    b = seg_batch(6, seed=3)
    for scene, m, p in zip(b.scenes, b.maps, b.prompts):
        r = render(scene)
        for i, s in enumerate(scene.shapes):
            assert (m.numpy()[r.masks[i]] == 1 + SEG_KINDS.index(s.kind)).all()
        assert (m.numpy()[~r.masks.any(0)] == 0).all()
        assert prompt_text(p) == " ".join(f"{s.colour} {s.kind}" for s in scene.shapes)
    assert b.images.shape == (6, 3, 32, 32) and b.images.min() >= -1 and b.images.max() <= 1
    assert torch.equal(seg_batch(6, seed=3).images, b.images)  # seeded
    assert torch.equal(seg_batch(3, seed=3, start=3).maps, b.maps[3:])  # example i does not depend on the batch


def test_task_bad_input():
    with pytest.raises(ValueError, match="needs 4 > 2 tokens"):
        prompt_ids(seg_batch(20, seed=0).scenes[[len(s.shapes) for s in seg_batch(20, seed=0).scenes].index(2)], 2)
    with pytest.raises(ValueError, match="at least 16 px"):
        seg_config(8)
    with pytest.raises(ValueError, match=r"map classes must lie in \[0, 5\)"):
        one_hot_maps(torch.full((1, 4, 4), 7, dtype=torch.long))
    assert one_hot_maps(torch.zeros(2, 4, 4, dtype=torch.long)).shape == (2, 5, 4, 4)
    assert PROMPT_VOCAB[NULL_ID] == "<null>"


def test_save_load_roundtrip_is_exact_and_safetensors_only(tmp_path):
    torch.manual_seed(0)
    m = ControlledDiffusion(SMALL).eval()
    m.save_pretrained(str(tmp_path / "m"))
    files = {f for _, _, fs in os.walk(tmp_path) for f in fs}
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files) and "prompt_encoder.safetensors" in files
    back = ControlledDiffusion.from_pretrained(str(tmp_path / "m"))
    b = seg_batch(2, seed=1)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([10, 900])
    with torch.no_grad():
        y0 = m.predict_noise(x, t, m.prompt_encoder(b.prompts), one_hot_maps(b.maps))
        y1 = back.predict_noise(x, t, back.prompt_encoder(b.prompts), one_hot_maps(b.maps))
    assert torch.equal(y0, y1)
    with pytest.raises(ValueError, match="safetensors only"):
        m.save_pretrained(str(tmp_path / "n"), safe_serialization=False)
    json.dump({"a": 1}, open(tmp_path / "bad.json", "w"))
    os.makedirs(tmp_path / "notmodel")
    os.replace(tmp_path / "bad.json", tmp_path / "notmodel" / "config.json")
    with pytest.raises(ValueError, match="does not hold a controlled-diffusion model"):
        ControlledDiffusion.from_pretrained(str(tmp_path / "notmodel"))


def test_training_lowers_the_loss_and_resumes_exactly(tmp_path):
    cfg = DiffusionTrainConfig(steps=4, batch_size=4, lr=2e-3, warmup=1, checkpoint_every=2)
    torch.manual_seed(0)
    straight = ControlledDiffusion(SMALL)
    init = {k: v.clone() for k, v in straight.state_dict().items()}
    train_diffusion(straight, cfg)
    resumed = ControlledDiffusion(SMALL)
    resumed.load_state_dict(init)
    ckpt = str(tmp_path / "run.ckpt")
    train_diffusion(resumed, DiffusionTrainConfig(**{**cfg.__dict__, "steps": 4}), checkpoint=ckpt)  # writes step 2
    fresh = ControlledDiffusion(SMALL)
    fresh.load_state_dict(init)
    half = DiffusionTrainConfig(**{**cfg.__dict__})
    train_diffusion(fresh, half, checkpoint=ckpt)  # resumes from step 2 of the same run
    for k, v in straight.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k


@pytest.mark.slow
def test_training_learns_to_generate():
    torch.manual_seed(0)
    m = ControlledDiffusion(SMALL)
    h = train_diffusion(m, DiffusionTrainConfig(steps=150, batch_size=16, lr=2e-3, warmup=10))
    assert h[-1]["loss"] < 0.3 * h[0]["loss"]


def test_bad_training_config():
    with pytest.raises(ValueError, match="cfg_dropout"):
        DiffusionTrainConfig(cfg_dropout=1.0)
    with pytest.raises(ValueError, match="steps must be an integer"):
        DiffusionTrainConfig(steps=0)
    with pytest.raises(ValueError, match="prediction must be"):
        DiffusionConfig(prediction="x0")
    with pytest.raises(ValueError, match="divisible"):
        DiffusionConfig(size=30)


def test_segmenter_learns_real_scenes(tmp_path):
    torch.manual_seed(0)
    seg = Segmenter(5, width=16)
    h = train_segmenter(seg, DiffusionTrainConfig(steps=150, batch_size=8, lr=3e-3, warmup=2))
    assert [e["step"] for e in h] == [50, 100, 150] and h[-1]["loss"] < 0.5 * np.log(5)  # below the uniform guess
    seg.save_pretrained(str(tmp_path / "s"))
    back = Segmenter.from_pretrained(str(tmp_path / "s"))
    x = seg_batch(2, seed=9).images
    assert torch.equal(seg.predict(x), back.predict(x))


def test_zoo_builds_and_loads_the_smoke_models(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    from workbench.models.zoo import load_model

    m, tok = load_model("tiny-shapes-diffusion-smoke", device="cpu")
    assert tok is None and isinstance(m, ControlledDiffusion) and m.workbench_info["train"]["steps"] == 3
    s, _ = load_model("tiny-shapes-seg-smoke", device="cpu")
    assert isinstance(s, Segmenter) and 0 <= s.workbench_info["heldout_pooled_miou"] <= 1
    again, _ = load_model("tiny-shapes-diffusion-smoke", device="cpu", train_if_missing=False)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), again.state_dict().values()))
