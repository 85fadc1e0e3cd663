"""pass@k with the unbiased estimator of Chen et al. (arXiv 2107.03374) from n ≥ k samples per problem:

    pass@k = 1 − C(n − c, k) / C(n, k),   c = number of correct samples.
"""

from __future__ import annotations

from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with `c` correct out of `n` samples."""
    if k > n:
        raise ValueError(f"pass@k needs k <= n samples, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)
