"""The `tiny-shapes-vl` zoo recipe, run with a tiny step count into a temporary cache."""

import os

import pytest
import torch

from workbench.recipes import shapes_vl as vlm_module
from workbench.models import zoo
from workbench.models.vlm import WorkbenchVLProcessor, encode_vl_prompts, format_vl_prompt
from workbench.tasks import shapes


@pytest.fixture
def tiny_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    for key, value in dict(steps=2, batch_size=4, warmup_steps=1, eval_n=5, max_new_tokens=8).items():
        monkeypatch.setitem(vlm_module.TINY_SHAPES_VL, key, value)
    return tmp_path


def test_recipe_trains_once_caches_safetensors_and_reloads(tiny_recipe):
    model, processor = zoo.load_model("tiny-shapes-vl", device="cpu")
    folder = zoo.checkpoint_dir("tiny-shapes-vl")
    assert folder.startswith(str(tiny_recipe)) and os.path.exists(os.path.join(folder, "model.safetensors"))
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in os.listdir(folder))
    info = model.workbench_info
    assert info["steps"] == 2 and 0.0 <= info["heldout_accuracy"] <= 1.0
    assert set(info["heldout_by_family"]) <= set(shapes.FAMILIES) and "train_seconds" in info
    assert isinstance(processor, WorkbenchVLProcessor) and type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"

    # the second load must come from the cache (train_if_missing=False cannot train) with identical weights
    again, processor2 = zoo.load_model("tiny-shapes-vl", device="cpu", train_if_missing=False)
    ex = shapes.load_eval_set(2)
    enc = encode_vl_prompts(processor2, [format_vl_prompt(e.prompt, processor2) for e in ex], [e.image for e in ex])
    with torch.no_grad():
        torch.testing.assert_close(model(**enc).logits, again(**enc).logits)
