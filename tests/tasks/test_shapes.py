"""ShapeWorld: rasterisation, rendering, sampler knobs, questions, determinism and the frozen split."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from workbench.tasks import shapes
from workbench.tasks.shapes.scene import ALL_COLOURS

PLURAL_TO_KIND = {"circles": "circle", "squares": "square", "triangles": "triangle", "diamonds": "diamond",
                  "stars": "star", "moons": "moon", "crosses": "cross"}


# ------------------------------------------------------------------------------------------ raster
def _naive_inside(kind: str, u: float, v: float) -> bool:
    """Membership written out again, point by point (star via matplotlib's Path as the peer)."""
    if kind == "circle":
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    if kind == "square":
        return 0 <= u <= 1 and 0 <= v <= 1
    if kind == "triangle":
        return v <= 1 and abs(u - 0.5) <= v / 2
    if kind == "diamond":
        return abs(u - 0.5) + abs(v - 0.5) <= 0.5
    if kind == "cross":
        return 0 <= u <= 1 and 0 <= v <= 1 and (abs(u - 0.5) <= 1 / 6 or abs(v - 0.5) <= 1 / 6)
    if kind == "moon":
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25 and not (u - 0.72) ** 2 + (v - 0.38) ** 2 <= 0.16
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["circle", "square", "triangle", "diamond", "cross", "moon", "star"])
def test_rasterize_matches_pointwise_reference(kind):
    from matplotlib.path import Path

    from workbench.tasks.shapes.raster import _STAR

    W, H = 30, 26
    for x, y, size in [(3, 2, 17), (-5, 10, 20), (20, -3, 14)]:  # the last two are clipped by the border
        mask = shapes.rasterize(kind, x, y, size, W, H)
        assert mask.shape == (H, W) and mask.dtype == bool
        ref = np.zeros((H, W), dtype=bool)
        for i in range(H):
            for j in range(W):
                u, v = (j + 0.5 - x) / size, (i + 0.5 - y) / size
                if not (0 <= u <= 1 and 0 <= v <= 1):
                    continue
                ref[i, j] = Path(_STAR).contains_point((u, v)) if kind == "star" else _naive_inside(kind, u, v)
        assert np.array_equal(mask, ref), f"{kind} at {(x, y, size)}"
        assert mask.any()


def test_rasterize_rejects_bad_input():
    with pytest.raises(ValueError, match="size"):
        shapes.rasterize("circle", 0, 0, 0, 10, 10)
    with pytest.raises(KeyError, match="unknown shape kind 'blob'"):
        shapes.rasterize("blob", 0, 0, 5, 10, 10)
    assert not shapes.rasterize("square", 50, 50, 5, 10, 10).any()  # fully outside -> empty, no error


# ------------------------------------------------------------------------------------------ render
def _scenes():
    out = [shapes.sample_scene(shapes.complexity_config(level), seed) for level in range(4) for seed in range(3)]
    return out


def test_masks_match_pixels_and_cover_image():
    for scene in _scenes():
        r = shapes.render(scene)
        N = len(scene.shapes)
        assert r.image.shape == (112, 112, 3) and r.image.dtype == np.uint8
        assert r.masks.shape == r.full_masks.shape == (N, 112, 112)
        assert (r.masks.sum(axis=0) <= 1).all(), "visible masks overlap"
        assert not (r.masks & ~r.full_masks).any()
        for i, s in enumerate(scene.shapes):
            assert (r.image[r.masks[i]] == ALL_COLOURS[s.colour]).all(), f"shape {i} pixel colour"
        union = r.masks.any(axis=0)
        assert np.array_equal(r.image[~union], r.background[~union])
        assert np.array_equal(shapes.background_image(scene), r.background)


