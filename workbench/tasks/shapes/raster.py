"""Exact, antialias-free rasterisation of shape kinds: a pixel belongs to a shape iff its centre does.

Each kind is a membership test on the unit square, registered in `SHAPE_KINDS`: given the pixel
centres' coordinates `u, v` in [0, 1] relative to the shape's bounding square (u to the right, v
down), it returns a boolean array. A new kind is one decorated function::

    @SHAPE_KINDS.register("ring")
    def ring(u, v):
        r2 = (u - 0.5) ** 2 + (v - 0.5) ** 2
        return (r2 <= 0.25) & (r2 >= 0.09)

Only IEEE basic arithmetic is used (no sin/cos at render time: the star's vertices are literal
constants), so masks are bit-identical on every platform.
"""

from __future__ import annotations

import numpy as np

from workbench.registry import Registry

SHAPE_KINDS: Registry = Registry("shape kind")


@SHAPE_KINDS.register("circle")
def circle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Disk inscribed in the unit square: (u − ½)² + (v − ½)² ≤ ¼."""
    return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25


@SHAPE_KINDS.register("square")
def square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The whole bounding square."""
    return (u >= 0.0) & (u <= 1.0) & (v >= 0.0) & (v <= 1.0)


@SHAPE_KINDS.register("triangle")
def triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Upward isosceles triangle, apex (½, 0), base on v = 1: |u − ½| ≤ v / 2."""
    return (np.abs(u - 0.5) <= v / 2) & (v <= 1.0)


@SHAPE_KINDS.register("diamond")
def diamond(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Square rotated by 45°: |u − ½| + |v − ½| ≤ ½."""
    return np.abs(u - 0.5) + np.abs(v - 0.5) <= 0.5


@SHAPE_KINDS.register("cross")
def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Plus sign with arms one third of the side wide."""
    inside = (u >= 0.0) & (u <= 1.0) & (v >= 0.0) & (v <= 1.0)
    return inside & ((np.abs(u - 0.5) <= 1 / 6) | (np.abs(v - 0.5) <= 1 / 6))


@SHAPE_KINDS.register("moon")
def moon(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Crescent: the inscribed disk minus a disk of radius 0.4 centred at (0.72, 0.38)."""
    outer = (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    bite = (u - 0.72) ** 2 + (v - 0.38) ** 2 <= 0.16
    return outer & ~bite


# five-pointed star, outer radius 0.5, inner radius 0.21, centre (0.5, 0.52); rounded to 1e-6
_STAR = np.array([
    (0.5, 0.02), (0.623435, 0.350106), (0.975528, 0.365492), (0.699722, 0.584894),
    (0.793893, 0.924508), (0.5, 0.73), (0.206107, 0.924508), (0.300278, 0.584894),
    (0.024472, 0.365492), (0.376565, 0.350106),
])


@SHAPE_KINDS.register("star")
def star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Five-pointed star polygon, even-odd rule (a ray to +u crosses the boundary an odd number of times)."""
    u, v = np.broadcast_arrays(u, v)
    inside = np.zeros(u.shape, dtype=bool)
    for (ua, va), (ub, vb) in zip(_STAR, np.roll(_STAR, -1, axis=0)):
        straddles = (va > v) != (vb > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            u_cross = ua + (v - va) * (ub - ua) / (vb - va)
        inside ^= straddles & (u < u_cross)
    return inside


def rasterize(kind: str, x: int, y: int, size: int, width: int, height: int) -> np.ndarray:
    """Full (amodal) mask of one shape: the pixels whose centres fall inside it.

    The shape occupies the bounding square [x, x + size) × [y, y + size) in pixel units (x, y = top-left
    corner); pixel (row i, column j) has centre (j + ½, i + ½) and unit-square coordinates
    u = (j + ½ − x) / size, v = (i + ½ − y) / size. Parts outside the image are clipped.

    Args:
        kind: a name registered in `SHAPE_KINDS`.
        x, y: top-left corner of the bounding square (pixels, may be negative).
        size: side of the bounding square (pixels, ≥ 1).
        width, height: image size.

    Returns:
        mask: [height, width] bool.
    """
    if size < 1:
        raise ValueError(f"shape size must be >= 1 pixel, got {size}")
    fn = SHAPE_KINDS.get(kind)
    mask = np.zeros((height, width), dtype=bool)
    x0, x1 = max(x, 0), min(x + size, width)
    y0, y1 = max(y, 0), min(y + size, height)
    if x0 >= x1 or y0 >= y1:
        return mask
    u = (np.arange(x0, x1, dtype=np.float64) + 0.5 - x) / size
    v = (np.arange(y0, y1, dtype=np.float64) + 0.5 - y) / size
    mask[y0:y1, x0:x1] = fn(u[None, :], v[:, None])
    return mask
