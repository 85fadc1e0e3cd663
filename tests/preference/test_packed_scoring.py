"""`PreferenceConfig.pack`: a pair's chosen and rejected answers behind one copy of its prompt give the same
sequence log-probs and gradients as the padded batch (float64, with `float64_rms_norm` from tests/conftest.py),
and the same training step."""

import copy

import pytest
import torch

from workbench.models.tiny import tiny_causal_lm
from workbench.models.tokenizer import build_tokenizer, format_prompt
from workbench.preference.pairs import PreferencePair
from workbench.preference.scoring import text_sequence_logps
from workbench.preference.trainer import PreferenceConfig, train_preference


@pytest.fixture
def lm(float64_rms_norm):
    tok = build_tokenizer()
    return tiny_causal_lm(tok, seed=0, hidden=32, layers=2, heads=2, kv_heads=1).double().train(), tok


PROMPTS = [format_prompt(q) for q in ("3+4", "12*7-2", "9")]
CHOSEN, REJECTED = ["3+4=7\nanswer: 7", "12*7=84\n84-2=82\nanswer: 82", "answer: 9"], ["answer: 8", "answer: 81", "9\nanswer: 10"]


@pytest.mark.parametrize("chunk", [None, 8])
def test_packed_sequence_logps_equal_the_padded_ones(lm, chunk):
    model, tok = lm
    prompts, answers = PROMPTS * 2, CHOSEN + REJECTED
    a, na = text_sequence_logps(model, tok, prompts, answers, chunk)
    b, nb = text_sequence_logps(model, tok, prompts, answers, chunk, packed=True)
    torch.testing.assert_close(b, a, atol=1e-10, rtol=0)
    assert torch.equal(na.cpu(), nb.cpu())
    ga = torch.autograd.grad((a * torch.arange(1.0, 7.0, dtype=a.dtype)).sum(), list(model.parameters()))
    gb = torch.autograd.grad((b * torch.arange(1.0, 7.0, dtype=b.dtype)).sum(), list(model.parameters()))
    for x, y in zip(ga, gb):
        torch.testing.assert_close(y, x, atol=1e-10, rtol=0)


def test_packed_training_step_is_the_same(lm):
    model, tok = lm
    pairs = [PreferencePair(id=str(i), scene=None, prompt=p, chosen=c, rejected=r)
             for i, (p, c, r) in enumerate(zip(PROMPTS, CHOSEN, REJECTED))]
    after = []
    for pack in (False, True):
        m = copy.deepcopy(model)
        cfg = PreferenceConfig(loss="sigmoid", beta=0.1, steps=2, batch_size=3, lr=1e-2, seed=0, pack=pack)
        train_preference(m, tok, pairs, cfg, reference=copy.deepcopy(model))
        after.append([p.detach().clone() for p in m.parameters()])
    assert max((x - y).abs().max().item() for x, y in zip(after[0], model.parameters())) > 1e-5
    for x, y in zip(*after):
        torch.testing.assert_close(y, x, atol=1e-9, rtol=0)
