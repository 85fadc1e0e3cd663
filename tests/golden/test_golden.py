"""Golden test of spine v2: the refactor changed no number.

`tests/golden/trainer.json` holds, from main *before* the restructuring, (a) pure functions on fixed float64
tensors and (b) a 3-step training fingerprint of every RL method on a tiny random LM; `notebooks.json` holds
every notebook's smoke-run metrics and claims (compared in `tests/test_notebooks.py`, which runs them).
On the machine they came from (same CPU, ISA, torch, threads) every number must match to rtol 1e-6. Float
rounding differs between CPUs, so elsewhere the training-dependent parts are compared by structure only
(keys, list lengths, types) and the test says so with a warning; the pure functions are compared anyway.
"""

import json
import os
import sys
import warnings

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fingerprints import TRAINER_RUNS, compare, machine, pure_fingerprint, same_machine, strip_times, trainer_fingerprint  # noqa: E402

GOLDEN = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainer.json")))


def _exact_here() -> bool:
    if same_machine(GOLDEN["machine"]):
        return True
    warnings.warn(f"golden numbers come from {GOLDEN['machine']}, this is {machine()}: comparing structure only")
    return False


def test_pure_functions_match_golden_on_any_machine():
    diffs = compare(pure_fingerprint(), GOLDEN["pure"], exact=True)
    assert not diffs, "\n".join(diffs[:10])


@pytest.mark.parametrize("label,method,overrides", TRAINER_RUNS, ids=[r[0] for r in TRAINER_RUNS])
def test_trainer_matches_golden(label, method, overrides):
    diffs = compare(trainer_fingerprint(method, overrides), strip_times(GOLDEN["runs"][label]), exact=_exact_here())
    assert not diffs, f"{label}: " + "\n".join(diffs[:10])


def test_compare_catches_a_changed_number_and_a_missing_key():
    golden = {"a": [1.0, 2.0], "b": {"c": "x"}}
    assert compare({"a": [1.0, 2.0 + 1e-3], "b": {"c": "x"}}, golden, exact=True)
    assert not compare({"a": [1.0, 2.0 + 1e-3], "b": {"c": "x"}}, golden, exact=False)
    assert compare({"a": [1.0, 2.0]}, golden, exact=False)
    assert not compare({"a": [1.0, 2.0], "b": {"c": "x"}, "new": 3}, golden, exact=True)  # an added key is fine
    assert compare({"a": [1.0], "b": {"c": "x"}}, golden, exact=False)
