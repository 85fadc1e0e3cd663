"""The runner's plan: which zoo models each notebook needs (cached or not) and its last run time, said before it starts."""

import json
import os

from workbench.run import resolve_notebooks
from workbench.run_plan import describe, plan, zoo_models


def test_quickstart_needs_its_base_and_its_cached_rl_run():
    nb = resolve_notebooks(["00"])[0]
    assert nb.endswith("00_quickstart.ipynb")
    assert zoo_models(nb, "cpu") == [("tiny-arith", 0), ("tiny-arith-grpo", 0)]
    assert zoo_models(nb, "smoke") == [("tiny-arith", 0)]


def test_preset_model_is_used_when_the_notebook_default_is_none():
    nb = resolve_notebooks(["03"])[0]
    from workbench.experiments.tor import PRESETS

    assert zoo_models(nb, "smoke") == [(PRESETS.table["smoke"]["model"], 0)]
    assert zoo_models(nb, "gpu") == []  # a local checkpoint, not a zoo model


def test_models_named_in_preset_rows_and_seeded_families_are_listed():
    """01, 07 and 11 name their models in parameters other than `model` (or as a seeded family)."""
    atlas, halbench, delta = (resolve_notebooks([k])[0] for k in ("11", "07", "01"))
    assert zoo_models(atlas, "cpu") == [("tiny-arith", 0), ("tiny-arith-grpo", 0), ("tiny-shapes-vl-rl", 0)]
    assert zoo_models(delta, "smoke") == [("tiny-arith", 0)]  # smoke trains its own RL copy
    cpu = zoo_models(halbench, "cpu")
    assert len(cpu) == 9 and ("tiny-shapes-vl-cooc-r50", 2) in cpu
    assert zoo_models(halbench, "gpu") == []  # a local checkpoint is required there


def test_plan_reads_the_cache_and_the_last_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "outputs"
    (out / "00_quickstart").mkdir(parents=True)
    (out / "00_quickstart" / "results.json").write_text(json.dumps({"preset": "cpu", "runtime_s": 120.0}))
    from workbench.models.zoo import checkpoint_dir

    folder = checkpoint_dir("tiny-arith")
    os.makedirs(folder)
    open(os.path.join(folder, "config.json"), "w").write("{}")
    json.dump({"train_seconds": 30.0}, open(os.path.join(folder, "info.json"), "w"))
    steps = plan(resolve_notebooks(["00", "01"]), "cpu", str(out))
    assert steps[0].last_seconds == 120.0 and steps[1].last_seconds is None
    assert [(z.name, z.cached, z.build_seconds) for z in steps[0].zoo] == [("tiny-arith", True, 30.0),
                                                                           ("tiny-arith-grpo", False, None)]
    text = describe(steps)
    assert "00_quickstart: last run 2.0 min; tiny-arith (cached), tiny-arith-grpo (trains on first use)" in text
    assert "expected about 2 min for the 1 notebook(s) run here before; 1 never run here, so not timed (01_delta_logp)" in text and "tiny-arith-grpo" in text.splitlines()[-1]
    # a results file of another preset does not count
    assert plan(resolve_notebooks(["00"]), "smoke", str(out))[0].last_seconds is None
