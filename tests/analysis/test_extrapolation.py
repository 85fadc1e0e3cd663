import math

import pytest
import torch

from workbench.analysis.extrapolation import (ExtrapolationLogitsProcessor, extrapolate_logprobs,
                                              extrapolated_generate, lockstep_decode)

from analysis_tiny_lm import PAD

EOS_MIDWAY = 36  # model A's greedy decode of `batch` emits it in rows 0 and 1 only: exercises early stop + padding


def hf_greedy(model, ids, mask, n, eos):
    out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=n,
                         eos_token_id=eos, pad_token_id=PAD)
    return out[:, ids.size(1):]


@pytest.mark.parametrize("eos", [None, EOS_MIDWAY])
def test_lambda_zero_is_rl_greedy_decode(model_a, model_b, batch, eos):
    ids, mask = batch
    ours = extrapolated_generate(model_a, model_b, ids, mask, lam=0.0, max_new_tokens=14,
                                 eos_token_id=eos, pad_token_id=PAD)
    ref = hf_greedy(model_a, ids, mask, 14, eos)
    assert torch.equal(ours.new_tokens, ref)
    assert torch.equal(ours.sequences[:, :ids.size(1)], ids)
    if eos is not None:
        assert (ours.new_tokens == eos).any(1).tolist() == [True, True, False]
        first = (ours.new_tokens == eos).float().argmax(1)
        assert ours.lengths[:2].tolist() == (first[:2] + 1).tolist() and ours.lengths[2].item() == 14


def test_extrapolated_logprobs_match_float64_formula():
    g = torch.Generator().manual_seed(0)
    l_rl, l_base = torch.randn(2, 9, generator=g) * 3, torch.randn(2, 9, generator=g) * 3
    for lam in (0.0, 0.5, 2.0, -0.5):
        got = extrapolate_logprobs(l_rl, l_base, lam)
        for r in range(2):
            a = [v - math.log(sum(math.exp(w) for w in l_rl[r].tolist())) for v in l_rl[r].tolist()]
            b = [v - math.log(sum(math.exp(w) for w in l_base[r].tolist())) for v in l_base[r].tolist()]
            mixed = [x + lam * (x - y) for x, y in zip(a, b)]
            z = math.log(sum(math.exp(m) for m in mixed))
            assert got[r].tolist() == pytest.approx([m - z for m in mixed], abs=1e-5)
    assert torch.equal(extrapolate_logprobs(l_rl, l_base, 0.0), torch.log_softmax(l_rl, -1))


def test_forbidden_tokens_stay_forbidden_without_nan():
    l_rl = torch.tensor([[0.0, -float("inf"), 1.0]])
    l_base = torch.tensor([[-float("inf"), 0.0, 1.0]])
    out = extrapolate_logprobs(l_rl, l_base, 1.0)
    assert not torch.isnan(out).any() and torch.isneginf(out[0, 1])
    assert out.exp().sum().item() == pytest.approx(1.0)


def test_logits_processor_matches_decode_function(model_a, model_b, batch):
    ids, mask = batch
    lam = 0.7
    ours = extrapolated_generate(model_a, model_b, ids, mask, lam=lam, max_new_tokens=10,
                                 eos_token_id=EOS_MIDWAY, pad_token_id=PAD)
    proc = ExtrapolationLogitsProcessor(model_b, lam, attention_mask=mask)
    out = model_a.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=10, logits_processor=[proc],
                           eos_token_id=EOS_MIDWAY, pad_token_id=PAD)
    assert torch.equal(out[:, ids.size(1):], ours.new_tokens)
    assert not torch.equal(ours.new_tokens, hf_greedy(model_a, ids, mask, 10, EOS_MIDWAY)), \
        "λ = 0.7 should change at least one token of these random models"
    with pytest.raises(ValueError, match="reset"):
        model_a.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=3, logits_processor=[proc],
                         pad_token_id=PAD)
    proc.reset(mask)
    again = model_a.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=10, logits_processor=[proc],
                             eos_token_id=EOS_MIDWAY, pad_token_id=PAD)
    assert torch.equal(again, out)


def test_sampling_is_seeded(model_a, model_b, batch):
    ids, mask = batch
    runs = [extrapolated_generate(model_a, model_b, ids, mask, lam=1.0, max_new_tokens=8, temperature=1.0,
                                  generator=torch.Generator().manual_seed(s), pad_token_id=PAD).new_tokens
            for s in (3, 3, 4)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_lockstep_rejects_right_padding_and_bad_values(model_a, model_b):
    ids = torch.tensor([[5, 6, PAD]])
    mask = torch.tensor([[1, 1, 0]])
    with pytest.raises(ValueError, match="left-padded"):
        lockstep_decode([model_a], ids, mask, lambda i, lg, f: lg[0].argmax(-1), max_new_tokens=2,
                        eos_token_id=None, pad_token_id=PAD)
    with pytest.raises(ValueError, match="temperature"):
        extrapolated_generate(model_a, model_b, ids[:, :2], lam=1.0, max_new_tokens=2, temperature=-1.0)
    empty = lockstep_decode([model_a], ids[:, :2], None, lambda i, lg, f: lg[0].argmax(-1), max_new_tokens=0,
                            eos_token_id=None, pad_token_id=PAD)
    assert empty.new_tokens.shape == (1, 0)


def test_greedy_shortcut_equals_argmax_of_normalised_logprobs():
    from workbench.analysis.extrapolation import extrapolate_logprobs, extrapolated_argmax

    g = torch.Generator().manual_seed(0)
    rl, base = torch.randn(64, 500, generator=g) * 3, torch.randn(64, 500, generator=g) * 3
    rl[5, 7] = float("-inf")  # forbidden by the RL model
    base[9, 3] = float("-inf")  # impossible under the base: the floor rule applies (slow path)
    for lam in (0.0, 0.5, 1.0, 3.0, -0.5):
        ref = extrapolate_logprobs(rl.double(), base.double(), lam).argmax(-1)
        assert torch.equal(extrapolated_argmax(rl, base, lam), ref), lam