def test_visible_masks_against_per_pixel_painter():
    scene = shapes.sample_scene(shapes.complexity_config(3, width=48, height=48, n_objects=(3, 4),
                                                         n_clutter=(2, 3)), 5)
    r = shapes.render(scene)
    for i in range(scene.height):
        for j in range(scene.width):
            top = None
            for k, s in enumerate(scene.shapes):  # bottom to top: the last covering shape wins
                u, v = (j + 0.5 - s.x) / s.size, (i + 0.5 - s.y) / s.size
                if 0 <= u <= 1 and 0 <= v <= 1 and shapes.SHAPE_KINDS.get(s.kind)(np.array(u), np.array(v)):
                    top = k
            for k in range(len(scene.shapes)):
                assert r.masks[k, i, j] == (k == top)


def test_graph_boxes_areas_relations():
    scene = shapes.Scene(60, 40, "black", (
        shapes.Shape("square", "red", 14, 2, 3),
        shapes.Shape("circle", "blue", 16, 10, 10),
        shapes.Shape("square", "grey", 4, 50, 30, clutter=True),
    ))
    g = shapes.render(scene).graph
    a, b, c = g.objects
    assert a.bbox == (2, 3, 16, 17) and a.area == 14 * 14 and a.visible_area < a.area
    assert b.visible_area == b.area and b.center == (18.0, 18.0)
    assert c.clutter and g.count() == 2 and g.count(colour="red") == 1 and g.count(kind="square") == 1
    assert set(g.relations) == {(0, "left_of", 1), (0, "above", 1)}  # clutter has no relations
    assert g.relation(1, "right_of", 0) and g.relation(1, "below", 0) and not g.relation(1, "left_of", 0)
    json.dumps(g.to_dict())


# ---------------------------------------------------------------------------------------- sampler
def test_occlusion_and_visibility_constraints():
    cfg_none = shapes.SceneConfig(n_objects=(4, 5))
    for seed in range(5):
        r = shapes.render(shapes.sample_scene(cfg_none, seed))
        assert (r.full_masks.sum(axis=0) <= 1).all(), "occlusion='none' produced an overlap"
    for level in (2, 3):
        cfg = shapes.complexity_config(level)
        for seed in range(4):
            scene = shapes.sample_scene(cfg, seed)
            r = shapes.render(scene)
            objs = scene.objects
            for o in r.graph.items():
                assert o.visible_area >= cfg.min_visible * o.area
            for a in objs:  # same-colour objects never touch (they would read as one blob)
                grown = shapes.sampler._grow(r.full_masks[a])
                for b in objs:
                    if a != b and scene.shapes[a].colour == scene.shapes[b].colour:
                        assert not (grown & r.full_masks[b]).any()
            clutter = [i for i, s in enumerate(scene.shapes) if s.clutter]
            assert clutter == list(range(len(clutter))), "clutter must be drawn below the objects"
            assert all(r.masks[i].sum() == r.full_masks[i].sum() for i in clutter)
            if level == 3:
                assert (r.full_masks[objs[0]] & r.full_masks[objs[1]]).any(), "occlusion='required' without overlap"


@pytest.mark.parametrize("strength", [0.0, 0.5, 0.9, 1.0])
def test_cooccurrence_bias_sets_conditional_probability(strength):
    bias = shapes.CooccurrenceBias("star", "moon", strength)
    cfg = shapes.SceneConfig(kinds=("circle", "square", "star", "moon"), cooccurrence=(bias,))
    rng = np.random.default_rng(0)
    with_trigger = with_both = 0
    for _ in range(3000):
        kinds = shapes.sample_kinds(cfg, int(rng.integers(2, 6)), rng)
        if "star" in kinds:
            with_trigger += 1
            with_both += "moon" in kinds
    p = with_both / with_trigger
    if strength in (0.0, 1.0):
        assert p == strength
    else:
        assert abs(p - strength) < 3 * np.sqrt(strength * (1 - strength) / with_trigger) + 1e-9
    # without the bias the rate is the natural one, well away from 0.9
    free = shapes.SceneConfig(kinds=cfg.kinds)
    hits = [shapes.sample_kinds(free, 3, rng) for _ in range(2000)]
    p0 = np.mean(["moon" in k for k in hits if "star" in k])
    assert 0.3 < p0 < 0.7


