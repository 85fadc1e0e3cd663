"""The bad-input catalogue: one row per input a user can get wrong, with the one sentence it must produce
(`tests/rl/test_config_catalogue.py` holds the RLConfig rows; `tests/rl/test_run_dir.py` the checkpoint and resume
cases)."""

import os

import pytest

from workbench.utils import resolve_device


@pytest.mark.parametrize("device,message", [
    ("cuda:7", "does not exist here"),
    ("tpu", "not a valid torch device"),
])
def test_device_that_is_not_here(device, message):
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 CUDA devices")
    with pytest.raises(ValueError, match=message):
        resolve_device(device)


def test_model_folder_without_tokenizer_files(tmp_path):
    from workbench.models.tiny import tiny_causal_lm
    from workbench.models.tokenizer import build_tokenizer
    from workbench.models.zoo import load_model

    model = tiny_causal_lm(build_tokenizer())
    model.save_pretrained(str(tmp_path / "m"))
    assert not any(f.startswith("tokenizer") for f in os.listdir(tmp_path / "m"))
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        load_model(str(tmp_path / "m"), device="cpu")
