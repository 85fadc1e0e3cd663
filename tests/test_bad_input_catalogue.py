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
