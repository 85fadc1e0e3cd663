"""Object-hallucination metrics: POPE, CHAIR and Causal-HalBench's counterfactual metrics (arXiv 2511.10268).

Every metric reads plain records, so any model's answers can be scored; the answers are the model's raw
text, parsed by `pope_answer` (LLaVA's POPE rule).

**POPE** (yes/no existence questions, `yes` = positive):
    accuracy = (TP + TN) / N,  precision = TP / (TP + FP),  recall = TP / (TP + FN),
    F1 = 2PR / (P + R),  yes-ratio = (TP + FP) / N          (0 where a denominator is 0)

**CHAIR** (captions against the image's objects; every mention counts, repeats included):
    CHAIR_i = hallucinated mentions / all object mentions,  CHAIR_s = captions with ≥ 1 hallucination / captions

**Causal-HalBench** (`HalRecord`: `pair` = the counterfactual's id, `tag` ∈ origin | inpainted, `type` ∈
target | absent | inpaint; Acc(type, tag) = accuracy over those records):
    CAC = Acc(target, origin) − Acc(target, inpainted)    the target, gone from the counterfactual, still "seen"
    NAC = Acc(absent, inpainted) − Acc(absent, origin)    an object the target made the model see
    CHR = 1 − Acc(inpaint, inpainted)                     the inserted, out-of-context object denied
    CPR = pairs whose target and absent questions are right on both images / pairs
The authors' `metric.py` defines CAC, NAC, CHR and CPR on such records; which object an `absent` question
asks about is our reading (see `tasks/shapes/counterfactual.py`). The paper's ACE, DCS and AAC are not in
their code and are not implemented here. Per-pair values (`pair_table`) are the units of paired verdicts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import pandas as pd

TYPES = ("target", "absent", "inpaint")
TAGS = ("origin", "inpainted")

# Canonical kind -> the words a caption may use for it (singular; plurals are derived).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disk", "disc", "ball", "dot"),
    "square": ("square", "box", "block", "rectangle"),
    "triangle": ("triangle", "pyramid"),
    "star": ("star", "pentagram"),
    "moon": ("moon", "crescent"),
    "diamond": ("diamond", "rhombus", "lozenge"),
    "cross": ("cross", "plus"),
}
_WORD_RE = re.compile(r"[a-z]+")


def pope_answer(text: str) -> str:
    """`yes` or `no` from a free-form answer, LLaVA's POPE rule: keep the first sentence (up to the first
    `.`), drop commas, split into words; `no` if a word is exactly `No`, `no` or `not`, else `yes` — so an
    empty or off-topic answer counts as `yes`, and `Not` (capitalised) or `nope` do not say no.
    We split on any whitespace (LLaVA splits on spaces), so a `no` followed by a newline still says no."""
    if not isinstance(text, str):
        raise ValueError(f"an answer must be text, got {type(text).__name__}")
    first = text.split(".")[0] if "." in text else text
    words = first.replace(",", "").split()
    return "no" if any(w in ("No", "no", "not") for w in words) else "yes"


def pope_metrics(labels: Sequence[str], answers: Sequence[str]) -> dict[str, float]:
    """POPE's numbers from gold `labels` (yes | no) and raw model `answers` (parsed by `pope_answer`)."""
    if len(labels) != len(answers) or not labels:
        raise ValueError(f"POPE needs as many answers as labels (at least one), got {len(labels)} labels and "
                         f"{len(answers)} answers")
    bad = sorted({x for x in labels if x not in ("yes", "no")})
    if bad:
        raise ValueError(f"POPE labels must be 'yes' or 'no', got {bad}")
    pred = [pope_answer(a) for a in answers]
    tp = sum(p == "yes" and y == "yes" for p, y in zip(pred, labels))
    fp = sum(p == "yes" and y == "no" for p, y in zip(pred, labels))
    fn = sum(p == "no" and y == "yes" for p, y in zip(pred, labels))
    n = len(labels)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (n - fp - fn) / n, "precision": precision, "recall": recall, "f1": f1,
            "yes_ratio": (tp + fp) / n, "n": n}


def _singular_index(synonyms: dict[str, Sequence[str]]) -> dict[str, str]:
    index = {}
    for kind, words in synonyms.items():
        for w in words:
            for form in (w, w + "s", w + "es"):
                index[form] = kind
    return index


def mentioned_objects(caption: str, synonyms: dict[str, Sequence[str]] | None = None) -> list[str]:
    """The canonical kinds a caption mentions, in order, once per mention (`a star and two stars` ->
    [star, star]); words are matched lower-cased against `synonyms` (default `SYNONYMS`) and their plurals."""
    index = _singular_index(synonyms or SYNONYMS)
    return [index[w] for w in _WORD_RE.findall(caption.lower()) if w in index]


