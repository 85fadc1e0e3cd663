import os

import pytest
import torch
from transformers import Qwen2ForCausalLM

from workbench.models import zoo
from workbench.models.tiny import tiny_qwen2_config
from workbench.models.tokenizer import build_tokenizer

CALLS = []


@zoo.register_recipe("test-counter", version="7")
def _counter_recipe(seed: int):
    CALLS.append(seed)
    torch.manual_seed(seed)
    tok = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok), hidden=32, layers=1, heads=2, kv_heads=1))
    return model, tok, {"note": "test"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    CALLS.clear()
    return tmp_path


def test_second_load_trains_nothing_and_weights_are_identical(cache):
    m1, _ = zoo.load_model("test-counter", device="cpu")
    m2, tok = zoo.load_model("test-counter", device="cpu")
    assert CALLS == [0]
    for (n, a), (_, b) in zip(m1.named_parameters(), m2.named_parameters()):
        assert torch.equal(a, b), n
    folder = zoo.checkpoint_dir("test-counter")
    assert folder.endswith("test-counter-v7") and os.path.exists(os.path.join(folder, "model.safetensors"))
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in os.listdir(folder))
    assert m2.workbench_info["note"] == "test" and m2.workbench_info["recipe"] == "test-counter"
    assert tok.pad_token is not None and not m2.training


def test_seed_gets_its_own_cache_entry(cache):
    zoo.load_model("test-counter", device="cpu", seed=3)
    zoo.load_model("test-counter", device="cpu", seed=3)
    assert CALLS == [3]


def test_no_training_when_forbidden(cache):
    with pytest.raises(FileNotFoundError, match="train_if_missing"):
        zoo.load_model("test-counter", train_if_missing=False)


def test_local_path_loads_through_the_same_code(cache, tmp_path):
    tok = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok), hidden=32, layers=1, heads=2, kv_heads=1))
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    loaded, tok2 = zoo.load_model(str(tmp_path / "ckpt"), device="cpu")
    x = torch.tensor([[5, 6, 7]])
    torch.testing.assert_close(loaded(x).logits, model.eval()(x).logits)


def test_bad_names_get_one_clear_sentence(cache, tmp_path):
    with pytest.raises(ValueError, match="'no-such-model' is neither a zoo name"):
        zoo.load_model("no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        zoo.load_model(str(tmp_path / "empty"))
