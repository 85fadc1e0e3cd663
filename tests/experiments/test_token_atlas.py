"""Notebook 11's pieces that are not in the smoke run's numbers: a (name, fn) selector replays exactly as the
registered one, the atlas selectors are `token_signals` on the recorded decode, the AUC ranking, and the
claims' gates (no RL gap / DAPO did not learn -> inconclusive)."""

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.analysis.replacement import TOKEN_SELECTORS, record_steps, replacement_curve
from workbench.experiments import token_atlas as exp
from workbench.experiments.compare import Comparison
from workbench.experiments.token_atlas_claims import record_claims
from workbench.models.tiny import tiny_causal_lm
from workbench.models.tokenizer import build_tokenizer
from workbench.notebook import Results
from workbench.rl.atlas import token_signals


def _lm(tok, seed):
    return tiny_causal_lm(tok, seed=seed, hidden=32, layers=1, heads=2, kv_heads=1).eval()


@pytest.fixture(scope="module")
def models():
    tok = build_tokenizer()
    ids = [tok.encode(q) for q in ("12+7=", "3*4-1=", "9-2=")]
    P = max(map(len, ids))
    input_ids = torch.tensor([[tok.pad_token_id] * (P - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (P - len(i)) + [1] * len(i) for i in ids])
    return tok, _lm(tok, 0), _lm(tok, 1), _lm(tok, 2), input_ids, mask


def test_a_callable_selector_replays_like_the_registered_one(models):
    tok, a, b, _, ids, mask = models
    kw = dict(tokenizer=tok, score_fn=lambda i, t: float(len(t) % 2), budgets=(0.0, 0.3, 1.0), seeds=(0,),
              max_new_tokens=6, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    named = replacement_curve(a, b, ids, mask, selectors=("kl",), **kw).per_prompt
    fn = replacement_curve(a, b, ids, mask, selectors=(("mine", TOKEN_SELECTORS.get("kl")),), **kw).per_prompt
    pd.testing.assert_frame_equal(named.drop(columns="selector"), fn.drop(columns="selector"))
    assert set(fn["selector"]) == {"mine"}


def test_atlas_selectors_are_the_signal_table_of_the_recorded_decode(models):
    tok, a, b, c, ids, mask = models
    pair = exp.Pair("text", a, b, c, tok, None, "b")
    rec = record_steps(a, b, ids, mask, max_new_tokens=6, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    sel = dict(exp.atlas_selectors(pair, ["kl", "w:low_prob"]))
    want = token_signals(a, b, c, ids, mask, rec.decode.new_tokens, rec.valid.long())
    torch.testing.assert_close(sel["kl"](rec, None), want.values["kl"])
    torch.testing.assert_close(sel["w:low_prob"](rec, None), want.values["w:low_prob"])
    # the signal at a decode step is the base's own token's: KL there matches the record's KL(RL ‖ base)
    torch.testing.assert_close(want.values["kl"][rec.valid], rec.kl[rec.valid].double(), atol=1e-5, rtol=1e-5)


def _intervention(gap: float, n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    budgets = [0.0, 0.5, 1.0]
    rows = []
    for sel, lift in (("good", 0.5), ("ok", 0.05), ("random", 0.0)):
        for p in range(n):
            base = float(rng.random() < 0.4)
            rl = float(rng.random() < 0.4 + gap)
            mid = float(rng.random() < 0.4 + lift) if gap > 0 else base
            for b, s in zip(budgets, (base, mid, rl)):
                rows.append({"selector": sel, "prompt_index": p, "budget": b, "score": s})
    per = pd.DataFrame(rows)
    # random, good and ok share the budget-0 and budget-1 decodes, as in `replacement_curve`
    for b in (0.0, 1.0):
        ref = per[(per.selector == "random") & (per.budget == b)].set_index("prompt_index")["score"]
        per.loc[per.budget == b, "score"] = per.loc[per.budget == b, "prompt_index"].map(ref).to_numpy()
    scores = per.pivot_table(index=["selector", "prompt_index"], columns="budget", values="score").sort_index(axis=1)
    y = scores.to_numpy()
    auc = pd.Series(((y[:, 1:] + y[:, :-1]) / 2 * np.diff(budgets)).sum(1), index=scores.index, name="auc").reset_index()
    g = auc.groupby("selector")["auc"]
    ranking = pd.DataFrame({"auc": g.mean(), "se": g.std(ddof=1) / np.sqrt(g.count()), "budget_to_90pct_of_gap": 0.5}).sort_values("auc", ascending=False)
    summary = per.groupby(["selector", "budget"])["score"].mean().rename("accuracy").reset_index().assign(seed=0)
    return exp.Intervention(summary, auc, ranking, 0.4, 0.4 + gap, scores.reset_index())


def _comparison(dapo_gain: float):
    rows = []
    for seed in range(4):
        for run, acc in (("DAPO", 0.2 + dapo_gain + (0.01, -0.01, 0.02, -0.02)[seed]), ("DAPO + ToR", 0.5 + 0.01 * seed),
                         ("DAPO + FIPO", 0.5 + 0.02 * (seed % 2)), ("DAPO + ToR + FIPO", 0.6 + (0.0, 0.02, 0.01, 0.03)[seed])):
            rows.append({"run": run, "seed": seed, "eval_accuracy": acc, "base_accuracy": 0.2})
    return Comparison(curves=pd.DataFrame(), final=pd.DataFrame(rows))


def _claims(iv, comp):
    r = Results("11_token_atlas", "smoke", 0, paper="test")
    record_claims(r, iv, comp)
    return {c["id"]: c for c in r.to_dict()["claims"]}


def test_claims_follow_the_numbers_and_their_gates():
    c = _claims(_intervention(gap=0.4), _comparison(dapo_gain=0.3))
    assert c["intervention_best_beats_random"]["verdict"] == "holds"
    assert "good" in c["intervention_best_beats_runner_up"]["claim"]
    assert c["composition_beats_each"]["verdict"] == "holds"
    c = _claims(_intervention(gap=0.0), _comparison(dapo_gain=0.0))
    assert c["intervention_best_beats_random"]["verdict"] == "inconclusive"  # the RL model does not beat the base
    assert c["composition_beats_each"]["verdict"] == "inconclusive"  # DAPO did not learn
