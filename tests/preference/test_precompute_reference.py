"""`PreferenceConfig.precompute_reference`: π_ref scored once before step 0 for exactly the pairs the steps draw
gives the same training (float64 model, with `float64_rms_norm` from tests/conftest.py), skips the reference's
forward at every step, and resumes exactly."""

import copy

import pytest
import torch

from workbench.models.tiny import tiny_causal_lm
from workbench.models.tokenizer import build_tokenizer, format_prompt
from workbench.preference import trainer
from workbench.preference.pairs import PreferencePair
from workbench.preference.trainer import PreferenceConfig, precompute_reference_logps, step_pairs, train_preference


@pytest.fixture
def setup(float64_rms_norm):
    tok = build_tokenizer()
    model = tiny_causal_lm(tok, seed=0, hidden=32, layers=2, heads=2, kv_heads=1).double()
    pairs = [PreferencePair(f"p{i}", None, format_prompt(f"{i}+{i % 3}"), f"{i}+{i % 3}={i + i % 3}\nanswer: {i + i % 3}",
                            f"answer: {i + i % 3 + 1}") for i in range(10)]
    return model, tok, pairs


def test_same_training_without_the_per_step_reference_forward(setup, monkeypatch):
    model, tok, pairs = setup
    cfg = PreferenceConfig(loss="sigmoid", steps=5, batch_size=4, lr=1e-2, seed=3)
    base = train_preference(copy.deepcopy(model), tok, pairs, cfg)
    calls = []
    real = trainer._reference_logps
    monkeypatch.setattr(trainer, "_reference_logps", lambda *a, **k: calls.append(len(a[3])) or real(*a, **k))
    fast = train_preference(copy.deepcopy(model), tok, pairs, PreferenceConfig(**{**cfg.__dict__, "precompute_reference": True}))
    drawn = {p.id for s in range(cfg.steps) for p in step_pairs(pairs, cfg.batch_size, cfg.seed, s)}
    assert sum(calls) == len(drawn) and len(calls) == -(-len(drawn) // cfg.batch_size)  # each drawn pair once, up front
    for a, b in zip(base, fast):
        for key in ("loss", "rewards/chosen", "rewards/rejected", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-9, abs=1e-12), key


def test_precomputed_numbers_are_a_function_of_pool_and_config(setup):
    model, tok, pairs = setup
    cfg = PreferenceConfig(loss="sigmoid", steps=3, batch_size=4, seed=1, precompute_reference=True)
    a = precompute_reference_logps(model, model, tok, pairs, cfg)
    b = precompute_reference_logps(model, model, tok, list(pairs), cfg)
    assert a.keys() == b.keys() and all(torch.equal(a[i], b[i]) for i in a)
    shard0 = precompute_reference_logps(model, model, tok, pairs, cfg, rank=0, world=2)
    shard1 = precompute_reference_logps(model, model, tok, pairs, cfg, rank=1, world=2)
    assert set(shard0) | set(shard1) == set(a)
    for i in shard0:
        torch.testing.assert_close(shard0[i], a[i], atol=1e-10, rtol=0)


def test_resume_with_precomputed_reference_is_exact(setup, tmp_path):
    model, tok, pairs = setup

    class Killed(Exception):
        pass

    def kill(entry):
        if entry["step"] == 2:
            raise Killed

    def run(out, resume=False, on_log=None):
        m = copy.deepcopy(model)
        cfg = PreferenceConfig(loss="sigmoid", steps=4, batch_size=4, lr=1e-2, output_dir=str(out), checkpoint_every=2,
                               resume=resume, precompute_reference=True)
        return m, train_preference(m, tok, pairs, cfg, reference=copy.deepcopy(model), on_log=on_log)

    full_model, full = run(tmp_path / "full")
    with pytest.raises(Killed):
        run(tmp_path / "part", on_log=kill)
    resumed_model, resumed = run(tmp_path / "part", resume=True)
    assert [h["loss"] for h in resumed] == [h["loss"] for h in full]
    for a, b in zip(full_model.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)
