"""Printed sentences say what their numbers mean (issue 25 item 9): no "−3.1 % less", no "nan %"."""

import dataclasses
import math

from workbench.experiments import phsa, tor


def _blank(cls, **values):
    return cls(**{**{f.name: None for f in dataclasses.fields(cls)}, **values})


def test_phsa_reads_the_sign_as_less_or_more():
    h = _blank(phsa.Headline, reduction_pct=-3.1, sparsity=0.97, length=1024, top_k=4, baseline=0.5, better=0.52,
               metric="m", min_sparsity=0.9, by_metric={"m": -3.1})
    assert "PHSA loses 3.1% more than InfLLM v2" in h.report() and "-3.1% less" not in h.report()
    assert _blank(phsa.Headline, reduction_pct=2.0).comparison() == "PHSA loses 2.0% less than InfLLM v2"


def test_tor_share_sentence_has_no_nan():
    cls = next(c for c in vars(tor).values() if isinstance(c, type) and hasattr(c, "share_sentence"))
    none = _blank(cls, fact_share=math.nan, other_share=0.1)
    assert "nan" not in none.share_sentence() and "no fact value" in none.share_sentence()
    some = _blank(cls, fact_share=0.62, other_share=0.08)
    assert some.share_sentence() == "perception tokens: 62% of stated fact values vs 8% of the other tokens"
