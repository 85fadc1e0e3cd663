"""The one config record every sparse-attention piece reads (selector, block geometry, budget).

Defaults follow PHSA (arXiv 2601.02819) at 4k tokens: block size 16, one initial block, a 128-token
local window, top-K blocks per query tile, λ = 0.5 for the punctuation fusion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class SparseAttentionConfig:
    """Which blocks a query attends to, and how they are chosen.

    Visible keys of a query at position p (all causal, k <= p):
      * the `initial` first tokens (always kept, an "attention sink");
      * the local window: every key from block `tile_first_block(p) - window / block_size` on,
        where the window is counted from the first block of p's query tile, so all queries of a
        tile share it (exact per-token causal masking inside it);
      * the `top_k` blocks chosen by the selector for p's query tile, among the blocks strictly
        before the initial/local region (so nothing is counted twice).

    Attributes:
        selector: name in `SELECTORS` (`moba`, `infllm_v2`, `phsa`, `nsa`, `oracle`) or `dense`.
        block_size: tokens per key block (paper: 16).
        top_k: selected blocks per query tile and KV head (paper sweeps 1-16; trains at 2).
        window: local window in tokens, a multiple of `block_size` (paper: 128 at 4k, 512 at 32k).
        initial: always-kept initial tokens, a multiple of `block_size` (paper: 16 at 4k, 128 at 32k).
        query_tile: queries sharing one selection (1 = per-token selection as in the paper; larger
            tiles make the block-sparse kernels faster).
        dense_below: key lengths below this run dense attention (InfLLM v2's short-context switch).
        lam: PHSA fusion weight λ in M = λ·M_o + (1-λ)·M_p.
        punctuation_ids: token ids treated as punctuation by `phsa` (see `punctuation_token_ids`).
        kernel: `gather` (forward + backward, any device) or `flex` (FlexAttention BlockMask).
    """

    selector: str = "phsa"
    block_size: int = 16
    top_k: int = 4
    window: int = 128
    initial: int = 16
    query_tile: int = 64
    dense_below: int = 0
    lam: float = 0.5
    punctuation_ids: tuple[int, ...] = field(default_factory=tuple)
    kernel: str = "gather"

    def __post_init__(self) -> None:
        self.punctuation_ids = tuple(int(i) for i in self.punctuation_ids)
        for name in ("block_size", "query_tile"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("top_k", "window", "initial", "dense_below"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        for name in ("window", "initial"):
            if getattr(self, name) % self.block_size:
                raise ValueError(f"{name}={getattr(self, name)} must be a multiple of block_size={self.block_size}")
        if not 0.0 <= float(self.lam) <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {self.lam!r}")
        if self.kernel not in ("gather", "flex"):
            raise ValueError(f"kernel must be 'gather' or 'flex', got {self.kernel!r}")
        from workbench.attention.selectors import SELECTORS  # late: selectors import this module

        if self.selector != "dense" and self.selector not in SELECTORS:
            raise ValueError(f"selector {self.selector!r} is unknown; known: dense, {', '.join(SELECTORS.names())}")

    @property
    def initial_blocks(self) -> int:
        return self.initial // self.block_size

    @property
    def window_blocks(self) -> int:
        return self.window // self.block_size

    def replace(self, **changes: Any) -> "SparseAttentionConfig":
        """A copy with `changes` applied (validated again)."""
        return SparseAttentionConfig(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (stored as `model.config.sparse_attention`)."""
        d = asdict(self)
        d["punctuation_ids"] = list(self.punctuation_ids)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | "SparseAttentionConfig") -> "SparseAttentionConfig":
        """Build from a dict, rejecting unknown keys with one sentence."""
        if isinstance(d, SparseAttentionConfig):
            return d
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown sparse attention option(s) {bad}; known: {sorted(known)}")
        return cls(**d)
