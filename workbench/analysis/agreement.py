"""Do the papers' token signals agree? Classes, top-q % sets, their overlap and where they fall (notebook 11).

Input is the atlas's long frame: one row per (response token, signal) with columns
`seq_id, pos, token, token_class, signal, value` (`workbench.rl.atlas`, `experiments.token_atlas`).

    top set      S_q(s) = {tokens with value ≥ the (1 − q) quantile of s}   (ties at the threshold are in; a
                 0/1 signal's top set at any q below its share of ones is its set of ones)
    Jaccard      J_q(s, s') = |S_q(s) ∩ S_q(s')| / |S_q(s) ∪ S_q(s')|
    class share  share of S_q(s) that falls in each token class

Token classes (`token_classes`): `digit` (operands and computed values), `operator`, `=`, `answer digit`
(after `answer:`), `visual fact` (the value of a stated fact such as `red shapes: 2`), `format` (words, `:`,
newlines, end tokens) and `other`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from workbench.analysis.delta_logp import arithmetic_token_kinds
from workbench.tasks.shapes.facts import fact_value_mask

TOKEN_CLASSES = ("digit", "operator", "=", "answer digit", "visual fact", "format", "other")
_KIND_TO_CLASS = {"operand": "digit", "result": "digit", "operator": "operator", "equals": "=", "answer": "answer digit",
                  "answer text": "format", "newline": "format", "end": "format", "other": "other"}
DEFAULT_QS = (0.05, 0.1, 0.2, 0.3, 0.5)


def token_classes(tokens: Sequence[str]) -> list[str]:
    """The class (`TOKEN_CLASSES`) of each token of one response, from `arithmetic_token_kinds` and
    `shapes.facts.fact_value_mask` (a stated fact's value is a `visual fact` whatever its digits)."""
    kinds = arithmetic_token_kinds(tokens)
    facts = fact_value_mask(list(tokens))
    return ["visual fact" if f else _KIND_TO_CLASS[k] for k, f in zip(kinds, facts)]


def wide(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per token (index seq_id, pos), one column per signal (in order of first appearance)."""
    order = list(dict.fromkeys(frame["signal"]))
    return frame.pivot_table(index=["seq_id", "pos"], columns="signal", values="value", aggfunc="first")[order]


def top_sets(table: pd.DataFrame, q: float) -> pd.DataFrame:
    """[tokens × signals] bool: token in S_q(signal) (module docstring). `table` as `wide`."""
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be a fraction in (0, 1], got {q}")
    thresholds = table.quantile(1.0 - q, interpolation="higher")
    return table.ge(thresholds, axis=1)


def jaccard(table: pd.DataFrame, q: float) -> pd.DataFrame:
    """[signals × signals] J_q of their top-q sets (1 on the diagonal; NaN where both sets are empty)."""
    s = top_sets(table, q).to_numpy(dtype=np.float64)
    inter = s.T @ s
    sizes = s.sum(0)
    union = sizes[:, None] + sizes[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), np.nan)
    return pd.DataFrame(out, index=table.columns, columns=table.columns)


def jaccard_curves(table: pd.DataFrame, qs: Sequence[float] = DEFAULT_QS) -> pd.DataFrame:
    """Long form of `jaccard` over `qs`: columns q, a, b, jaccard (each unordered pair once, a before b)."""
    names = list(table.columns)
    rows = []
    for q in qs:
        j = jaccard(table, q)
        rows += [{"q": float(q), "a": a, "b": b, "jaccard": float(j.loc[a, b])}
                 for i, a in enumerate(names) for b in names[i + 1:]]
    return pd.DataFrame(rows)


def class_shares(table: pd.DataFrame, classes: pd.Series, q: float) -> pd.DataFrame:
    """[signals × classes]: the share of each signal's top-q set in each token class (rows sum to 1), with the
    share of all tokens as the row `all tokens`. `classes`: the token class, indexed like `table`."""
    sets = top_sets(table, q)
    cls = classes.reindex(table.index)
    out = {name: cls[sets[name]].value_counts(normalize=True) for name in table.columns}
    out["all tokens"] = cls.value_counts(normalize=True)
    present = [c for c in TOKEN_CLASSES if c in set(cls)] + sorted(set(cls) - set(TOKEN_CLASSES))
    return pd.DataFrame(out).T.reindex(columns=present).fillna(0.0)


def set_sizes(table: pd.DataFrame, q: float) -> pd.Series:
    """|S_q(s)| / n per signal: q for a continuous signal, more where ties at the threshold are included."""
    return top_sets(table, q).mean()
