"""The video world: deterministic clips, distortions that touch exactly their frames, exact labels, the frozen
bench, the output format and its parser."""

import json
import random

import numpy as np
import pytest

from workbench.tasks.video import (DISTORTIONS, LABELS, ClipSpec, ClipView, Distortion, VideoConfig, load_bench,
                                   make_clip, make_pair, make_scene, parse_rating, random_frames, render_clip, target,
                                   uniform_frames, window_frames)
from workbench.tasks.video.bench import BENCH_SIZE, bench_pairs


def test_clips_are_deterministic_and_round_trip():
    a, b = make_clip(3, 17), make_clip(3, 17)
    assert a == b and np.array_equal(render_clip(a), render_clip(b))
    assert ClipSpec.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert make_clip(3, 18) != a


@pytest.mark.parametrize("kind", DISTORTIONS.names())
def test_each_distortion_changes_exactly_its_frames(kind):
    scene = make_scene(5, 2)
    d = Distortion(kind, obj=0, start=6, length=3)
    spec = ClipSpec(scene.scene_id, scene.width, scene.height, scene.background, scene.n_frames, scene.movers, d)
    clean, bad = render_clip(scene), render_clip(spec)
    changed = [t for t in range(spec.n_frames) if not np.array_equal(clean[t], bad[t])]
    assert changed == [6, 7, 8]
    assert spec.score == 2 and spec.label == kind and scene.score == 5


def test_severity_caps_at_four_and_visible_frames():
    scene = make_scene(1, 1)
    spec = ClipSpec(scene.scene_id, 112, 112, "black", 16, scene.movers, Distortion("teleport", 1, 2, 6))
    assert spec.score == 1
    assert spec.visible_frames(range(0, 16, 2)) == (2, 4, 6) and spec.score_from_frames(range(0, 16, 2)) == 2
    assert spec.score_from_frames([0, 1]) == 5


def test_bad_specs_are_one_sentence_errors():
    scene = make_scene(1, 1)
    with pytest.raises(ValueError, match="do not fit"):
        ClipSpec("x", 112, 112, "black", 16, scene.movers, Distortion("teleport", 0, 14, 4))
    with pytest.raises(KeyError, match="wobble"):
        ClipSpec("x", 112, 112, "black", 16, scene.movers, Distortion("wobble", 0, 0, 1))
    with pytest.raises(ValueError, match="movers"):
        ClipSpec("x", 112, 112, "black", 16, scene.movers, Distortion("teleport", 5, 0, 1))
    with pytest.raises(ValueError, match="merging"):
        VideoConfig(movers=(1, 1), kinds=("merging",))


def test_pairs_are_strictly_ordered_and_share_the_scene():
    for i in range(50):
        p = make_pair(7, i)
        assert p.better.score > p.worse.score and p.better.movers == p.worse.movers


def test_frozen_bench_matches_its_generator():
    pairs = load_bench()
    assert len(pairs) == BENCH_SIZE and pairs == bench_pairs()
    kinds = {p.worse.label for p in pairs}
    assert kinds == set(DISTORTIONS.names())
    with pytest.raises(ValueError, match="frozen split has"):
        load_bench(BENCH_SIZE + 1)


def test_frame_choices():
    assert uniform_frames(16, 8) == (0, 2, 4, 6, 8, 10, 12, 14) and uniform_frames(16, 4, 1) == (1, 5, 9, 13)
    assert window_frames(16, 0.5, 4) == (0, 1, 2, 3) and window_frames(16, 15, 4) == (12, 13, 14, 15)
    rng = random.Random(0)
    for _ in range(100):
        f = random_frames(16, rng)
        assert len(f) in (2, 4, 8) and list(f) == sorted(set(f))
    with pytest.raises(ValueError, match="cannot show"):
        uniform_frames(16, 17)


def test_target_round_trips_through_the_parser():
    for i in range(40):
        spec = make_clip(2, i)
        frames = uniform_frames(16, 8)
        r = parse_rating(target(spec, frames))
        assert r.ok and r.score == spec.score_from_frames(frames)
        assert r.frames == spec.visible_frames(frames)
        assert r.label == (spec.label if r.frames else "none")


@pytest.mark.parametrize("text,missing", [
    ('<think>x</think><answer>{"score":3,"label":"teleport","frames":[1,2]}</answer>', ()),
    ('<answer>{"score":3,"label":"teleport","frames":[1]}</answer>', ("think",)),
    ('<think>x</think>{"score":3,"label":"teleport","frames":[1]}', ("answer", "json")),
    ('<think>x</think><answer>{"score":7,"label":"teleport","frames":[1]}</answer>', ("score",)),
    ('<think>x</think><answer>{"score":2,"label":"wobble","frames":[1]}</answer>', ("label",)),
    ('<think>x</think><answer>{"score":2,"label":"none","frames":["a"]}</answer>', ("frames",)),
    ('<think>x</think><answer>{"score":2,"label":"none","frames":[3</answer>', ("json", "frames")),
])
def test_parser_names_what_is_missing(text, missing):
    r = parse_rating(text)
    assert r.missing == missing and r.ok == (not missing)


def test_parser_reads_a_malformed_json_by_fields():
    r = parse_rating('<think>t</think><answer>{"score": 2, "label": "merging", "frames": [4, 5],}</answer>')
    assert (r.score, r.label, r.frames) == (2, "merging", (4, 5)) and r.missing == ("json",)


def test_parser_never_raises_on_garbage():
    rng = random.Random(0)
    alphabet = '<>/{}[]":,0123456789abcdefghijklmnopqrstuvwxyz thinkanswerscorelabelframes'
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        r = parse_rating(text)
        assert r.score is None or 1 <= r.score <= 5
        assert r.label is None or r.label in LABELS
    assert parse_rating(None).missing


def test_views_validate_and_render():
    spec = make_clip(1, 0)
    v = ClipView(spec, (0, 5, 9))
    assert v.render().shape == (3, 112, 112, 3) and "Frames 0,5,9" in v.prompt
    with pytest.raises(ValueError, match="outside"):
        ClipView(spec, (0, 16))
