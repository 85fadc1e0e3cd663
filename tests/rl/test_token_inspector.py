"""The token inspector: top-k alternatives, log-probs, entropy and every registered weight of one response under two
models, against a float64 reference; and its live and static views."""

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from workbench.models.tiny import tiny_causal_lm  # noqa: E402
from workbench.models.tokenizer import build_tokenizer  # noqa: E402
from workbench.rl.inspect import inspect_tokens  # noqa: E402
from workbench.rl.weights import TOKEN_WEIGHTS, WeightContext  # noqa: E402
from workbench.viz.inspector import (TokenInspector, inspection_html, most_changed, plot_token_inspection,  # noqa: E402
                                     token_inspector)


def _lm(tok, seed):
    return tiny_causal_lm(tok, seed=seed, hidden=32, layers=1, heads=2, kv_heads=1).eval()


@pytest.fixture(scope="module")
def setup():
    tok = build_tokenizer()
    a, b = _lm(tok, 0), _lm(tok, 1)
    prompt = torch.tensor(tok.encode("12+7="))
    completion = torch.tensor(tok.encode("19\nanswer: 19"))
    return tok, a, b, prompt, completion, inspect_tokens(a, b, tok, prompt, completion, k=4)


def _reference_logprobs(model, prompt, completion):
    ids = torch.cat([prompt, completion]).unsqueeze(0)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    lp = torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)
    return lp


def test_numbers_match_a_float64_reference(setup):
    tok, a, b, prompt, completion, insp = setup
    for i, model in enumerate((a, b)):
        lp = _reference_logprobs(model, prompt, completion)
        np.testing.assert_allclose(insp.logp[i], lp[range(len(completion)), completion].numpy(), atol=1e-6)
        np.testing.assert_allclose(insp.entropy[i], (-(lp.exp() * lp).sum(-1)).numpy(), atol=1e-6)
        order = torch.argsort(lp, dim=-1, descending=True)[:, :4]
        np.testing.assert_allclose(insp.top_probs[i], lp.exp().gather(-1, order).numpy(), atol=1e-6)
        assert insp.top_tokens[i][0] == [s or "<?>" for s in tok.convert_ids_to_tokens(order[0].tolist())]
    np.testing.assert_allclose(insp.delta_logp, insp.logp[1] - insp.logp[0])
    assert insp.tokens == tok.convert_ids_to_tokens(completion.tolist())


def test_every_registered_weight_has_a_value_or_a_reason(setup):
    *_, insp = setup
    assert set(insp.weights) | set(insp.skipped) == set(TOKEN_WEIGHTS.names())
    assert "tor" in insp.skipped and "visual_dependency" in insp.skipped["tor"]  # a text model has no image signal
    ctx = WeightContext(logp=torch.tensor(insp.logp[1:]).float(), old_logp=torch.tensor(insp.logp[:1]).float(),
                        mask=torch.ones(1, len(insp.tokens)), advantages=torch.ones(1, len(insp.tokens)))
    np.testing.assert_allclose(insp.weights["low_prob"], 1 + 0.1 * (1 - np.exp(insp.logp[0])), atol=1e-6)
    np.testing.assert_allclose(insp.weights["future_kl"], TOKEN_WEIGHTS.get("future_kl")(ctx)[0].numpy(), atol=1e-6)


def test_image_signal_unlocks_tor(setup):
    tok, a, b, prompt, completion, _ = setup
    dep = torch.linspace(0, 1, len(completion))
    insp = inspect_tokens(a, b, tok, prompt, completion, k=2, extras={"visual_dependency": dep})
    assert "tor" in insp.weights and set(np.unique(insp.weights["tor"])) <= {0.0, 0.5, 1.0}


def test_bad_input_is_named(setup):
    tok, a, b, prompt, completion, insp = setup
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.\d+ \(the vocabulary\), got 0"):
        inspect_tokens(a, b, tok, prompt, completion, k=0)
    with pytest.raises(ValueError, match="response to inspect is empty"):
        inspect_tokens(a, b, tok, prompt, completion[:0])
    with pytest.raises(IndexError, match="outside the response"):
        insp.table(len(completion))


def test_views(setup):
    *_, insp = setup
    t = most_changed(insp)
    assert abs(insp.delta_logp[t]) == np.abs(insp.delta_logp).max()
    fig = plot_token_inspection(insp)
    assert len(fig.axes) == 2 and all(len(ax.patches) == 4 for ax in fig.axes)
    assert f"token {t}" in fig._suptitle.get_text()
    assert "Δlog p" in inspection_html(insp, 0) and "<b>" not in inspection_html(insp, 0)
    static = token_inspector(insp)  # no kernel here: the static view of the most-changed token
    assert not isinstance(static, TokenInspector) and static.t == t and "Δlog p" in static._repr_html_()
    live = token_inspector(insp, static=False)
    live.picker.value = 1
    assert repr(insp.tokens[1])[1:-1] in live.output.value or "t=1" in live.output.value
    assert list(insp.table(2).columns) == ["base token", "base p", "RL token", "RL p"]
    assert list(insp.summary().columns)[:6] == ["token", "logp base", "logp RL", "delta_logp", "entropy base", "entropy RL"]
