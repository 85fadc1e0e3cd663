"""The claims of notebook 10 (HGC, arXiv 2511.11031) and their verdicts, paired image by image.

Every cache samples the same evaluation maps from the same initial noise, so image i under a cache and image i
uncached are a pair. Fidelity differences are in **% of the uncached mean mIoU** (the paper's "within 1.5 %"
is a relative loss): d_i = 100 · (mIoU_a,i − mIoU_b,i) / mean_i mIoU_none,i. MACs are counted, not sampled:
a setting's MAC cut is a number, not an estimate.

- `hgc_mac_cut_within_fidelity` (a): the headline HGC setting (fixed by the notebook's `hgc_*` parameters
  before the run) cuts MACs by at least the paper's 63.2 % **and** its fidelity loss stays within 1.5 %:
  refuted when the cut falls short (a counted fact); otherwise the fidelity part decides, with d_i =
  hgc − none and `decide_threshold(d, −1.5)`: holds when the 95 % CI lies above −1.5 %, refuted when below.
- `hgc_dominates_single_grained` (b): for each single-grained setting s (block, prompt, DeepCache, PAB), the HGC
  setting h with MACs ≤ MACs(s) and the best mean mIoU is compared with s, d_i = h − s, holding when its CI lies
  above −1.5 % (no worse than the tolerance, at no more compute: Pareto dominance with the paper's tolerance);
  a setting cheaper than every HGC setting is not covered (that comparison is inconclusive). The claim holds
  when every comparison holds, is refuted when any is refuted, and is inconclusive otherwise.
- `controlnet_reuse_late_cheaper` (c): reusing the ControlNet residuals over the late half of the steps costs
  less fidelity than over the early half (same number of reused steps), d_i = late − early, SESOI 1.5 %.

Every claim is inconclusive when the uncached model does not generate what it is asked for: its per-image
mIoU not above the all-background prediction's by 2 SE (`generates`) — caching a model that draws nothing
cannot lose fidelity.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from workbench.evaluation.fidelity import miou
from workbench.evaluation.verdicts import Verdict, decide, decide_threshold, learned, no_evidence
from workbench.experiments.hgc import FIDELITY_TOLERANCE_PCT, PAPER_MAC_CUT
from workbench.tasks.shapes.segmentation import SEG_KINDS

SINGLE_GRAINED = ("block", "prompt", "deepcache", "pab")


def background_floor(maps: torch.Tensor) -> torch.Tensor:
    """[B] per-image mIoU of predicting background everywhere: the score of a generator that draws nothing."""
    return miou(torch.zeros_like(maps), maps, len(SEG_KINDS) + 1)


def generates(sweep, maps: torch.Tensor) -> tuple[bool, float, float]:
    """(learned, uncached mean mIoU, the background floor's mean): the uncached model beats the floor by 2 SE."""
    m = _per_image(sweep, sweep.settings.iloc[0]["label"])
    floor = background_floor(maps).numpy()
    return learned((m - floor).tolist()), float(m.mean()), float(floor.mean())


def _per_image(sweep, label: str) -> np.ndarray:
    rows = sweep.images[sweep.images["label"] == label].sort_values("image")
    return rows["miou"].to_numpy(dtype=float)


def _rel(sweep, a: str, b: str) -> list[float]:
    base = _per_image(sweep, sweep.settings.iloc[0]["label"]).mean()
    return (100 * (_per_image(sweep, a) - _per_image(sweep, b)) / base).tolist()


def _row(sweep, label: str) -> pd.Series:
    return sweep.settings.set_index("label").loc[label]


def _r(x, digits: int = 3):
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def claim_a(sweep, headline_label: str, ok: bool) -> dict:
    row = _row(sweep, headline_label)
    d = _rel(sweep, headline_label, sweep.settings.iloc[0]["label"])
    fid = decide_threshold(d, -FIDELITY_TOLERANCE_PCT, baseline_learned=ok)
    if row["mac_cut_pct"] < PAPER_MAC_CUT:
        v = Verdict("refuted", fid.effect, fid.se, fid.ci, fid.n, fid.mde, fid.sesoi,
                    f"the MAC cut is {row['mac_cut_pct']:.1f} %, below the paper's {PAPER_MAC_CUT} % (counted)")
        if not ok:
            v = no_evidence(FIDELITY_TOLERANCE_PCT, "the uncached model does not generate (mIoU not above the floor)", len(d))
    else:
        v = fid
    return {"id": "hgc_mac_cut_within_fidelity",
            "claim": f"HGC at its headline setting cuts MACs by >= {PAPER_MAC_CUT} % with a fidelity loss within "
                     f"{FIDELITY_TOLERANCE_PCT} % of the uncached mIoU (paired by image)",
            "paper": "holds (COCO-Stuff: 18.22T -> 6.70T MACs, -63 %, fidelity within 1.5 %)",
            "measured": {"mac_cut_pct": _r(row["mac_cut_pct"]), "fidelity_loss_pct": _r(row["fidelity_loss_pct"]),
                         "speedup": _r(row["speedup"]), "images": len(d)},
            "verdict": v}


def dominance(sweep, ok: bool) -> list[dict]:
    """One comparison per single-grained setting: the best HGC setting at no more MACs against it."""
    t = sweep.settings
    hgc = t[t["cache"] == "hgc"]
    out = []
    for _, s in t[t["cache"].isin(SINGLE_GRAINED)].iterrows():
        cheaper = hgc[hgc["macs_per_image"] <= s["macs_per_image"]]
        if not len(cheaper):
            v = no_evidence(FIDELITY_TOLERANCE_PCT, "no HGC setting is this cheap: not covered")
            out.append({"single": s["label"], "hgc": None, "verdict": v})
            continue
        h = cheaper.sort_values("miou", ascending=False).iloc[0]
        v = decide_threshold(_rel(sweep, h["label"], s["label"]), -FIDELITY_TOLERANCE_PCT, baseline_learned=ok)
        out.append({"single": s["label"], "hgc": h["label"], "verdict": v})
    return out


def claim_b(sweep, ok: bool) -> dict:
    comps = dominance(sweep, ok)
    verdicts = [c["verdict"] for c in comps]
    if not comps:
        v = no_evidence(FIDELITY_TOLERANCE_PCT, "no single-grained setting was swept")
    else:
        if all(x.holds for x in verdicts):
            kind, key = "holds", min(verdicts, key=lambda x: x.ci[0])
        elif any(x.verdict == "refuted" for x in verdicts):
            kind, key = "refuted", min((x for x in verdicts if x.verdict == "refuted"), key=lambda x: x.effect)
        else:
            kind, key = "inconclusive", next(x for x in verdicts if x.verdict == "inconclusive")
        reason = f"{kind}; " + "; ".join(f"{c['hgc']} vs {c['single']}: {c['verdict'].verdict}" for c in comps)
        v = Verdict(kind, key.effect, key.se, key.ci, key.n, key.mde, key.sesoi, reason)
    return {"id": "hgc_dominates_single_grained",
            "claim": "for every single-grained setting (block, prompt, DeepCache, PAB) some HGC setting with no more "
                     f"MACs has a fidelity no worse by {FIDELITY_TOLERANCE_PCT} % (paired by image)",
            "paper": "holds (HGC improves on each grain alone)",
            "measured": {"comparisons": [{"single": c["single"], "hgc": c["hgc"], "verdict": c["verdict"].verdict,
                                          "effect_pct": _r(c["verdict"].effect)} for c in comps]},
            "verdict": v}


def claim_c(sweep, early: str, late: str, ok: bool) -> dict:
    d = _rel(sweep, late, early)
    v = decide(d, FIDELITY_TOLERANCE_PCT, baseline_learned=ok) if len(d) >= 2 else no_evidence(FIDELITY_TOLERANCE_PCT, "too few images")
    return {"id": "controlnet_reuse_late_cheaper",
            "claim": "reusing the ControlNet residuals over the late half of the steps costs less fidelity than over "
                     f"the early half (same number of reused steps; paired by image, SESOI {FIDELITY_TOLERANCE_PCT} %)",
            "paper": "holds (control matters most early: HGC recomputes ControlNet on refresh steps)",
            "measured": {"early_loss_pct": _r(_row(sweep, early)["fidelity_loss_pct"]),
                         "late_loss_pct": _r(_row(sweep, late)["fidelity_loss_pct"]), "images": len(d)},
            "verdict": v}


def claims(sweep, maps: torch.Tensor, headline_label: str, early: str, late: str) -> list[dict]:
    """The three claims as `Results.claim` keyword dicts."""
    ok, m, floor = generates(sweep, maps)
    out = [claim_a(sweep, headline_label, ok), claim_b(sweep, ok), claim_c(sweep, early, late, ok)]
    for c in out:
        c["measured"].update({"uncached_miou": _r(m), "background_floor_miou": _r(floor)})
    return out


def record_claims(results, sweep, maps, headline_label: str, early: str, late: str) -> None:
    """Record every claim in `results` (a `workbench.notebook.Results`)."""
    for c in claims(sweep, maps, headline_label, early, late):
        results.claim(**c)
