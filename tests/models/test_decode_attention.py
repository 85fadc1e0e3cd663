"""One-query decode attention (`workbench.models.decode_attention`) and inverse-CDF token sampling."""

import contextlib
import math

import torch

from workbench.models.scoring import output_cache, with_cache
from transformers import Qwen2ForCausalLM

from workbench.models.decode_attention import IMPLEMENTATION, decode_attention, decode_attention_forward
from workbench.models.generation import _decode_loop, encode_prompts, filter_logits, sample_tokens
from workbench.models.tiny import tiny_qwen2_config
from workbench.models.scoring import position_ids_from_mask
from workbench.models.tokenizer import build_tokenizer, format_prompt

PROMPTS = [format_prompt(q) for q in ("1+2", "9*9-3+1", "4", "7-7", "12+30")]


def _model(dtype):
    torch.manual_seed(0)
    tok = build_tokenizer()
    cfg = tiny_qwen2_config(len(tok), hidden=64, layers=2, heads=4, kv_heads=2, initializer_range=0.5)
    return Qwen2ForCausalLM(cfg).to(dtype).eval(), tok


def _naive_attention(q, k, v, keep, scale):
    """float64 loop over rows and heads: q [B, Hq, 1, D], k/v [B, Hkv, L, D], keep [B, L] bool -> [B, 1, Hq, D]."""
    B, Hq, _, D = q.shape
    g = Hq // k.size(1)
    out = torch.zeros(B, 1, Hq, D, dtype=torch.float64)
    for b in range(B):
        for h in range(Hq):
            s = [float(q[b, h, 0].double() @ k[b, h // g, j].double()) * scale if keep[b, j] else -math.inf
                 for j in range(k.size(2))]
            w = torch.tensor(s, dtype=torch.float64).softmax(0)
            out[b, 0, h] = w @ v[b, h // g].double()
    return out


def test_decode_attention_matches_a_float64_loop_with_padding():
    torch.manual_seed(1)
    B, Hq, Hkv, L, D = 3, 4, 2, 7, 8
    q, k, v = torch.randn(B, Hq, 1, D), torch.randn(B, Hkv, L, D), torch.randn(B, Hkv, L, D)
    keep = torch.ones(B, L, dtype=torch.bool)
    keep[0, :2] = False  # left padding
    keep[2, :5] = False
    with torch.no_grad():
        out, _ = decode_attention_forward(None, q, k, v, keep[:, None, None, :], scaling=D ** -0.5)
        unmasked, _ = decode_attention_forward(None, q, k, v, None, scaling=D ** -0.5)
    assert out.shape == (B, 1, Hq, D)
    torch.testing.assert_close(out.double(), _naive_attention(q, k, v, keep, D ** -0.5), rtol=0, atol=1e-5)
    torch.testing.assert_close(unmasked.double(), _naive_attention(q, k, v, torch.ones_like(keep), D ** -0.5), rtol=0, atol=1e-5)


def test_decode_steps_give_sdpa_logits_and_the_implementation_is_restored(monkeypatch):
    """A left-padded prefill and six decode steps: logits with the one-query path equal sdpa's (float64
    to round-off), and only the prefill went to SDPA; the model is back on sdpa afterwards, and with
    gradients the call goes to SDPA."""
    from transformers.integrations import sdpa_attention

    fallbacks = []
    original = sdpa_attention.sdpa_attention_forward
    monkeypatch.setattr(sdpa_attention, "sdpa_attention_forward", lambda *a, **k: fallbacks.append(1) or original(*a, **k))
    model, tok = _model(torch.float64)
    ids, mask = encode_prompts(tok, PROMPTS)
    logits = {}
    for name in ("sdpa", IMPLEMENTATION):
        with torch.no_grad(), (decode_attention(model) if name == IMPLEMENTATION else contextlib.nullcontext()):
            assert model.config._attn_implementation == name
            pos = position_ids_from_mask(mask)
            out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
            past, am, nxt, steps = output_cache(out), mask, pos[:, -1:] + 1, [out.logits[:, -1]]
            for _ in range(6):
                am = torch.cat([am, torch.ones_like(am[:, :1])], 1)
                out = model(input_ids=steps[-1].argmax(-1, keepdim=True), attention_mask=am, position_ids=nxt,
                            use_cache=True, **with_cache(past))
                past, nxt = output_cache(out), nxt + 1
                steps.append(out.logits[:, -1])
        logits[name] = torch.stack(steps)
    assert model.config._attn_implementation == "sdpa"
    assert len(fallbacks) == model.config.num_hidden_layers  # the prefill's calls; the 6 × layers decode calls did not fall back
    torch.testing.assert_close(logits[IMPLEMENTATION], logits["sdpa"], rtol=0, atol=1e-10)
    q = torch.randn(2, 4, 1, 8, requires_grad=True)
    k = v = torch.randn(2, 2, 5, 8)
    layer = model.model.layers[0].self_attn
    out, _ = decode_attention_forward(layer, q, k, v, None, scaling=0.3)
    out.sum().backward()  # the gradient path is transformers' SDPA, which supports backward
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_decode_loop_tokens_are_the_same_with_the_one_query_path():
    model, tok = _model(torch.float32)
    ids, mask = encode_prompts(tok, PROMPTS)
    eos = tok.eos_token_id
    for greedy in (True, False):
        runs = []
        for fast in (False, True):
            with torch.no_grad(), (decode_attention(model) if fast else contextlib.nullcontext()):
                runs.append(_decode_loop(model, ids, mask, 16, 1.0, 1.0, greedy, torch.Generator().manual_seed(3), eos,
                                         num_samples=2))
        assert torch.equal(runs[0], runs[1])


def test_sample_tokens_follows_the_probabilities_and_never_draws_a_zero():
    """200k draws from fixed rows (one with top-p-filtered zeros): each token's frequency is within 5
    binomial standard errors of its float64 probability, and no p = 0 token is ever drawn."""
    torch.manual_seed(0)
    logits = torch.randn(3, 11) * 2
    probs = filter_logits(logits, 0.7, 1.0).softmax(-1)
    probs[2] = filter_logits(logits[2:], 1.0, 0.6).softmax(-1)[0]
    n = 200_000
    g = torch.Generator().manual_seed(0)
    draws = sample_tokens(probs.repeat_interleave(n, 0), g).view(3, n)
    for row in range(3):
        p = probs[row].double()
        freq = torch.bincount(draws[row], minlength=11).double() / n
        se = (p * (1 - p) / n).sqrt()
        assert ((freq - p).abs() <= 5 * se + 1e-12).all(), (row, freq, p)
        assert (freq[p == 0] == 0).all()
    assert (probs[2] == 0).sum() >= 3  # the filtered row really has zeros
    again = sample_tokens(probs.repeat_interleave(n, 0), torch.Generator().manual_seed(0)).view(3, n)
    assert torch.equal(draws, again)


def test_sample_tokens_on_a_one_hot_row():
    probs = torch.zeros(4, 5)
    probs[torch.arange(4), torch.tensor([0, 4, 2, 4])] = 1.0
    for s in range(5):
        assert sample_tokens(probs, torch.Generator().manual_seed(s)).tolist() == [0, 4, 2, 4]
