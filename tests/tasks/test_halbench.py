"""The co-occurrence world, the counterfactual builder and the frozen Causal-HalBench split."""

import json
import os
import shutil

import numpy as np
import pytest

from workbench.tasks import halbench, shapes
from workbench.tasks.shapes import cooccurrence as co
from workbench.tasks.shapes.counterfactual import best_fit, build_counterfactuals, mask_iou


def test_counts_match_a_naive_loop():
    cfg = co.halbench_config(0.5)
    scenes = [e.scene for e in shapes.generate(60, 3, cfg, ("object",))]
    counts = co.cooccurrence_counts(scenes, cfg.kinds)
    for a, ka in enumerate(cfg.kinds):
        for b, kb in enumerate(cfg.kinds):
            naive = sum(1 for s in scenes if ka in {x.kind for x in s.shapes} and kb in {x.kind for x in s.shapes})
            assert counts[a, b] == naive
    assert (counts == counts.T).all()


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_rho_sets_the_pairs_conditional_rate(rho):
    cfg = co.halbench_config(rho)
    counts = co.cooccurrence_counts([e.scene for e in shapes.generate(400, 0, cfg, ("object",))], cfg.kinds)
    natural = co.cooccurrence_counts([e.scene for e in shapes.generate(400, 0, co.halbench_config(rho, cooccurrence=()),
                                                                         ("object",))], cfg.kinds)
    for trigger, partner in co.HALBENCH_PAIRS:
        p = co.conditional(counts, cfg.kinds, trigger, partner)
        if rho == 0.0:
            assert p == 0.0
        else:  # the second pair may take the first pair's slot when no other object is free: measured, not exact
            assert 0.75 < p <= 0.95, (trigger, partner, p)
        assert 0.25 < co.conditional(natural, cfg.kinds, trigger, partner) < 0.6


def test_object_and_caption_families():
    cfg = co.halbench_config(0.5)
    exs = shapes.generate(40, 1, cfg, ("object", "caption"))
    for e in exs:
        present = co.kinds_present(e.scene)
        if e.question.family == "object":
            kind = e.prompt.split("Is there a ")[1].split(" in")[0]
            assert e.answer == ("yes" if kind in present else "no") and e.target == e.answer
        else:
            assert e.prompt == co.CAPTION_PROMPT
            assert {w for w in e.target.replace(",", "").replace(".", "").split() if w in cfg.kinds} == present
    answers = [e.answer for e in exs if e.question.family == "object"]
    assert 0.25 < answers.count("yes") / len(answers) < 0.75
    with pytest.raises(ValueError, match="rho must be a number in"):
        co.halbench_config(1.5)


def test_counterfactual_is_exact_and_follows_the_rule():
    cfg = co.halbench_config(0.9)
    exs = shapes.generate(80, 5, cfg, ("object",))
    counts = co.cooccurrence_counts([e.scene for e in exs], cfg.kinds)
    at = {k: i for i, k in enumerate(cfg.kinds)}
    made = 0
    for e in exs:
        cfs = build_counterfactuals(e.scene, e.id, counts, cfg.kinds, np.random.default_rng(0))
        present = co.kinds_present(e.scene)
        for j, c in enumerate(cfs, 1):
            made += 1
            assert c.id == f"{e.id}_{j:03d}"
            after = co.kinds_present(c.scene)
            assert c.target not in after and c.inserted in after and c.inserted not in present
            assert c.context in present and c.context != c.target
            absent_now = [k for k in cfg.kinds if k not in present]
            least = min(counts[at[c.context], at[k]] for k in absent_now)
            assert counts[at[c.context], at[c.inserted]] == least
            if c.absent is not None:
                assert c.absent not in present and c.absent != c.inserted
            # only pixels of the target's box change; the edit re-renders exactly
            edit = shapes.replace_object(e.scene, c.target_index, kind=c.inserted)
            assert np.array_equal(edit.image, shapes.render(c.scene).image)
            diff = (edit.image != e.image).any(-1)
            assert not (diff & ~edit.allowed).any()
    assert made > 60
    again = [build_counterfactuals(e.scene, e.id, counts, cfg.kinds, np.random.default_rng(0)) for e in exs[:10]]
    first = [build_counterfactuals(e.scene, e.id, counts, cfg.kinds, np.random.default_rng(0)) for e in exs[:10]]
    assert again == first


