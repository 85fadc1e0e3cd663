import copy

import pandas as pd
import pytest
import torch

from workbench.analysis.replacement import (TOKEN_SELECTORS, budget_to_reach, record_steps, replacement_curve, replay,
                                            select_positions)

from analysis_tiny_lm import PAD, StubTokenizer

EOS = 36  # model A's greedy decode ends rows 0 and 1 early with it
N = 12


def greedy(model, ids, mask):
    out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=N, eos_token_id=EOS,
                         pad_token_id=PAD)
    return out[:, ids.size(1):]


def texts(tokens):
    tok = StubTokenizer()
    out = []
    for row in tokens.tolist():
        end = row.index(EOS) + 1 if EOS in row else len(row)
        out.append(tok.decode(row[:end]))
    return out


def test_budget_zero_is_model_a_and_budget_one_is_model_b(model_a, model_b, batch):
    ids, mask = batch
    text_a, text_b = texts(greedy(model_a, ids, mask)), texts(greedy(model_b, ids, mask))
    assert text_a != text_b
    seen = {}

    def score(i, text):
        seen.setdefault(i, []).append(text)
        return float(text == text_a[i]) - float(text == text_b[i])  # +1 = A's decode, −1 = B's decode

    curve = replacement_curve(model_a, model_b, ids, mask, tokenizer=StubTokenizer(), score_fn=score,
                              budgets=(0.0, 0.5, 1.0), seeds=(0, 1), max_new_tokens=N, eos_token_id=EOS,
                              pad_token_id=PAD, batch_size=2)
    s = curve.summary.set_index(["selector", "budget", "seed"])["accuracy"]
    assert len(s) == 5 * 3 * 2
    assert (s.xs(0.0, level="budget") == 1.0).all()
    assert (s.xs(1.0, level="budget") == -1.0).all()
    assert set(curve.per_prompt["prompt_index"]) == {0, 1, 2}
    assert (curve.summary.query("budget == 1.0")["selected_frac"] == 1.0).all()
    assert (curve.summary.query("budget == 0.0")["changed_frac"] == 0.0).all()


def test_recorded_statistics_match_full_forward_float64(model_a, model_b, batch):
    ids, mask = batch
    rec = record_steps(model_a, model_b, ids, mask, max_new_tokens=N, eos_token_id=EOS, pad_token_id=PAD)
    assert torch.equal(rec.decode.new_tokens, greedy(model_a, ids, mask))
    ma, mb = copy.deepcopy(model_a).double(), copy.deepcopy(model_b).double()
    for r in range(ids.size(0)):
        L = int(rec.valid[r].sum())
        seq = torch.cat([ids[r][mask[r].bool()], rec.decode.new_tokens[r, :L]])
        P = int(mask[r].sum())
        with torch.no_grad():
            la = torch.log_softmax(ma(input_ids=seq[None]).logits[0], -1)
            lb = torch.log_softmax(mb(input_ids=seq[None]).logits[0], -1)
        for i in range(L):
            pa, pb = la[P - 1 + i], lb[P - 1 + i]
            yb = int(pb.argmax())
            assert rec.tokens_a[r, i].item() == int(pa.argmax()) and rec.tokens_b[r, i].item() == yb
            assert rec.delta_logp[r, i].item() == pytest.approx((pb[yb] - pa[yb]).item(), abs=1e-4)
            assert rec.entropy[r, i].item() == pytest.approx(-(pa.exp() * pa).sum().item(), abs=1e-4)
            assert rec.kl[r, i].item() == pytest.approx((pb.exp() * (pb - pa)).sum().item(), abs=1e-4)


def test_single_replacement_takes_b_token_at_that_step(model_a, model_b, batch):
    ids, mask = batch
    rec = record_steps(model_a, model_b, ids, mask, max_new_tokens=N, eos_token_id=EOS, pad_token_id=PAD)
    step = 2
    chosen = torch.zeros(3, N, dtype=torch.bool)
    chosen[:, step] = True
    out, changed = replay(model_a, model_b, ids, mask, chosen, max_new_tokens=N, eos_token_id=EOS, pad_token_id=PAD)
    assert torch.equal(out.new_tokens[:, :step], rec.decode.new_tokens[:, :step])
    assert torch.equal(out.new_tokens[:, step], rec.tokens_b[:, step])
    assert changed[:, step].tolist() == (rec.tokens_a[:, step] != rec.tokens_b[:, step]).tolist()
    assert changed.sum().item() == changed[:, step].sum().item()


def test_select_positions_against_loop():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 10, generator=g)
    valid = torch.arange(10)[None] < torch.tensor([[10], [7], [3], [0]])
    for budget in (0.0, 0.1, 0.25, 0.5, 0.99):
        chosen = select_positions(scores, valid, budget, torch.Generator().manual_seed(1))
        for r in range(4):
            L = int(valid[r].sum())
            k = int(budget * L + 0.5)
            cand = sorted(range(L), key=lambda i: -scores[r, i].item())[:k]
            assert sorted(chosen[r].nonzero().flatten().tolist()) == sorted(cand)
    assert select_positions(scores, valid, 1.0, max_new_tokens=16).all()
    assert select_positions(scores, valid, 1.0, max_new_tokens=16).shape == (4, 16)
    ties = torch.zeros(1, 10)
    all_valid = torch.ones(1, 10, dtype=torch.bool)
    def pick(seed):
        chosen = select_positions(ties, all_valid, 0.3, torch.Generator().manual_seed(seed))
        return chosen[0].nonzero().flatten().tolist()

    picks = {tuple(pick(s)) for s in range(5)}
    assert len(picks) > 1 and all(len(p) == 3 for p in picks)  # ties broken by the seed
    with_nan = select_positions(torch.tensor([[float("nan"), 1.0, 0.0]]), torch.ones(1, 3, dtype=torch.bool), 0.34)
    assert with_nan.tolist() == [[False, True, False]]


def test_budget_to_reach_and_bad_input(model_a, model_b, batch):
    summary = pd.DataFrame({"selector": ["x"] * 4 + ["y"] * 4, "budget": [0.0, 0.5] * 4,
                            "seed": [0, 0, 1, 1] * 2, "accuracy": [0.1, 0.6, 0.1, 0.4, 0.1, 0.3, 0.1, 0.3]})
    reach = budget_to_reach(summary, 0.5)
    assert reach["x"] == 0.5 and pd.isna(reach["y"])
    with pytest.raises(ValueError, match="budget"):
        select_positions(torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool), 1.5)
    with pytest.raises(KeyError, match="known: delta_logp, entropy, js, kl, random"):
        replacement_curve(model_a, model_b, *batch, tokenizer=StubTokenizer(), score_fn=lambda i, t: 0.0,
                          selectors=("entrpy",))
    assert TOKEN_SELECTORS.names() == ["delta_logp", "entropy", "js", "kl", "random"]