def test_config_validation_messages():
    with pytest.raises(ValueError, match="occlusion 'some'"):
        shapes.SceneConfig(occlusion="some")
    with pytest.raises(ValueError, match="colours"):
        shapes.SceneConfig(colours=("mauve",))
    with pytest.raises(ValueError, match="n_objects"):
        shapes.SceneConfig(n_objects=(3, 1))
    with pytest.raises(ValueError, match="clutter_sizes"):
        shapes.SceneConfig(n_clutter=(1, 2), clutter_sizes=(3, 20))
    with pytest.raises(ValueError, match="co-occurrence kind 'moon'"):
        shapes.SceneConfig(cooccurrence=(shapes.CooccurrenceBias("star", "moon", 0.5),))
    with pytest.raises(ValueError, match="strength"):
        shapes.CooccurrenceBias("star", "moon", 1.5)
    with pytest.raises(ValueError, match="complexity level"):
        shapes.complexity_config(7)
    with pytest.raises(ValueError, match="could not place"):
        shapes.sample_scene(shapes.SceneConfig(width=30, height=30, n_objects=(6, 6), sizes=(14, 14), max_tries=20), 0)
    with pytest.raises(ValueError, match="rng"):
        shapes.sample_scene(None, "seed")


# --------------------------------------------------------------------------------------- questions
def _desc(words: list[str]):
    colour = words[0] if words[0] in shapes.COLOURS else None
    noun = words[-1]
    kind = None if noun in ("shapes", "shape") else PLURAL_TO_KIND.get(noun, noun)
    return colour, kind


def _count(scene, colour, kind):
    return sum(1 for s in scene.shapes if not s.clutter and colour in (None, s.colour) and kind in (None, s.kind))


def _independent_answer(scene, text: str) -> str:
    """Answer the question from the raw scene (no graph, no helpers of the package)."""
    if m := re.fullmatch(r"How many (.+) (plus|minus|times) (.+)\?", text):
        a, b = _count(scene, *_desc(m.group(1).split())), _count(scene, *_desc(m.group(3).split()))
        return str({"plus": a + b, "minus": a - b, "times": a * b}[m.group(2)])
    if m := re.fullmatch(r"How many (.+)\?", text):
        return str(_count(scene, *_desc(m.group(1).split())))
    if m := re.fullmatch(r"Is there an? (.+)\?", text):
        return "yes" if _count(scene, *_desc(m.group(1).split())) else "no"
    if m := re.fullmatch(r"What colour is the (\w+)\?", text):
        found = [s.colour for s in scene.shapes if not s.clutter and s.kind == m.group(1)]
        assert len(found) == 1
        return found[0]
    if m := re.fullmatch(r"Is the (\w+) (\w+) (left of|right of|above|below) the (\w+) (\w+)\?", text):
        (a,) = [s for s in scene.shapes if not s.clutter and (s.colour, s.kind) == (m.group(1), m.group(2))]
        (b,) = [s for s in scene.shapes if not s.clutter and (s.colour, s.kind) == (m.group(4), m.group(5))]
        ax, ay, bx, by = a.x + a.size / 2, a.y + a.size / 2, b.x + b.size / 2, b.y + b.size / 2
        holds = {"left of": ax < bx, "right of": ax > bx, "above": ay < by, "below": ay > by}[m.group(3)]
        return "yes" if holds else "no"
    raise AssertionError(f"unparsed question {text!r}")


def test_answers_against_raw_scene_and_cot_shape():
    examples = shapes.generate(100, seed=3) + shapes.generate(40, seed=4, config=shapes.complexity_config(2))
    for ex in examples:
        assert _independent_answer(ex.scene, ex.prompt) == ex.answer, ex.prompt
        lines = ex.target.split("\n")
        assert lines[-1] == f"answer: {ex.answer}"
        assert tuple(lines[: len(ex.question.facts)]) == ex.question.facts
        assert ex.target.isascii() and ex.prompt.isascii()
        if ex.question.family == "arithmetic":
            a, b = (int(f.split(": ")[1]) for f in ex.question.facts)
            assert re.fullmatch(rf"{a}[+*-]{b}={ex.answer}", lines[2]) and int(ex.answer) >= 0


