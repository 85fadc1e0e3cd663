"""`haystack`: long punctuated documents with passkeys and RULER-style needles (for PHSA, arXiv 2601.02819).

A document is filler prose - seeded sentences with commas, semicolons, questions and full stops, so
punctuation marks real clause boundaries - with needle sentences inserted at sentence boundaries
at chosen depths. A question follows the document and the target is a short string::

    kind        needle(s)                                              target
    passkey     "The pass key is 68301. Remember it. 68301 is the pass key."    68301
    single      "One of the special magic numbers for amber-falcon is: 4417203."   4417203
    multikey    several such needles with different keys; one is asked            its number
    multivalue  several numbers for the same key; all are asked (document order)  "4417203, 918274"

Lengths are in characters (= tokens for the workbench's character-level tokenizer); the prompt
(document + question) has exactly `length` characters. Scoring is exact match of the prediction up
to its first sentence end, and never raises. Everything is a pure function of (kind, length, seed).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from dataclasses import dataclass

from workbench.tasks.base import RewardSpec, Task

KINDS = ("passkey", "single", "multikey", "multivalue")

_DET = ("the", "a", "every", "one", "that", "each")
_ADJ = ("quiet", "old", "narrow", "bright", "heavy", "small", "distant", "green", "patient", "tired", "busy", "cold")
_NOUN = ("river", "farmer", "window", "mill", "teacher", "road", "garden", "engine", "letter", "market", "bridge",
         "lantern", "village", "sailor", "forest", "clock")
_VERB = ("carries", "watches", "follows", "repairs", "crosses", "remembers", "paints", "opens", "passes", "counts")
_ADV = ("slowly", "again", "at dawn", "every morning", "without a word", "by the water", "after the rain")
_KEY_A = ("amber", "silver", "crimson", "quiet", "northern", "hollow", "golden", "frozen", "velvet", "scarlet")
_KEY_B = ("falcon", "harbor", "meadow", "lantern", "comet", "orchard", "glacier", "compass", "thistle", "beacon")


@dataclass(frozen=True)
class HaystackExample:
    """One long-context problem; `prompt` = document + question, `answer` the exact target."""

    kind: str
    length: int
    seed: int
    document: str
    question: str
    answer: str
    needles: tuple[str, ...]
    depths: tuple[float, ...]

    @property
    def prompt(self) -> str:
        return self.document + self.question


def _noun_phrase(rng: random.Random) -> str:
    return f"{rng.choice(_DET)} {rng.choice(_ADJ)} {rng.choice(_NOUN)}"


def filler_sentence(rng: random.Random) -> str:
    """One seeded sentence with clause punctuation (, ; ? ! .), capitalised, ending with a space."""
    clause = f"{_noun_phrase(rng)} {rng.choice(_VERB)} {_noun_phrase(rng)}"
    form = rng.random()
    if form < 0.35:
        s = f"{clause} {rng.choice(_ADV)}."
    elif form < 0.6:
        s = f"{clause}, and {_noun_phrase(rng)} {rng.choice(_VERB)} it {rng.choice(_ADV)}."
    elif form < 0.8:
        s = f"{clause}; {_noun_phrase(rng)} waits {rng.choice(_ADV)}."
    elif form < 0.93:
        s = f"does {_noun_phrase(rng)} know why {clause}?"
    else:
        s = f"{clause}!"
    return s[0].upper() + s[1:] + " "


def _key(rng: random.Random) -> str:
    return f"{rng.choice(_KEY_A)}-{rng.choice(_KEY_B)}"


def _needles(kind: str, rng: random.Random, n_needles: int) -> tuple[list[str], str, str]:
    """(needle sentences, question, answer) for one example."""
    if kind == "passkey":
        key = str(rng.randint(10000, 99999))
        return ([f"The pass key is {key}. Remember it. {key} is the pass key. "],
                "\nWhat is the pass key? The pass key is ", key)
    magic = "One of the special magic numbers for {} is: {}. "
    if kind == "single":
        key, value = _key(rng), str(rng.randint(1000000, 9999999))
        return [magic.format(key, value)], f"\nWhat is the special magic number for {key}? It is ", value
    if kind == "multikey":
        keys = []
        while len(keys) < n_needles:
            k = _key(rng)
            if k not in keys:
                keys.append(k)
        values = [str(rng.randint(1000000, 9999999)) for _ in keys]
        asked = rng.randrange(len(keys))
        return ([magic.format(k, v) for k, v in zip(keys, values)],
                f"\nWhat is the special magic number for {keys[asked]}? It is ", values[asked])
    if kind == "multivalue":
        key = _key(rng)
        values = []
        while len(values) < n_needles:
            v = str(rng.randint(1000000, 9999999))
            if v not in values:
                values.append(v)
        return ([magic.format(key, v) for v in values],
                f"\nWhat are all the special magic numbers for {key}? They are ", ", ".join(values))
    raise ValueError(f"kind {kind!r} is unknown; known: {', '.join(KINDS)}")


def make_example(kind: str, length: int, seed: int, n_needles: int = 4,
                 depths: tuple[float, ...] | None = None) -> HaystackExample:
    """One example whose prompt has exactly `length` characters.

    Args:
        kind: one of `KINDS`. length: prompt characters. seed: any int.
        n_needles: needles for multikey / multivalue (passkey and single have one).
        depths: where each needle goes, as fractions of the document in [0, 1]; seeded uniform in
            [0.05, 0.95] when None. For multivalue the values appear in depth order.
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is unknown; known: {', '.join(KINDS)}")
    if n_needles < 1:
        raise ValueError(f"n_needles must be >= 1, got {n_needles}")
    rng = random.Random(f"haystack/{kind}/{length}/{seed}/{n_needles}")
    needles, question, answer = _needles(kind, rng, n_needles)
    if depths is None:
        depths = tuple(sorted(rng.uniform(0.05, 0.95) for _ in needles))
    if len(depths) != len(needles) or any(not 0.0 <= d <= 1.0 for d in depths):
        raise ValueError(f"depths must be {len(needles)} fractions in [0, 1], got {depths}")
    budget = length - len(question) - sum(len(n) for n in needles)
    if budget < 0:
        raise ValueError(f"length {length} is too short for a {kind} example (needs > {length - budget})")
    sentences, used = [], 0
    while used < budget:
        s = filler_sentence(rng)
        sentences.append(s)
        used += len(s)
    filler = "".join(sentences)[:budget]
    # insert needles at the sentence boundary nearest each depth (latest depth first keeps offsets valid)
    bounds = [0] + [m.end() for m in re.finditer(r"[.?!] ", filler)]
    pieces, last = [], len(filler)
    order = sorted(range(len(needles)), key=lambda i: depths[i], reverse=True)
    cuts = {}
    for i in order:
        target = int(depths[i] * len(filler))
        cuts[i] = min((b for b in bounds if b <= last), key=lambda b: abs(b - target))
        last = cuts[i]
    text, prev = "", 0
    for i in sorted(cuts, key=lambda j: (cuts[j], depths[j])):
        text += filler[prev:cuts[i]] + needles[i]
        prev = cuts[i]
    document = text + filler[prev:]
    if kind == "multivalue":  # the target lists the values in the order the document shows them
        order_in_doc = sorted(range(len(needles)), key=lambda j: document.index(needles[j]))
        answer = ", ".join(answer.split(", ")[j] for j in order_in_doc)
    return HaystackExample(kind=kind, length=length, seed=seed, document=document, question=question,
                           answer=answer, needles=tuple(needles), depths=tuple(depths))


