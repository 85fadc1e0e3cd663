"""The token atlas's signal table: on a fixed padded batch every signal equals a float64 reference computed one
unpadded sequence at a time, and every weight equals the registered function's own output on that reference."""

import math

import numpy as np
import pytest
import torch

from workbench.models.tiny import tiny_causal_lm
from workbench.models.tokenizer import build_tokenizer
from workbench.rl.atlas import tgrl_expert_weight, token_signals
from workbench.rl.durian import confidence_buckets, perception_buckets
from workbench.rl.weights import TOKEN_WEIGHTS, WeightContext

PROMPTS = ["12+7=", "3*4-1=", "9="]
RESPONSES = ["19\nanswer: 19", "11\nanswer: 11", "9"]


def _lm(tok, seed):
    return tiny_causal_lm(tok, seed=seed, hidden=32, layers=1, heads=2, kv_heads=1).eval()


@pytest.fixture(scope="module")
def batch():
    tok = build_tokenizer()
    models = [_lm(tok, s) for s in (0, 1, 2)]
    pid = [tok.encode(p) for p in PROMPTS]
    cid = [tok.encode(r) for r in RESPONSES]
    P, T = max(map(len, pid)), max(map(len, cid))
    pad = tok.pad_token_id
    prompt_ids = torch.tensor([[pad] * (P - len(p)) + p for p in pid])
    prompt_mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in pid])
    comp_ids = torch.tensor([c + [pad] * (T - len(c)) for c in cid])
    comp_mask = torch.tensor([[1] * len(c) + [0] * (T - len(c)) for c in cid])
    vd = torch.randn(comp_ids.shape, generator=torch.Generator().manual_seed(0)) * comp_mask
    ve = torch.tensor([0.3, 1.2, 0.7])
    table = token_signals(*models, prompt_ids, prompt_mask, comp_ids, comp_mask, extras={"visual_dependency": vd},
                          visual_entropy=ve, reasoning_buckets=2)
    return tok, models, pid, cid, comp_mask, vd, ve, table


def _reference(model, prompt, completion):
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    return torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)  # [T, V]


def _padded(rows, T):
    return torch.stack([torch.nn.functional.pad(r, (0, T - len(r))) for r in rows])


def test_log_prob_and_distribution_signals_match_a_float64_reference(batch):
    tok, models, pid, cid, mask, _, _, table = batch
    T = mask.size(1)
    ref = [[_reference(m, p, c) for p, c in zip(pid, cid)] for m in models]
    lp = [_padded([r[range(len(c)), c] for r, c in zip(ref[i], cid)], T) for i in range(3)]
    np.testing.assert_allclose(table.values["delta_logp"], lp[1] - lp[0], atol=1e-6)
    np.testing.assert_allclose(table.values["abs_delta_logp"], (lp[1] - lp[0]).abs(), atol=1e-6)
    ent = [_padded([-(r.exp() * r).sum(-1) for r in ref[i]], T) for i in range(2)]
    np.testing.assert_allclose(table.values["entropy_base"], ent[0], atol=1e-6)
    np.testing.assert_allclose(table.values["entropy_rl"], ent[1], atol=1e-6)
    kl = _padded([(b.exp() * (b - a)).sum(-1) for a, b in zip(ref[0], ref[1])], T)
    np.testing.assert_allclose(table.values["kl"], kl, atol=1e-6)
    m = [torch.logaddexp(a, b) - math.log(2) for a, b in zip(ref[0], ref[1])]
    js = _padded([0.5 * (a.exp() * (a - mm)).sum(-1) + 0.5 * (b.exp() * (b - mm)).sum(-1)
                  for a, b, mm in zip(ref[0], ref[1], m)], T)
    np.testing.assert_allclose(table.values["js"], js, atol=1e-6)
    rl_tok = [r.argmax(-1) for r in ref[1]]
    d_rl = _padded([b[range(len(y)), y] - a[range(len(y)), y] for a, b, y in zip(ref[0], ref[1], rl_tok)], T)
    np.testing.assert_allclose(table.values["delta_logp_rl_token"], d_rl, atol=1e-6)
    np.testing.assert_allclose(table.logp["updated"], lp[2], atol=1e-6)
    assert (table.values["kl"][~mask.bool()] == 0).all()


def test_every_registered_weight_is_the_registered_functions_output(batch):
    tok, models, pid, cid, mask, vd, _, table = batch
    ctx = WeightContext(logp=table.logp["updated"], old_logp=table.logp["base"], mask=mask.bool(),
                        advantages=mask.double(), entropy=table.values["entropy_base"],
                        extras={"visual_dependency": vd.double()})
    for name in TOKEN_WEIGHTS.names():
        want = TOKEN_WEIGHTS.get(name)(ctx).double() * mask
        np.testing.assert_allclose(table.values[f"w:{name}"], want, atol=1e-9, err_msg=name)
    assert not table.skipped
    assert table.values["w:future_kl"][mask.bool()].ne(1.0).any(), "π_θ differs from π_old, so FIPO's weight moves"


def test_sequence_signals_are_durian_buckets_broadcast_over_each_response(batch):
    tok, models, pid, cid, mask, _, ve, table = batch
    conf = confidence_buckets(table.logp["base"].sum(-1), 2)
    np.testing.assert_array_equal(table.values["durian_reasoning"], ((1 - conf).double()[:, None] * mask).numpy())
    np.testing.assert_array_equal(table.values["durian_perception"], (perception_buckets(ve).double()[:, None] * mask).numpy())


def test_tgrl_weight_is_the_shaped_ratio_gradient():
    logp = torch.log(torch.tensor([[0.9, 0.1, 0.02, 0.5]], dtype=torch.float64))
    mask = torch.tensor([[1, 1, 1, 0]])
    w = tgrl_expert_weight(logp, mask, gamma=0.1)
    p = logp.exp()
    want = torch.where(mask.bool(), 0.1 * p / (p + 0.1) ** 2, torch.zeros_like(p))
    np.testing.assert_allclose(w, want, rtol=1e-12)
    assert w[0, 1] > w[0, 0]  # the low-probability expert token gets the larger weight


def test_a_text_batch_skips_tor_with_the_reason(batch):
    tok, models, pid, cid, mask, _, _, _ = batch
    ids = torch.tensor([tok.encode("12+7=")])
    comp = torch.tensor([tok.encode("19")])
    t = token_signals(*models, ids, torch.ones_like(ids), comp, torch.ones_like(comp))
    assert "tor" in t.skipped and "visual_dependency" in t.skipped["tor"]
    assert "w:low_prob" in t.values and "durian_perception" not in t.values


def test_long_frame_has_one_row_per_token_and_signal(batch):
    tok, models, pid, cid, mask, _, _, table = batch
    tokens = [[str(i) for i in c] for c in cid]
    frame = table.frame(tokens, [["other"] * len(c) for c in cid])
    assert len(frame) == int(mask.sum()) * len(table.values)
    assert list(frame.columns) == ["seq_id", "pos", "token", "token_class", "signal", "value"]
    one = frame[(frame.signal == "kl") & (frame.seq_id == 1) & (frame.pos == 2)]["value"].item()
    assert one == pytest.approx(float(table.values["kl"][1, 2]))
    with pytest.raises(ValueError, match="one entry per valid completion token"):
        table.frame([t[:-1] for t in tokens], [["other"] * (len(c) - 1) for c in cid])


def test_empty_responses_are_refused(batch):
    tok, models, *_ = batch
    ids = torch.tensor([tok.encode("1=")])
    with pytest.raises(ValueError, match="responses are empty"):
        token_signals(*models, ids, torch.ones_like(ids), torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2))
