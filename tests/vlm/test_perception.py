"""Perception pre-training of the tiny VLM's vision tower and the yes/no evaluation task."""

import numpy as np
import pytest
import torch

from workbench.models.vlm import build_processor, build_tiny_vlm
from workbench.rl.tasks.vqa import image_question_task, yes_no_correct
from workbench.tasks import shapes
from workbench.tasks.shapes.cooccurrence import HALBENCH_KINDS, halbench_config
from workbench.train.perception import PerceptionConfig, cell_labels, pretrain_perception


def test_cell_labels_match_a_pixel_loop():
    scene = shapes.sample_scene(halbench_config(0.5), 3)
    masks = shapes.render(scene).masks
    got = cell_labels(scene, HALBENCH_KINDS, (4, 4), 20)
    for cell in range(16):
        r, c = divmod(cell, 4)
        for k, kind in enumerate(HALBENCH_KINDS):
            px = sum(int(masks[i, r * 28:(r + 1) * 28, c * 28:(c + 1) * 28].sum())
                     for i, s in enumerate(scene.shapes) if s.kind == kind and not s.clutter)
            assert got[cell, k] == float(px >= 20)
    with pytest.raises(ValueError, match="does not split into a 5x5 grid"):
        cell_labels(scene, HALBENCH_KINDS, (5, 5), 20)


def test_pretrain_perception_trains_only_the_vision_tower():
    proc = build_processor()
    model = build_tiny_vlm(proc, seed=0, merger_gain=5.0)
    text_before = {k: v.clone() for k, v in model.model.language_model.state_dict().items()}
    vis_before = [p.clone() for p in model.model.visual.parameters()]
    cfg = halbench_config(0.0, cooccurrence=())
    draw = lambda start, n: [shapes.sample_scene(cfg, np.random.default_rng([1, start + j])) for j in range(n)]  # noqa: E731
    out = pretrain_perception(model, proc, HALBENCH_KINDS, draw, PerceptionConfig(steps=3, batch_size=4, eval_images=8))
    assert np.isfinite(out["final_loss"]) and 0.0 <= out["kind_accuracy"] <= 1.0
    for k, v in model.model.language_model.state_dict().items():
        assert torch.equal(v, text_before[k]), k
    assert any(not torch.equal(a, b) for a, b in zip(vis_before, model.model.visual.parameters()))
    with pytest.raises(ValueError, match="PerceptionConfig.steps must be a positive int"):
        PerceptionConfig(steps=0)


def test_yes_no_task_uses_pope_parsing():
    ex = shapes.make_example(0, 0, "object", halbench_config(0.5))
    assert yes_no_correct(ex.answer + ", certainly.", ex)
    assert not yes_no_correct("maybe not", ex) or ex.answer == "no"
    task = image_question_task(build_processor())
    with pytest.raises(ValueError, match="for evaluation only"):
        task.sample(1, None)