def test_family_mix_is_balanced():
    examples = shapes.generate(200, seed=11)
    fams = [e.question.family for e in examples]
    assert all(fams.count(f) == 40 for f in shapes.FAMILIES)
    yes = [e.answer for e in examples if e.question.family == "exists"]
    assert 10 <= yes.count("yes") <= 30
    only = shapes.generate(5, seed=0, families=("arithmetic",))
    assert {e.question.family for e in only} == {"arithmetic"}
    with pytest.raises(KeyError, match="unknown shapes question family 'cnt'"):
        shapes.generate(2, families=("cnt",))
    with pytest.raises(ValueError, match="n must be"):
        shapes.generate(-1)


# ------------------------------------------------------------------------------------ determinism
def test_same_seed_same_arrays():
    cfg = shapes.complexity_config(3)
    a, b = shapes.generate(6, seed=9, config=cfg), shapes.generate(6, seed=9, config=cfg)
    assert [x.to_dict() for x in a] == [y.to_dict() for y in b]
    for x, y in zip(a, b):
        rx, ry = x.render(), y.render()
        assert np.array_equal(rx.image, ry.image) and np.array_equal(rx.masks, ry.masks)
    assert [x.to_dict() for x in shapes.generate(3, seed=9, config=cfg)] == [x.to_dict() for x in a[:3]]
    c = shapes.generate(6, seed=10, config=cfg)
    assert any(not np.array_equal(x.image, z.image) for x, z in zip(a, c))


def test_scene_round_trip_and_bad_dicts():
    ex = shapes.generate(1, seed=2, config=shapes.complexity_config(2))[0]
    back = shapes.ShapesExample.from_dict(json.loads(json.dumps(ex.to_dict())))
    assert back == ex and np.array_equal(back.image, ex.image)
    with pytest.raises(ValueError, match="not a scene dict"):
        shapes.Scene.from_dict({"width": 3})
    with pytest.raises(ValueError, match="shape colour 'pink'"):
        shapes.Scene(10, 10, "black", (shapes.Shape("circle", "pink", 5, 0, 0),))
    with pytest.raises(ValueError, match="shapes example"):
        shapes.ShapesExample.from_dict({"id": 1})


# ----------------------------------------------------------------------------------- frozen split
def test_committed_eval_split_matches_generator():
    from workbench.tasks.shapes.dataset import dumps
    from workbench.utils import repo_root

    path = os.path.join(repo_root(), shapes.EVAL_PATH)
    assert os.path.getsize(path) < 500_000
    with open(path) as f:
        lines = f.read().splitlines()
    expected = [dumps(e) for e in shapes.eval_examples()]
    assert lines == expected, "data/shapes/eval.jsonl is stale: run python -m workbench.tasks.shapes.dataset"
    loaded = shapes.load_eval_set(n=5)
    assert len(loaded) == 5 and loaded[0].image.shape == (112, 112, 3)
    for ex in loaded:
        assert shapes.reward(ex.target, ex.answer) == 1.0


def test_write_eval_set_to_other_root(tmp_path):
    path = shapes.write_eval_set(str(tmp_path))
    assert shapes.load_eval_set(root=str(tmp_path)) == shapes.load_eval_set()
    assert path.endswith(os.path.join("data", "shapes", "eval.jsonl"))
    with pytest.raises(FileNotFoundError, match="missing"):
        shapes.load_eval_set(root=str(tmp_path / "nowhere"))


def test_show_examples_returns_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = shapes.show_examples(3, seed=0, cols=2)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 4
    assert "answer:" in fig.axes[0].get_title()
    plt.close(fig)