@dataclass(frozen=True)
class ChairResult:
    """CHAIR_s, CHAIR_i, `recall` (fraction of the images' kinds that their captions mention), the counts
    behind them and the hallucinated kinds of each caption."""

    chair_s: float
    chair_i: float
    recall: float
    captions: int
    mentions: int
    hallucinated: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class CaptionCheck:
    """One caption against its image: the kinds it `mentions` (once per mention), those of them that are
    `hallucinated`, and how many of the image's `truth` kinds it names (`covered`)."""

    mentions: tuple[str, ...]
    hallucinated: tuple[str, ...]
    covered: int
    truth: int

    @property
    def recall(self) -> float:
        """covered / truth (0 for an image without objects)."""
        return self.covered / self.truth if self.truth else 0.0


def check_caption(caption: str, objects: Iterable[str], synonyms: dict[str, Sequence[str]] | None = None) -> CaptionCheck:
    """The mentions of `caption` (`mentioned_objects`) checked against `objects`, the kinds truly in its image."""
    truth = set(objects)
    said = mentioned_objects(caption, synonyms)
    return CaptionCheck(tuple(said), tuple(k for k in said if k not in truth), len(truth & set(said)), len(truth))


def chair(captions: Sequence[str], objects: Sequence[Iterable[str]],
          synonyms: dict[str, Sequence[str]] | None = None) -> ChairResult:
    """CHAIR of `captions` against `objects[i]`, the kinds truly in image i (see the module docstring), pooled
    over the per-caption `check_caption`s. CHAIR_i is 0 when no caption mentions any object (then `mentions` = 0
    says so)."""
    if len(captions) != len(objects) or not captions:
        raise ValueError(f"CHAIR needs one object set per caption (at least one), got {len(captions)} captions "
                         f"and {len(objects)} object sets")
    checks = [check_caption(cap, truth, synonyms) for cap, truth in zip(captions, objects)]
    mentions = sum(len(c.mentions) for c in checks)
    truth_total = sum(c.truth for c in checks)
    return ChairResult(chair_s=sum(bool(c.hallucinated) for c in checks) / len(checks),
                       chair_i=sum(len(c.hallucinated) for c in checks) / mentions if mentions else 0.0,
                       recall=sum(c.covered for c in checks) / truth_total if truth_total else 0.0,
                       captions=len(checks), mentions=mentions, hallucinated=tuple(c.hallucinated for c in checks))


@dataclass(frozen=True)
class HalRecord:
    """One answered question of the counterfactual benchmark: the `image_name` asked about (`A` or `A_001`),
    the counterfactual `pair` it belongs to (`A_001`), `type` (target | absent | inpaint), `tag` (origin |
    inpainted), the gold `label` (yes | no) and the model's raw `answer`."""

    image_name: str
    pair: str
    type: str
    tag: str
    label: str
    answer: str

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"record type must be one of {', '.join(TYPES)}, got {self.type!r}")
        if self.tag not in TAGS:
            raise ValueError(f"record tag must be one of {', '.join(TAGS)}, got {self.tag!r}")
        if self.label not in ("yes", "no"):
            raise ValueError(f"record label must be 'yes' or 'no', got {self.label!r}")

    @property
    def correct(self) -> bool:
        """Whether the parsed answer equals the label."""
        return pope_answer(self.answer) == self.label


def pair_table(records: Sequence[HalRecord]) -> pd.DataFrame:
    """One row per counterfactual pair: correctness (0/1, NaN where the pair has no such question) of each
    (type, tag) cell and the pair's contributions `cac`, `nac`, `chr`, `cpr` (NaN where undefined)."""
    if not records:
        raise ValueError("the counterfactual metrics need at least one record")
    frame = pd.DataFrame({"pair": [r.pair for r in records], "cell": [f"{r.type}_{r.tag}" for r in records],
                          "correct": [float(r.correct) for r in records]})
    dup = frame.duplicated(["pair", "cell"])
    if dup.any():
        row = frame[dup].iloc[0]
        raise ValueError(f"pair {row['pair']!r} has two {row['cell']} records")
    wide = frame.pivot(index="pair", columns="cell", values="correct")
    for t in TYPES:
        for g in TAGS:
            wide[f"{t}_{g}"] = wide.get(f"{t}_{g}", float("nan"))
    wide["cac"] = wide["target_origin"] - wide["target_inpainted"]
    wide["nac"] = wide["absent_inpainted"] - wide["absent_origin"]
    wide["chr"] = 1.0 - wide["inpaint_inpainted"]
    cells = wide[["target_origin", "target_inpainted", "absent_origin", "absent_inpainted"]]
    both_target = cells[["target_origin", "target_inpainted"]].notna().all(axis=1)
    wide["cpr"] = (cells.fillna(1.0).min(axis=1)).where(both_target)
    return wide.sort_index()


def halbench_metrics(records: Sequence[HalRecord]) -> dict[str, float]:
    """CAC, NAC, CHR, CPR (means over the pairs that define each; NaN-free: a metric with no pair is omitted)
    and the number of pairs."""
    table = pair_table(records)
    out = {"pairs": int(len(table))}
    for name in ("cac", "nac", "chr", "cpr"):
        col = table[name].dropna()
        if len(col):
            out[name] = float(col.mean())
    return out