def test_best_fit_prefers_the_closest_mask():
    scene = shapes.Scene(112, 112, "black", (shapes.Shape("square", "red", 30, 10, 10),
                                              shapes.Shape("star", "blue", 30, 60, 60)))
    # a square's box is filled best by the diamond's complement? no: by the circle (IoU π/4 > triangle 1/2)
    assert best_fit(scene, 0, ["triangle", "circle"]) == "circle"
    a = np.zeros((4, 4), bool)
    assert mask_iou(a, a) == 0.0


def test_context_is_drawn_by_cooccurrence_weight():
    kinds = ("circle", "square", "star", "moon")
    counts = np.array([[9, 0, 0, 0], [0, 9, 0, 9], [0, 0, 9, 0], [0, 9, 0, 9]])
    scene = shapes.Scene(112, 112, "black", (shapes.Shape("moon", "red", 24, 5, 5),
                                              shapes.Shape("square", "blue", 24, 60, 5),
                                              shapes.Shape("star", "green", 24, 5, 60)))
    cfs = build_counterfactuals(scene, "x", counts, kinds, np.random.default_rng(1))
    moon = next(c for c in cfs if c.target == "moon")
    assert moon.context == "square"  # weight 9 vs 0 for star
    assert moon.inserted == "circle"
    with pytest.raises(ValueError, match="must be \\[4, 4\\]"):
        build_counterfactuals(scene, "x", counts[:3, :3], kinds, np.random.default_rng(1))


def test_frozen_split_matches_the_generator_and_loads():
    bench = halbench.load_halbench()
    rebuilt = halbench.build_halbench(**{**bench.spec, "n": 12, "unbiased_n": 5})
    # the first images depend on the counts of all n, so compare the scenes (counts differ with n)
    assert [im.scene for im in bench.images[:12]] == [im.scene for im in rebuilt.images]
    full = halbench.build_halbench(**bench.spec)
    assert [im.to_dict() for im in full.images] == [im.to_dict() for im in bench.images]
    assert [e.to_dict() for e in full.unbiased] == [e.to_dict() for e in bench.unbiased]
    qs = bench.questions()
    assert {q.type for q in qs} == {"target", "absent", "inpaint"}
    assert all(q.pair.startswith(q.image_name) for q in qs)
    for split in halbench.POPE_SPLITS:
        pope = bench.pope(split)
        yes = sum(q.label == "yes" for q in pope)
        assert 0.5 <= yes / len(pope) < 0.8


def test_adversarial_negatives_are_the_most_cooccurring():
    bench = halbench.load_halbench()
    counts, kinds = bench.counts, bench.kinds
    at = {k: i for i, k in enumerate(kinds)}
    for im in bench.images[:30]:
        present = co.kinds_present(im.scene)
        absent = [k for k in kinds if k not in present]
        score = {u: sum(counts[at[s], at[u]] for s in present) for u in absent}
        adv = im.pope_negatives["adversarial"]
        assert all(score[a] >= score[u] for a in adv for u in absent if u not in adv)


def test_loader_refuses_missing_and_corrupted_files(tmp_path):
    root = tmp_path / "repo"
    src = os.path.join(os.path.dirname(__file__), "..", "..", halbench.BENCH_DIR)
    shutil.copytree(src, root / halbench.BENCH_DIR)
    assert len(halbench.load_halbench(str(root)).images) == halbench.BENCH_SPEC["n"]
    path = root / halbench.BENCH_DIR / "bench.jsonl"
    text = path.read_text()
    path.write_text(text.replace('"moon"', '"star"', 1))
    with pytest.raises(ValueError, match="does not match its sha256"):
        halbench.load_halbench(str(root))
    path.write_text(text)
    os.remove(root / halbench.BENCH_DIR / "unbiased.jsonl")
    with pytest.raises(FileNotFoundError, match="unbiased.jsonl is missing; regenerate"):
        halbench.load_halbench(str(root))


def test_manifest_records_the_spec():
    root = os.path.join(os.path.dirname(__file__), "..", "..", halbench.BENCH_DIR)
    manifest = json.load(open(os.path.join(root, "manifest.json")))
    assert manifest["spec"] == halbench.BENCH_SPEC