def generate(n: int, kind: str = "passkey", length: int = 4096, seed: int = 0,
             n_needles: int = 4) -> list[HaystackExample]:
    """`n` examples with seeds seed, seed+1, ...: the same arguments give the same list."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [make_example(kind, length, seed + i, n_needles) for i in range(n)]


def sft_pair(ex: HaystackExample) -> tuple[str, str]:
    """(prompt, completion) for supervised training: the completion is the answer and a full stop."""
    return ex.prompt, ex.answer + "."


_END = re.compile(r"\.(?=\s|$)|\n|<\|endoftext\|>")


def normalize_prediction(text: object) -> str:
    """The prediction up to its first sentence end (". ", final ".", newline or EOS), stripped; "" if not text."""
    if not isinstance(text, str):
        return ""
    m = _END.search(text)
    return (text[: m.start()] if m else text).strip()


def exact_match(prediction: object, answer: str) -> float:
    """1.0 if the normalised prediction equals the answer (multivalue: same numbers, same order), else 0.0."""
    pred = normalize_prediction(prediction)
    if not pred:
        return 0.0
    if "," in answer:
        return float([p.strip() for p in pred.split(",")] == [a.strip() for a in answer.split(",")])
    return float(pred == answer.strip())


def score(predictions: list[object], examples: list[HaystackExample]) -> float:
    """Mean exact match (0.0 for an empty list)."""
    if len(predictions) != len(examples):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
    if not examples:
        return 0.0
    return sum(exact_match(p, e.answer) for p, e in zip(predictions, examples)) / len(examples)


def niah_task(kind: str = "passkey", length: int = 4096) -> Task:
    """Needle-in-a-haystack as a `Task`: prompt = document + question (no chat format), correct = exact match
    (`exact_match`); training problems from seeds < 10 000, held-out from seeds 10 000+ (`generate`)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is unknown; known: {', '.join(KINDS)}")
    match = lambda c, e: exact_match(c, e.answer)  # noqa: E731
    return Task(name=f"niah({kind}, {length} chars)",
                sample=lambda n, rng: [make_example(kind, length, rng.randrange(10_000)) for _ in range(n)],
                prompt=lambda e: e.prompt, rewards=[RewardSpec("exact_match", match)],
                eval_problems=lambda n: generate(n, kind, length, seed=10_000), correct=lambda c, e: match(c, e) >= 1.0)


