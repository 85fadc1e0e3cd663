"""ShapeWorld counterfactual edits change exactly the documented pixels."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.tasks import shapes
from workbench.tasks.shapes.scene import ALL_COLOURS


@pytest.fixture(scope="module")
def stacked():
    """Three overlapping shapes (0 under 1 under 2) plus a free one, on a noisy background."""
    return shapes.Scene(64, 64, "navy", (
        shapes.Shape("square", "red", 24, 4, 4),
        shapes.Shape("circle", "blue", 20, 16, 14),
        shapes.Shape("triangle", "yellow", 18, 24, 20),
        shapes.Shape("star", "green", 16, 44, 44),
    ), noise=20, noise_seed=3)


def _occluded_scenes():
    cfg = shapes.complexity_config(3, width=64, height=64, n_objects=(4, 5), sizes=(14, 18), n_clutter=(2, 3))
    return [shapes.sample_scene(cfg, s) for s in range(2)]


def test_remove_changes_only_visible_pixels_and_reveals_occluded(stacked):
    for scene in [stacked, *_occluded_scenes()]:
        before = shapes.render(scene)
        for k in range(len(scene.shapes)):
            e = shapes.remove_object(scene, k)
            changed = (e.image != before.image).any(axis=-1)
            assert not (changed & ~e.allowed).any() and np.array_equal(e.allowed, before.masks[k])
            assert np.array_equal(e.image, shapes.render(e.scene).image) and e.rerenderable
            assert len(e.graph.objects) == len(scene.shapes) - 1 and e.index_map[k] is None
            for j in range(len(scene.shapes)):
                if j == k:
                    continue
                nj = e.index_map[j]
                old, new = before.masks[j], e.masks[nj]
                above = [m for m in range(j + 1, len(scene.shapes)) if m != k]
                covered = before.full_masks[above].any(axis=0) if above else np.zeros_like(old)
                expected_gain = before.masks[k] & before.full_masks[j] & ~covered
                assert not (old & ~new).any(), "a shape lost pixels when another was removed"
                assert np.array_equal(new & ~old, expected_gain)
                assert (e.image[new] == ALL_COLOURS[scene.shapes[j].colour]).all()
            bare = before.masks[k] & ~e.masks.any(axis=0)
            assert np.array_equal(e.image[bare], before.background[bare])


def test_remove_stacked_reveals_something(stacked):
    before = shapes.render(stacked)
    e = shapes.remove_object(stacked, 2)  # the triangle sits on the circle
    assert (e.masks[1] & ~before.masks[1]).any()
    assert "remove yellow triangle #2" == e.description


def test_fill_with_background_keeps_other_masks(stacked):
    for scene in [stacked, *_occluded_scenes()]:
        before = shapes.render(scene)
        for k in range(len(scene.shapes)):
            e = shapes.fill_with_background(scene, k)
            vk = before.masks[k]
            assert np.array_equal(e.image[vk], before.background[vk])
            assert np.array_equal(e.image[~vk], before.image[~vk])
            keep = [i for i in range(len(scene.shapes)) if i != k]
            assert np.array_equal(e.masks, before.masks[keep])
            hid = (before.full_masks[:k] & vk).any()
            assert e.rerenderable == (not hid)
            assert np.array_equal(e.image, shapes.render(e.scene).image) == e.rerenderable
    assert not shapes.fill_with_background(stacked, 2).rerenderable
    assert shapes.fill_with_background(stacked, 3).rerenderable


def test_replace_changes_only_where_the_shape_is_on_top(stacked):
    for scene in [stacked, *_occluded_scenes()]:
        before = shapes.render(scene)
        for k in range(len(scene.shapes)):
            old = scene.shapes[k]
            kind = "diamond" if old.kind != "diamond" else "circle"
            colour = "purple" if old.colour != "purple" else "orange"
            for kw in ({"kind": kind}, {"colour": colour}, {"kind": kind, "colour": colour}):
                e = shapes.replace_object(scene, k, **kw)
                changed = (e.image != before.image).any(axis=-1)
                above = before.full_masks[k + 1:].any(axis=0)
                new_full = shapes.rasterize(e.scene.shapes[k].kind, old.x, old.y, old.size, scene.width, scene.height)
                bound = (before.full_masks[k] | new_full) & ~above
                assert np.array_equal(e.allowed, bound) and not (changed & ~bound).any()
                assert np.array_equal(e.image, shapes.render(e.scene).image)
                node = e.graph.objects[k]
                assert (node.kind, node.colour) == (kw.get("kind", old.kind), kw.get("colour", old.colour))
                if "colour" in kw:  # a tiny clutter dot may rasterise the same as another kind
                    assert changed.any() or not before.masks[k].any()


def test_counterfactual_answers_follow_the_edit(stacked):
    g0 = shapes.render(stacked).graph
    e = shapes.replace_object(stacked, 0, kind="circle")
    assert g0.count(kind="circle") == 1 and e.graph.count(kind="circle") == 2
    assert shapes.grounding_score("circles: 2", e.graph).score == 1.0
    assert shapes.grounding_score("circles: 2", g0).score == 0.0
    assert shapes.remove_object(stacked, 3).graph.count(kind="star") == 0


def test_edit_bad_input(stacked):
    with pytest.raises(ValueError, match="shape index 9 is out of range"):
        shapes.remove_object(stacked, 9)
    with pytest.raises(ValueError, match="shape index -1"):
        shapes.fill_with_background(stacked, -1)
    with pytest.raises(ValueError, match="neither"):
        shapes.replace_object(stacked, 0)
    with pytest.raises(ValueError, match="shape kind 'blob'"):
        shapes.replace_object(stacked, 0, kind="blob")
