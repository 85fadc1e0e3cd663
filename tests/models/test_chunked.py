"""Chunked log-probs equal the full-logits path (values and gradients, float64), text and vision-language."""

import pytest
import torch

from workbench.models.chunked import chunked_logprobs, split_lm
from workbench.models.tiny import tiny_causal_lm
from workbench.models.tokenizer import build_tokenizer
from workbench.preference.scoring import sequence_logps, text_sequence_logps


def _naive(hidden, head, y):
    z = (hidden.double() @ head.weight.double().T + (head.bias.double() if head.bias is not None else 0))
    logp = torch.log_softmax(z, -1)
    return logp.gather(-1, y[:, None]).squeeze(-1), -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
@pytest.mark.parametrize("bias", [False, True])
def test_chunked_logprobs_against_a_float64_reference(chunk, bias):
    torch.manual_seed(0)
    head = torch.nn.Linear(6, 11, bias=bias).double()
    h = torch.randn(9, 6, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 11, (9,))
    lp, ent = chunked_logprobs(h, head, y, chunk=chunk, with_entropy=True)
    ref_lp, ref_ent = _naive(h, head, y)
    assert torch.allclose(lp, ref_lp, atol=1e-12) and torch.allclose(ent, ref_ent, atol=1e-12)
    w = torch.randn(9, dtype=torch.float64)
    g = torch.autograd.grad((lp * w).sum(), [h, head.weight])
    g_ref = torch.autograd.grad((ref_lp * w).sum(), [h, head.weight])
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(g, g_ref))


def test_temperature_and_empty_and_bad_input():
    head = torch.nn.Linear(4, 5).double()
    h, y = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 4, 2])
    lp, _ = chunked_logprobs(h, head, y, temperature=0.5)
    z = head(h) / 0.5
    assert torch.allclose(lp, torch.log_softmax(z, -1).gather(-1, y[:, None]).squeeze(-1), atol=1e-12)
    empty, _ = chunked_logprobs(h[:0], head, y[:0])
    assert empty.shape == (0,)
    with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
        chunked_logprobs(h, head, y, chunk=0)
    with pytest.raises(ValueError, match=r"hidden must be \[N, D\]"):
        chunked_logprobs(h[None], head, y)


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    tok = build_tokenizer()
    return tiny_causal_lm(tok, hidden=32, layers=2, heads=2, kv_heads=1).double(), tok


def test_sequence_logps_chunked_equals_full_logits_values_and_grads(lm):
    model, tok = lm
    prompts, answers = ["<q>1+2=", "<q>10+2*3="], ["3", "16 because 2*3=6"]
    full, n_full = text_sequence_logps(model, tok, prompts, answers, chunk=None)
    g_full = torch.autograd.grad(full.sum(), list(model.parameters()), allow_unused=True)
    part, n_part = text_sequence_logps(model, tok, prompts, answers, chunk=2)
    g_part = torch.autograd.grad(part.sum(), list(model.parameters()), allow_unused=True)
    assert torch.equal(n_full, n_part)
    assert torch.allclose(full, part, atol=1e-10)
    for a, b in zip(g_full, g_part):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-10)


def test_split_lm_finds_decoder_and_head_and_declines_wrappers(lm):
    model, _ = lm
    decoder, head = split_lm(model)
    assert head is model.get_output_embeddings() and decoder is model.model

    class Wrapper(torch.nn.Module):  # a DDP-like wrapper: its own forward must run
        def __init__(self, m):
            super().__init__()
            self.module = m

    assert split_lm(Wrapper(model)) is None
    model.config.final_logit_softcapping = 30.0
    try:
        assert split_lm(model) is None
    finally:
        model.config.final_logit_softcapping = None


@pytest.mark.parametrize("share", [False, True])
def test_completion_logprobs_chunked_equals_full(lm, share):
    from workbench.models.scoring import completion_logprobs

    model, tok = lm
    torch.manual_seed(1)
    V = model.config.vocab_size
    prompt_ids = torch.randint(3, V, (4, 5))
    prompt_ids[2:] = prompt_ids[:2]  # repeated prompts: the shared-prefix path runs
    prompt_mask = torch.ones_like(prompt_ids)
    prompt_mask[1, :2] = 0
    prompt_mask[3, :2] = 0
    completion_ids = torch.randint(3, V, (4, 6))
    completion_mask = torch.ones_like(completion_ids)
    completion_mask[0, 4:] = 0
    args = (model, prompt_ids, prompt_mask, completion_ids, completion_mask)
    full, ent_full = completion_logprobs(*args, with_entropy=True, share_prompts=share)
    g_full = torch.autograd.grad(full.sum(), list(model.parameters()), allow_unused=True)
    part, ent_part = completion_logprobs(*args, with_entropy=True, share_prompts=share, chunk=3, temperature=1.0)
    g_part = torch.autograd.grad(part.sum(), list(model.parameters()), allow_unused=True)
    assert torch.allclose(full, part, atol=1e-10) and torch.allclose(ent_full, ent_part, atol=1e-10)
    assert (part[0, 4:] == 0).all()
    for a, b in zip(g_full, g_part):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-10)


def test_bench_chunked_logprobs_quick(tmp_path):
    import json
    import os
    import sys

    from workbench.utils import repo_root

    sys.path.insert(0, os.path.join(repo_root(), "benchmarks"))
    import bench_chunked_logprobs as bench

    out = tmp_path / "c.json"
    assert bench.main(["--quick", "--repeats", "1", "--out", str(out)]) == 0
    rec = json.load(open(out))
    assert rec["max_abs_logp_diff"] < 1e-4 and len(rec["sides"]) == 2
