"""A run's folder keeps one complete checkpoint at every instant of a save (kill injected at each stage of the
swap), a resume checks what it resumes, and two runs cannot share a folder."""

import os
import subprocess
import sys

import pytest
import torch

import workbench.train.checkpoint as ckpt
from workbench.rl import RLConfig, train
from workbench.train.checkpoint import load_checkpoint, recover_checkpoint, save_checkpoint
from workbench.rl.run_dir import RunDir

sys.path.insert(0, os.path.dirname(__file__))
from test_trainer import CFG, digit_task, tiny_lm  # noqa: E402


class Killed(Exception):
    pass


def _state(step):
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(float(step))
    opt = torch.optim.AdamW(model.parameters())
    return model, opt


@pytest.mark.parametrize("stage", ["written", "old_moved", "new_moved"])
def test_a_kill_at_any_stage_of_the_swap_leaves_a_complete_checkpoint(tmp_path, stage, monkeypatch):
    path = str(tmp_path / "checkpoint")
    m1, o1 = _state(1)
    save_checkpoint(path, model=m1, optimizer=o1, scheduler=None, step=1)
    m2, o2 = _state(2)

    def kill(at):
        if at == stage:
            raise Killed(at)

    monkeypatch.setattr(ckpt, "_SWAP_HOOK", kill)
    with pytest.raises(Killed):
        save_checkpoint(path, model=m2, optimizer=o2, scheduler=None, step=2)
    monkeypatch.setattr(ckpt, "_SWAP_HOOK", None)
    # step 2 was completely written before every kill point, so recovery finds it; no leftover survives
    assert recover_checkpoint(path)
    restored, ropt = _state(0)
    meta = load_checkpoint(path, model=restored, optimizer=ropt, scheduler=None)
    assert meta["step"] == 2 and torch.all(restored.weight == 2.0)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]


def test_leftovers_of_a_live_process_are_left_alone(tmp_path):
    path = str(tmp_path / "checkpoint")
    m, o = _state(1)
    save_checkpoint(path, model=m, optimizer=o, scheduler=None, step=1)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        other = f"{path}.tmp-{live.pid}"
        os.makedirs(other)  # a save in progress elsewhere: no state.json yet
        assert recover_checkpoint(path) and os.path.isdir(other)
    finally:
        live.kill()
        live.wait()
    assert recover_checkpoint(path) and not os.path.exists(other)  # its process died: removed


def test_resume_checks_what_it_resumes(tmp_path):
    model, tok = tiny_lm()
    out = str(tmp_path / "run")
    train(model, tok, digit_task(), RLConfig(steps=1, output_dir=out, **CFG))
    with pytest.raises(ValueError, match=r"lr: 0\.01 -> 0\.001"):
        train(tiny_lm()[0], tok, digit_task(), RLConfig(steps=2, output_dir=out, resume=True, **{**CFG, "lr": 1e-3}))
    with pytest.raises(ValueError, match="seed: 0 -> 5"):
        train(tiny_lm()[0], tok, digit_task(), RLConfig(steps=2, output_dir=out, resume=True, **{**CFG, "seed": 5}))
    res = train(tiny_lm()[0], tok, digit_task(), RLConfig(steps=2, output_dir=out, resume=True, resume_changes=["lr"],
                                                         **{**CFG, "lr": 1e-3}))
    assert [h["step"] for h in res.history] == [1, 2]
    os.remove(os.path.join(out, "checkpoint", "state.json"))  # a folder with files but no complete checkpoint
    with pytest.raises(RuntimeError, match="holds no complete checkpoint"):
        train(tiny_lm()[0], tok, digit_task(), RLConfig(steps=3, output_dir=out, resume=True, **CFG))


def test_one_run_per_folder(tmp_path):
    out = str(tmp_path / "run")
    cfg = RLConfig(steps=1, output_dir=out, **CFG)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        os.makedirs(out)
        with open(os.path.join(out, ".lock"), "w") as f:
            f.write(str(live.pid))
        with pytest.raises(RuntimeError, match="in use by another run"):
            RunDir(cfg)
    finally:
        live.kill()
        live.wait()
    run = RunDir(cfg)  # the owner died: the stale lock is taken over
    assert open(os.path.join(out, ".lock")).read() == str(os.getpid())
    run.release()
    assert not os.path.exists(os.path.join(out, ".lock"))
