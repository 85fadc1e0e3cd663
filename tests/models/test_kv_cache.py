import torch

from workbench.models.scoring import output_cache, with_cache
from transformers import Qwen2ForCausalLM
from transformers.cache_utils import DynamicCache

from workbench.models.generation import _decode_loop, encode_prompts
from workbench.models.kv_cache import PreallocatedLayer, preallocated_cache
from workbench.models.tiny import tiny_qwen2_config
from workbench.models.scoring import position_ids_from_mask
from workbench.models.tokenizer import build_tokenizer, format_prompt

PROMPTS = [format_prompt(q) for q in ("1+2", "9*9-3+1", "4", "7-7", "12+30", "5*5*5")]


def _model(dtype=torch.float64, **kw):
    torch.manual_seed(0)
    tok = build_tokenizer()
    cfg = tiny_qwen2_config(len(tok), hidden=64, layers=2, heads=4, kv_heads=2, initializer_range=0.5, **kw)
    return Qwen2ForCausalLM(cfg).to(dtype).eval(), tok


@torch.no_grad()
def test_preallocated_cache_gives_dynamic_cache_logits_through_growth_select_and_repeat():
    """Same decode driven by HF's DynamicCache and by a PreallocatedLayer cache of capacity 3 (so it
    must grow several times), with a group repeat after the prefill and a row selection mid-way:
    every step's logits agree to float64 round-off, and the cache length is the token count."""
    model, tok = _model()
    ids, mask = encode_prompts(tok, PROMPTS)
    pos = position_ids_from_mask(mask)
    caches = {"dynamic": DynamicCache(), "preallocated": preallocated_cache(model, capacity=3)}
    assert all(isinstance(layer, PreallocatedLayer) for layer in caches["preallocated"].layers)
    state = {}
    for name, cache in caches.items():
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **with_cache(cache))
        cache.batch_repeat_interleave(2)
        state[name] = [out.logits[:, -1].repeat_interleave(2, 0)]
    am, nxt = mask.repeat_interleave(2, 0), pos[:, -1:].repeat_interleave(2, 0) + 1
    tok_ = state["dynamic"][0].argmax(-1)
    keep = torch.tensor([0, 3, 4, 7, 8, 11])
    for t in range(9):
        if t == 4:  # drop some rows, as the decode loop does with finished ones
            for cache in caches.values():
                cache.batch_select_indices(keep)
            am, nxt, tok_ = am[keep], nxt[keep], tok_[keep]
        am = torch.cat([am, torch.ones_like(am[:, :1])], 1)
        for name, cache in caches.items():
            out = model(input_ids=tok_[:, None], attention_mask=am, position_ids=nxt, use_cache=True, **with_cache(cache))
            state[name].append(out.logits[:, -1])
        tok_, nxt = state["dynamic"][-1].argmax(-1), nxt + 1
    for a, b in zip(state["dynamic"], state["preallocated"]):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-10)
    assert caches["preallocated"].get_seq_length() == caches["dynamic"].get_seq_length() == ids.size(1) + 9


def test_decode_loop_tokens_do_not_depend_on_the_cache_storage():
    """Greedy and seeded sampled tokens, with finished rows dropped along the way, are identical with
    the preallocated cache and with HF's default cache (float32, as in rollouts)."""
    model, tok = _model(torch.float32)
    ids, mask = encode_prompts(tok, PROMPTS)
    eos = tok.eos_token_id
    for greedy in (True, False):
        runs = [_decode_loop(model, ids, mask, 20, 1.0, 1.0, greedy, torch.Generator().manual_seed(2), eos, num_samples=3,
                             preallocate=p) for p in (True, False)]
        assert torch.equal(runs[0], runs[1])
        assert (runs[1] == eos).any(1).sum() >= 2, "some rows must end early so the cache is compacted"


def test_layers_that_are_not_plain_full_attention_keep_the_default_cache():
    model, _ = _model(use_sliding_window=True, sliding_window=4, max_window_layers=0)
    assert preallocated_cache(model, 16) is None
