"""Seeded scene sampler: kinds (with co-occurrence bias), colours, sizes, placement, clutter, noise.

Sampling order, all from one `numpy.random.Generator`:
1. n ~ U{n_objects}; kinds, colours ~ uniform over `config.kinds` / `config.colours`;
2. co-occurrence biases rewrite kinds (`sample_kinds`);
3. sizes ~ U{sizes}; shapes are placed one by one by rejection sampling:
   - `occlusion="none"`: bounding squares are disjoint with a 2 px gap;
   - `"allowed"`: any overlap, as long as every object keeps ≥ `min_visible` of its pixels visible
     and shapes of the same colour neither overlap nor touch (they would merge into one blob);
   - `"required"`: as allowed, and object 1 overlaps object 0 (so the scene has an occluded object);
4. clutter: small grey circles/squares at free spots (bounding squares disjoint from every other
   shape's), drawn *below* the objects; a distractor that finds no free spot is dropped;
5. a noise seed when `config.noise > 0`.
"""

from __future__ import annotations

import numpy as np

from workbench.tasks.shapes.raster import rasterize
from workbench.tasks.shapes.scene import CLUTTER_COLOUR, Scene, SceneConfig, Shape

_GAP = 2  # px between bounding squares when occlusion is "none"
_RESTARTS = 50


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """`rng` itself, or a fresh `numpy.random.default_rng(rng)` for an int seed (None -> seed 0)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        rng = 0
    if not isinstance(rng, (int, np.integer)) or isinstance(rng, bool):
        raise ValueError(f"rng must be a numpy Generator or an int seed, got {rng!r}")
    return np.random.default_rng(int(rng))


def sample_kinds(config: SceneConfig, n: int, rng: np.random.Generator) -> list[str]:
    """Kinds of `n` objects: i.i.d. uniform over `config.kinds`, then each `CooccurrenceBias` applied.

    For a bias (trigger T, partner P, strength ρ) and n ≥ 2 with T present: with probability ρ make
    P present (turn a random non-T object, or a second T, into P), otherwise make P absent (turn every
    P into a random kind other than T and P, or into T if no other exists). Hence exactly
    P(P present | T present, n ≥ 2) = ρ for a single bias. A later bias rewrites objects of an earlier
    bias's kinds only when no other object will do, so disjoint pairs barely disturb one another
    (`cooccurrence.cooccurrence_counts` measures what a dataset ends up with).
    """
    kinds = [str(k) for k in rng.choice(config.kinds, size=n)]
    held: set[str] = set()  # kinds of earlier biases, which later ones leave alone where they can
    for b in config.cooccurrence:
        if n >= 2 and b.trigger in kinds:
            if rng.random() < b.strength:
                if b.partner not in kinds:
                    others = [i for i, k in enumerate(kinds) if k != b.trigger]
                    free = [i for i in others if kinds[i] not in held]
                    others = free or others or list(range(1, n))  # all triggers: keep the first
                    kinds[others[int(rng.integers(len(others)))]] = b.partner
            else:
                pool = ([k for k in config.kinds if k not in (b.trigger, b.partner, *held)]
                        or [k for k in config.kinds if k not in (b.trigger, b.partner)] or [b.trigger])
                kinds = [str(pool[int(rng.integers(len(pool)))]) if k == b.partner else k for k in kinds]
        held |= {b.trigger, b.partner}
    return kinds


def _boxes_clear(x: int, y: int, s: int, placed: list[Shape], gap: int) -> bool:
    """True when square [x, x+s)² is at least `gap` px away from every placed bounding square."""
    for p in placed:
        if x < p.x + p.size + gap and p.x < x + s + gap and y < p.y + p.size + gap and p.y < y + s + gap:
            return False
    return True


def _grow(mask: np.ndarray) -> np.ndarray:
    """`mask` dilated by one pixel in the 4-neighbourhood: [H, W] bool -> [H, W] bool."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _place_objects(config: SceneConfig, kinds: list[str], colours: list[str], sizes: list[int],
                   rng: np.random.Generator) -> list[Shape] | None:
    """Place the objects bottom to top; None when some object found no valid spot in `max_tries`."""
    W, H = config.width, config.height
    placed: list[Shape] = []
    full: list[np.ndarray] = []
    visible: list[np.ndarray] = []
    for i, (kind, colour, s) in enumerate(zip(kinds, colours, sizes)):
        for _ in range(config.max_tries):
            if config.occlusion == "required" and i == 1:  # bounding squares must overlap object 0's
                a = placed[0]
                x = int(rng.integers(max(0, a.x - s + 1), min(W - s, a.x + a.size - 1) + 1))
                y = int(rng.integers(max(0, a.y - s + 1), min(H - s, a.y + a.size - 1) + 1))
            else:
                x, y = int(rng.integers(0, W - s + 1)), int(rng.integers(0, H - s + 1))
            if config.occlusion == "none":
                if _boxes_clear(x, y, s, placed, _GAP):
                    break
                continue
            mask = rasterize(kind, x, y, s, W, H)
            if config.occlusion == "required" and i == 1 and not (mask & full[0]).any():
                continue
            grown = _grow(mask)
            if any(p.colour == colour and (grown & f).any() for p, f in zip(placed, full)):
                continue
            if all((v & ~mask).sum() >= config.min_visible * f.sum() for v, f in zip(visible, full)):
                visible = [v & ~mask for v in visible]
                full.append(mask)
                visible.append(mask)
                break
        else:
            return None
        placed.append(Shape(kind, colour, s, x, y))
    return placed


def sample_scene(config: SceneConfig | None = None, rng: np.random.Generator | int | None = None) -> Scene:
    """Sample one scene with the knobs of `config` (default `SceneConfig()`).

    Args:
        config: sampler knobs; see `SceneConfig` and the module docstring for the procedure.
        rng: a `numpy.random.Generator` (advanced in place) or an int seed.

    Returns:
        A `Scene` whose `shapes` are the clutter (bottom) then the objects in drawing order.
    """
    config = config or SceneConfig()
    rng = as_generator(rng)
    for _ in range(_RESTARTS):
        n = int(rng.integers(config.n_objects[0], config.n_objects[1] + 1))
        kinds = sample_kinds(config, n, rng)
        colours = [str(c) for c in rng.choice(config.colours, size=n)]
        sizes = [int(s) for s in rng.integers(config.sizes[0], config.sizes[1] + 1, size=n)]
        objects = _place_objects(config, kinds, colours, sizes, rng)
        if objects is not None:
            break
    else:
        raise ValueError(f"could not place {config.n_objects} shapes of sizes {config.sizes} in a "
                         f"{config.width}x{config.height} image with occlusion={config.occlusion!r}; "
                         "use fewer or smaller shapes")
    clutter: list[Shape] = []
    for _ in range(int(rng.integers(config.n_clutter[0], config.n_clutter[1] + 1))):
        s = int(rng.integers(config.clutter_sizes[0], config.clutter_sizes[1] + 1))
        kind = ("circle", "square")[int(rng.integers(2))]
        for _ in range(config.max_tries):
            x, y = int(rng.integers(0, config.width - s + 1)), int(rng.integers(0, config.height - s + 1))
            if _boxes_clear(x, y, s, objects + clutter, 1):
                clutter.append(Shape(kind, CLUTTER_COLOUR, s, x, y, clutter=True))
                break
    noise_seed = int(rng.integers(0, 2**31 - 1)) if config.noise > 0 else 0
    return Scene(width=config.width, height=config.height, background=config.background,
                 shapes=tuple(clutter + objects), noise=config.noise, noise_seed=noise_seed)
