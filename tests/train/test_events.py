"""TensorBoard scalars beside metrics.jsonl: the RL and preference trainers write the same numbers as the JSONL,
and a resumed run purges the steps after its checkpoint."""

import glob
import json
import os
import sys

import pytest
import torch

from workbench.train.events import ScalarEvents, flat_scalars

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden"))
from fingerprints import digit_task, tiny_lm  # noqa: E402


def _scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir)
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_flat_scalars_keeps_finite_reals_only():
    got = flat_scalars({"step": 2, "loss": 0.5, "ok": True, "name": "x", "nan": float("nan"), "d": {"a": 1, "b": [1]}})
    assert got == {"loss": 0.5, "d/a": 1.0}
    with pytest.raises(ValueError, match="needs a step"):
        ev = ScalarEvents.__new__(ScalarEvents)
        ev.writer = object()
        ev.write({"loss": 1.0})


def test_rl_trainer_writes_the_jsonl_numbers_as_events(tmp_path):
    from workbench.rl import RLConfig, train

    model, tok = tiny_lm(0)
    cfg = RLConfig.for_method("grpo", num_prompts=4, num_generations=4, max_new_tokens=6, micro_batch_size=8, lr=1e-2,
                              progress=False, steps=3, eval_every=3, eval_n=4, output_dir=str(tmp_path))
    train(model, tok, digit_task(), cfg)
    rows = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    ev = _scalars(str(tmp_path))
    assert glob.glob(str(tmp_path / "events.out.tfevents.*"))
    assert [s for s, _ in ev["reward_mean"]] == [1, 2, 3]
    assert [v for _, v in ev["reward_mean"]] == pytest.approx([r["reward_mean"] for r in rows], abs=1e-6)
    assert ev["eval_accuracy"][-1] == (3, pytest.approx(rows[-1]["eval_accuracy"], abs=1e-6))


def test_preference_resume_purges_the_steps_after_the_checkpoint(tmp_path):
    from workbench.models.tokenizer import format_prompt
    from workbench.preference.pairs import PreferencePair
    from workbench.preference.trainer import PreferenceConfig, train_preference

    model, tok = tiny_lm(0)
    pairs = [PreferencePair(id=f"p{i}", scene=None, prompt=format_prompt(f"{i}+1="), chosen=str(i + 1), rejected=str(i + 2))
             for i in range(8)]
    base = dict(steps=4, batch_size=2, lr=1e-3, output_dir=str(tmp_path), checkpoint_every=2)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def kill_after_step_3(entry):
        if entry["step"] == 3:
            raise KeyboardInterrupt  # step 3 is logged, its checkpoint (every 2) is not written

    with pytest.raises(KeyboardInterrupt):
        train_preference(model, tok, pairs, PreferenceConfig(**base), on_log=kill_after_step_3)
    assert [s for s, _ in _scalars(str(tmp_path))["loss"]] == [1, 2, 3]
    model.load_state_dict(state)
    train_preference(model, tok, pairs, PreferenceConfig(**base, resume=True))  # continues from the step-2 checkpoint
    ev = _scalars(str(tmp_path))
    steps = [s for s, _ in ev["loss"]]
    assert steps == [1, 2, 3, 4]  # the killed run's step 3 purged, the resumed run's 3 and 4 written once
    rows = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert [v for _, v in ev["loss"]] == pytest.approx([r["loss"] for r in rows], abs=1e-6)