def answer_token_budget(tokenizer, examples: list[HaystackExample]) -> int:
    """Tokens to decode for these examples' answers: the longest answer's token count + 1 (the full stop)."""
    if not examples:
        raise ValueError("answer_token_budget got no examples")
    return max(len(tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in examples) + 1


# ---------------------------------------------------------------------------- frozen evaluation split
EVAL_PATH = os.path.join("data", "haystack", "eval.jsonl")
EVAL_LENGTHS = (1024, 2048, 4096, 8192, 16384, 32768)
EVAL_SEEDS = range(10_000, 10_020)  # disjoint from training seeds (which start at 0)


def _digest(ex: HaystackExample) -> str:
    return hashlib.sha256(ex.prompt.encode()).hexdigest()[:16]


def write_eval_set(root: str, kinds: tuple[str, ...] = KINDS, lengths: tuple[int, ...] = EVAL_LENGTHS,
                   seeds=EVAL_SEEDS) -> str:
    """(Re)write `data/haystack/eval.jsonl`: one spec line per example (kind, length, seed, answer and a
    hash of the prompt), not the text, so the committed file stays small; `load_eval_set` regenerates."""
    path = os.path.join(root, EVAL_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for kind in kinds:
            for length in lengths:
                for seed in seeds:
                    ex = make_example(kind, length, seed)
                    f.write(json.dumps({"kind": kind, "length": length, "seed": seed, "answer": ex.answer,
                                        "sha256_16": _digest(ex)}) + "\n")
    return path


def load_eval_set(kind: str | None = None, length: int | None = None, n: int | None = None,
                  root: str | None = None) -> list[HaystackExample]:
    """The frozen examples (filtered by kind / length, first `n`), regenerated and checked against their hashes."""
    from workbench.utils import repo_root

    path = os.path.join(root or repo_root(), EVAL_PATH)
    if not os.path.exists(path):
        raise FileNotFoundError(f"frozen eval set {path} is missing; run workbench.tasks.haystack.write_eval_set")
    out = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            spec = json.loads(line)
            if (kind is not None and spec["kind"] != kind) or (length is not None and spec["length"] != length):
                continue
            ex = make_example(spec["kind"], spec["length"], spec["seed"])
            if _digest(ex) != spec["sha256_16"] or ex.answer != spec["answer"]:
                raise ValueError(f"haystack generator no longer reproduces {spec}; the frozen split is stale")
            out.append(ex)
            if n is not None and len(out) >= n:
                break
    return out
