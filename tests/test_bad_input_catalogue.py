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


@pytest.mark.parametrize("argv,message", [
    (["--sweep", "seed=../../../escaped"], "may hold only letters"),
    (["--sweep", "=1"], "is not a Python identifier"),
    (["--sweep", "se ed=1"], "is not a Python identifier"),
    (["-p", "x-y", "1"], "is not a Python identifier"),
    (["--sweep", "seed"], "must look like NAME=V1,V2"),
])
def test_runner_arguments(argv, message, tmp_path):
    from workbench.run import main

    with pytest.raises(SystemExit, match=message):
        main(["00_quickstart", "--outputs", str(tmp_path), *argv])
    assert not os.path.exists(tmp_path / "_sweeps")


def test_report_skips_a_truncated_results_file(tmp_path, capsys):  # names the file, writes the rest
    from workbench.run import build_report

    (tmp_path / "01_x").mkdir()
    (tmp_path / "01_x" / "results.json").write_text('{"notebook": "01_x", "claims": [')
    report = build_report(str(tmp_path), str(tmp_path / "figures"))
    assert os.path.exists(report) and "01_x" not in open(report).read().split("|---|")[-1]
    out = capsys.readouterr().out
    assert "skipping" in out and str(tmp_path / "01_x" / "results.json") in out


@pytest.fixture(scope="module")
def tiny_lm():
    import torch

    from workbench.models.tiny import tiny_causal_lm
    from workbench.models.tokenizer import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    return tiny_causal_lm(tok), tok


@pytest.mark.parametrize("kwargs,message", [
    ({"prompts": [""]}, "at least one token"),
    ({"prompts": []}, "non-empty list"),
    ({"prompts": "1+2="}, "non-empty list"),
    ({"prompts": ["1+2="], "num_samples": 0}, "num_samples must be an integer >= 1"),
    ({"prompts": ["1+2="], "max_new_tokens": -1}, "max_new_tokens must be an integer >= 1"),
    ({"prompts": ["1+2="], "temperature": 0.0}, "temperature must be a finite number > 0"),
    ({"prompts": ["1+2="], "top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"prompts": ["1+2=é"]}, "characters the tokenizer does not know"),
    ({"prompts": ["1" * 600], "max_new_tokens": 8}, "exceeds the model's"),
])
def test_sampling_arguments(tiny_lm, kwargs, message):
    from workbench.models.generation import sample

    model, tok = tiny_lm
    if "exceeds" in message and model.config.max_position_embeddings > 1000:
        pytest.skip("this tiny model has long positions")
    with pytest.raises(ValueError, match=message):
        sample(model, tok, **kwargs)


def test_nan_weights_stop_sampling(tiny_lm):
    import copy

    import torch

    from workbench.models.generation import sample

    model, tok = tiny_lm
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.lm_head.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="NaN logits"):
        sample(broken, tok, ["1+2="], max_new_tokens=4)


@pytest.mark.parametrize("kwargs,message", [
    ({"grad_clip": -1.0}, "grad_clip must be a finite number >= 0"),
    ({"grad_clip": 0.0}, "grad_clip must be > 0"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"warmup_steps": -2}, "warmup_steps must be an integer >= 0"),
])
def test_sft_config(kwargs, message):
    from workbench.train.sft import SFTConfig

    with pytest.raises(ValueError, match=message):
        SFTConfig(**kwargs)


def test_special_token_strings_in_a_prompt_are_special_tokens(tiny_lm):
    """Documented behaviour (`encode_prompts`): chat formats are built from special-token strings, so a literal
    `<|endoftext|>` in user text is the EOS token, as in every Hugging Face tokenizer."""
    from workbench.models.generation import encode_prompts

    _, tok = tiny_lm
    ids, _ = encode_prompts(tok, ["1+2=<|endoftext|>"])
    assert ids[0, -1].item() == tok.eos_token_id and tok.eos_token_id not in ids[0, :-1].tolist()
