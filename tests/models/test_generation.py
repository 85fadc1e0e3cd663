import pytest
import torch
from transformers import Qwen2ForCausalLM

from workbench.models.generation import filter_logits, sample
from workbench.models.tiny import tiny_qwen2_config
from workbench.models.scoring import completion_logprobs, entropy_from_logits, selective_log_softmax
from workbench.models.tokenizer import build_tokenizer, format_prompt


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    tok = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok), hidden=64, layers=2, heads=4, kv_heads=2)).eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


PROMPTS = [format_prompt("1+2"), format_prompt("9*9-3+1"), format_prompt("4")]


def test_greedy_matches_hf_generate_per_prompt(lm):
    model, tok = lm
    gen = sample(model, tok, PROMPTS, greedy=True, max_new_tokens=12)
    for i, p in enumerate(PROMPTS):  # each prompt alone (no padding) through HF generate
        ids = tok(p, return_tensors="pt", add_special_tokens=False)["input_ids"]
        ref = model.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)[0, ids.size(1):]
        n = int(gen.completion_mask[i].sum())
        assert gen.completion_ids[i, :n].tolist() == ref[:n].tolist()


def test_dropping_finished_rows_changes_no_token():
    """The decode loop drops finished rows from the batch and the KV cache; greedy tokens must equal
    those of a loop that never drops. A random model with large weights gives varied continuations
    that end (EOS) at different steps, so rows really are dropped mid-batch."""
    from workbench.models.generation import _decode_loop, encode_prompts

    torch.manual_seed(0)
    tok = build_tokenizer()
    cfg = tiny_qwen2_config(len(tok), hidden=64, layers=2, heads=4, kv_heads=2, initializer_range=0.5)
    model = Qwen2ForCausalLM(cfg).eval()
    prompts = PROMPTS + [format_prompt(q) for q in ("7-7", "12+30", "5*5*5", "0", "8/2", "3-9")]
    ids, mask = encode_prompts(tok, prompts)
    eos = tok.eos_token_id
    args = (model, ids, mask, 24, 1.0, 1.0, True, None, eos)
    never = _decode_loop(*args, compact_frac=float("inf"))
    always = _decode_loop(*args, compact_frac=0.0)
    default = _decode_loop(*args)
    ended = (never == eos).any(1)
    first_eos = torch.where(ended, (never == eos).float().argmax(1), -1)
    assert int(ended.sum()) >= 2 and len(set(first_eos.tolist())) >= 3, f"rows must end at different steps: {first_eos}"
    assert torch.equal(never, always) and torch.equal(never, default)


def test_a_prompt_prefilled_once_gives_the_same_tokens_as_repeated_prompts(monkeypatch):
    """`num_samples` > 1 prefills each prompt once and repeats its KV cache; greedy tokens (and, with one
    generator, sampled tokens) must equal decoding the repeated prompts, left padding included."""
    from workbench.models.generation import _decode_loop, encode_prompts

    torch.manual_seed(0)
    tok = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok), hidden=64, layers=2, heads=4, kv_heads=2, initializer_range=0.5)).eval()
    ids, mask = encode_prompts(tok, PROMPTS + [format_prompt("12+30"), format_prompt("7")])
    assert (mask == 0).any(), "prompts of different lengths: some rows are left-padded"
    eos, G = tok.eos_token_id, 3
    for greedy in (True, False):
        shared = _decode_loop(model, ids, mask, 16, 1.0, 1.0, greedy, torch.Generator().manual_seed(0), eos, num_samples=G)
        repeated = _decode_loop(model, ids.repeat_interleave(G, 0), mask.repeat_interleave(G, 0), 16, 1.0, 1.0, greedy,
                                torch.Generator().manual_seed(0), eos)
        assert shared.shape[0] == G * ids.shape[0] and torch.equal(shared, repeated)
    # a cache type that cannot be repeated: every row is prefilled instead, same tokens
    from transformers.cache_utils import Cache

    monkeypatch.delattr(Cache, "batch_repeat_interleave")
    fallback = _decode_loop(model, ids, mask, 16, 1.0, 1.0, True, None, eos, num_samples=G)
    assert torch.equal(fallback, _decode_loop(model, ids.repeat_interleave(G, 0), mask.repeat_interleave(G, 0), 16, 1.0,
                                              1.0, True, None, eos))


def test_sampling_is_seeded_and_grouped(lm):
    model, tok = lm
    a = sample(model, tok, PROMPTS, num_samples=3, max_new_tokens=10, generator=torch.Generator().manual_seed(1))
    b = sample(model, tok, PROMPTS, num_samples=3, max_new_tokens=10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.completion_ids, b.completion_ids) and a.texts == b.texts
    assert a.completion_ids.size(0) == 9 and torch.equal(a.prompt_ids[0], a.prompt_ids[2])
    assert a.truncated.dtype == torch.bool


