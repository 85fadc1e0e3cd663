"""Notebook 08's parameter checks: one sentence naming the bad value."""

import pytest

from workbench.experiments import react
from workbench.notebook import ParameterError


@pytest.mark.parametrize("params,message", [
    (dict(top_m=5, probes=4), "'top_m' must be at most probes = 4, got 5"),
    (dict(probes=8, window=4), "exceed the 16-frame clips"),
])
def test_bad_combinations(params, message):
    P = react.PRESETS.values("cpu", **params)
    with pytest.raises(ParameterError, match=message):
        react.check(P)


def test_gpu_needs_a_checkpoint():
    with pytest.raises(ParameterError, match="local checkpoint path"):
        react.check(react.PRESETS.values("gpu"))


def test_presets_resolve_every_parameter_of_the_notebook():
    P = react.PRESETS.values("smoke")
    assert P.model == "tiny-react-vl-smoke" and P.n_shown == 4 and P.probes * P.window <= 16
    react.check(P)
