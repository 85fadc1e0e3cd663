import copy
import math

import pytest
import torch

from workbench.analysis.token_stats import (compute_token_stats, js_from_logits, kl_from_logits,
                                            position_ids_from_mask, selective_log_softmax, token_stats_frame)

from analysis_tiny_lm import PAD, VOCAB


def padded_batch(lengths=(12, 9, 5), T=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), T), PAD, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, n in enumerate(lengths):
        ids[r, T - n:] = torch.randint(3, VOCAB, (n,), generator=g)
        mask[r, T - n:] = 1
    return ids, mask


def reference_stats(model_a, model_b, seq):
    """float64, unpadded, explicit loops over positions and vocabulary."""
    ma, mb = copy.deepcopy(model_a).double(), copy.deepcopy(model_b).double()
    with torch.no_grad():
        la = ma(input_ids=seq[None]).logits[0].tolist()
        lb = mb(input_ids=seq[None]).logits[0].tolist()
    rows = []
    for t in range(1, len(seq)):
        y = int(seq[t])

        def probs(logits):
            m = max(logits)
            z = sum(math.exp(v - m) for v in logits)
            return [math.exp(v - m) / z for v in logits]

        pa, pb = probs(la[t - 1]), probs(lb[t - 1])
        pm = [(x + w) / 2 for x, w in zip(pa, pb)]
        kl = sum(x * (math.log(x) - math.log(w)) for x, w in zip(pa, pb) if x > 0)
        js = 0.5 * sum(x * math.log(x / m) for x, m in zip(pa, pm) if x > 0) \
            + 0.5 * sum(w * math.log(w / m) for w, m in zip(pb, pm) if w > 0)
        rows.append({"position": t, "logp_a": math.log(pa[y]), "logp_b": math.log(pb[y]),
                     "entropy_a": -sum(x * math.log(x) for x in pa if x > 0),
                     "entropy_b": -sum(x * math.log(x) for x in pb if x > 0),
                     "delta_logp": math.log(pa[y]) - math.log(pb[y]), "kl": kl, "js": js})
    return rows


def test_statistics_match_float64_reference_on_left_padded_batch(model_a, model_b):
    ids, mask = padded_batch()
    frame = token_stats_frame(model_a, ids, mask, model_b=model_b, chunk_size=4)
    for r in range(ids.size(0)):
        seq = ids[r][mask[r].bool()]
        ref = reference_stats(model_a, model_b, seq)
        got = frame[frame.seq_id == r].reset_index(drop=True)
        assert got["position"].tolist() == [row["position"] for row in ref]
        assert got["token_id"].tolist() == seq[1:].tolist()
        for name in ("logp_a", "logp_b", "entropy_a", "entropy_b", "delta_logp", "kl", "js"):
            assert got[name].tolist() == pytest.approx([row[name] for row in ref], abs=2e-5), name


def test_left_padding_with_absolute_positions_equals_unpadded():
    """GPT-2 has learned absolute positions (RoPE is shift-invariant), so this checks the position ids."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                      initializer_range=0.2)).eval()
    ids, mask = padded_batch()
    batched = compute_token_stats(gpt2, ids, mask, chunk_size=4)
    for r in range(ids.size(0)):
        n = int(mask[r].sum())
        alone = compute_token_stats(gpt2, ids[r:r + 1, -n:], chunk_size=4)
        for k in ("logp_a", "entropy_a"):
            torch.testing.assert_close(batched.values[k][r, -n:], alone.values[k][0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 3, 5, 100])
def test_chunked_equals_unchunked(model_a, model_b, chunk_size):
    ids, mask = padded_batch()
    full = compute_token_stats(model_a, ids, mask, model_b=model_b, chunk_size=None)
    chunked = compute_token_stats(model_a, ids, mask, model_b=model_b, chunk_size=chunk_size)
    assert torch.equal(full.valid, chunked.valid)
    for k in full.values:
        torch.testing.assert_close(chunked.values[k], full.values[k], atol=1e-5, rtol=1e-5)


def test_selective_log_softmax_matches_naive_twin():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 50, generator=g) * 4
    index = torch.randint(0, 50, (3, 5), generator=g)
    naive = torch.log_softmax(logits.double(), -1).gather(-1, index[..., None]).squeeze(-1)
    torch.testing.assert_close(selective_log_softmax(logits, index).double(), naive, atol=1e-5, rtol=0)
    got = selective_log_softmax(logits.bfloat16(), index)
    assert got.dtype == torch.float32


def test_divergences_degenerate_inputs_have_no_nan():
    logits = torch.tensor([[0.0, 1.0, -float("inf")], [2.0, 2.0, 2.0]])
    assert torch.allclose(kl_from_logits(logits, logits), torch.zeros(2), atol=1e-7)
    assert torch.allclose(js_from_logits(logits, logits), torch.zeros(2), atol=1e-7)
    disjoint_p = torch.tensor([[0.0, -float("inf")]])
    disjoint_q = torch.tensor([[-float("inf"), 0.0]])
    assert js_from_logits(disjoint_p, disjoint_q).item() == pytest.approx(math.log(2))
    assert not torch.isnan(kl_from_logits(disjoint_p, disjoint_q)).any()


def test_frame_columns_names_and_response_mask(model_a, model_b):
    ids, mask = padded_batch()
    resp = torch.zeros_like(mask)
    resp[:, -3:] = 1
    frame = token_stats_frame(model_a, ids, mask, model_b=model_b, response_mask=resp, names=("rl", "base"),
                              tokenizer=lambda t: f"<{t}>", seq_ids=["x", "y", "z"], batch_size=2)
    assert list(frame.columns) == ["seq_id", "position", "token_id", "token", "logp_rl", "entropy_rl",
                                   "logp_base", "entropy_base", "delta_logp", "kl", "js"]
    assert len(frame) == 9 and set(frame.seq_id) == {"x", "y", "z"}
    assert frame[frame.seq_id == "z"]["position"].tolist() == [2, 3, 4]
    assert frame["token"].iloc[0] == f"<{frame['token_id'].iloc[0]}>"
    single = token_stats_frame(model_a, ids, mask)
    assert list(single.columns) == ["seq_id", "position", "token_id", "token", "logp_a", "entropy_a"]


def test_position_ids_and_bad_input(model_a):
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 0]]
    with pytest.raises(ValueError, match="chunk_size"):
        compute_token_stats(model_a, torch.ones(1, 3, dtype=torch.long), chunk_size=0)
    with pytest.raises(ValueError, match="non-empty"):
        compute_token_stats(model_a, torch.ones(1, 0, dtype=torch.long))