def test_mask_stops_after_eos_and_truncation_flag():
    from workbench.models.generation import _finish

    new = torch.tensor([[5, 1, 7, 1], [5, 6, 7, 8], [1, 2, 3, 4]])
    ids, mask, trunc = _finish(new, eos=1, pad=0)
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert trunc.tolist() == [False, True, False]
    assert ids.tolist() == [[5, 1, 0, 0], [5, 6, 7, 8], [1, 0, 0, 0]]


def test_top_p_matches_naive():
    torch.manual_seed(0)
    logits = torch.randn(5, 11)
    for top_p in (0.1, 0.5, 0.9, 1.0):
        out = filter_logits(logits, 0.7, top_p)
        for b in range(5):
            probs = (logits[b].double() / 0.7).softmax(-1)
            order = probs.argsort(descending=True).tolist()
            kept, mass = set(), 0.0
            for i in order:  # smallest prefix whose mass reaches top_p
                kept.add(i)
                mass += probs[i].item()
                if mass >= top_p:
                    break
            assert {i for i in range(11) if out[b, i] > -float("inf")} == kept


def test_completion_logprobs_match_float64_reference_and_padding(lm):
    model, tok = lm
    gen = sample(model, tok, PROMPTS, num_samples=2, max_new_tokens=8, generator=torch.Generator().manual_seed(0))
    logp, ent = completion_logprobs(model, gen.prompt_ids, gen.prompt_mask, gen.completion_ids,
                                    gen.completion_mask, with_entropy=True)
    for i in range(len(gen.texts)):  # each row alone, unpadded, full log-softmax in float64
        p = gen.prompt_ids[i][gen.prompt_mask[i].bool()]
        n = int(gen.completion_mask[i].sum())
        c = gen.completion_ids[i, :n]
        full = torch.cat([p, c])[None]
        logits = model(full).logits[0, len(p) - 1 : len(p) - 1 + n].double()
        ref = logits.log_softmax(-1).gather(-1, c[:, None]).squeeze(-1)
        ref_ent = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)
        torch.testing.assert_close(logp[i, :n].double(), ref, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ent[i, :n].double(), ref_ent, atol=1e-4, rtol=1e-4)
        assert torch.all(logp[i, n:] == 0)


def test_selective_log_softmax_and_entropy_helpers():
    z = torch.randn(3, 4, 17, dtype=torch.float64)
    idx = torch.randint(0, 17, (3, 4))
    torch.testing.assert_close(selective_log_softmax(z, idx).double(), z.log_softmax(-1).gather(-1, idx[..., None])[..., 0],
                               atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(entropy_from_logits(z).double(), -(z.softmax(-1) * z.log_softmax(-1)).sum(-1), atol=1e-6, rtol=1e-6)


def test_gradients_through_left_padded_batch_are_finite(lm):
    model, tok = lm
    gen = sample(model, tok, PROMPTS, max_new_tokens=6, generator=torch.Generator().manual_seed(0))
    model.train()
    logp, _ = completion_logprobs(model, gen.prompt_ids, gen.prompt_mask, gen.completion_ids, gen.completion_mask)
    logp.sum().backward()
    model.eval()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.zero_grad()


def test_shared_prompt_scoring_equals_one_pass_scoring_with_gradients():
    """Each distinct prompt run once (KV cache gathered to its rows) must give the one-pass log-probs,
    entropies and parameter gradients (float64), with left-padded prompts of different lengths and
    right-padded completions, including a completion of length 0."""
    torch.manual_seed(0)
    tok = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok), hidden=64, layers=2, heads=4, kv_heads=2)).double().train()
    gen = sample(model, tok, PROMPTS, num_samples=3, max_new_tokens=9, generator=torch.Generator().manual_seed(0))
    cmask = gen.completion_mask.clone()
    cmask[4] = 0  # an empty completion
    weights = torch.randn(cmask.shape, dtype=torch.float64)
    results = []
    for share in (False, True):
        model.zero_grad()
        logp, ent = completion_logprobs(model, gen.prompt_ids, gen.prompt_mask, gen.completion_ids, cmask,
                                        with_entropy=True, temperature=0.7, share_prompts=share)
        (logp * weights).sum().backward()
        results.append((logp.detach(), ent, [p.grad.clone() for p in model.parameters()]))
    (lp0, e0, g0), (lp1, e1, g1) = results
    assert (gen.prompt_mask == 0).any() and lp0.abs().sum() > 0
    from workbench.models.scoring import shared_prompt_logits

    assert shared_prompt_logits(model, gen.prompt_ids, gen.prompt_mask, gen.completion_ids, cmask) is not None  # it did share
    assert shared_prompt_logits(model, gen.prompt_ids[::3], gen.prompt_mask[::3], gen.completion_ids[::3], cmask[::3]) is None
    torch.testing.assert_close(lp1, lp0, rtol=0, atol=1e-10)
    torch.testing.assert_close(e1, e0, rtol=0, atol=1e-10)
    # HF's Qwen2RMSNorm computes in float32 even for a float64 model, so summing a prompt's gradient
    # over its rows before (shared) or after (one pass) its backward differs at float32 precision;
    # a missing path (a detached cache, the first-token logits) is off by orders of magnitude more
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))
