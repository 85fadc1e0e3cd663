"""A KV cache that appends in place: `preallocated_cache(model, capacity)`.

HF's `DynamicLayer` appends a decode step's keys and values with `torch.cat`, which copies the whole
cache every step: for T decode steps that is O(T²) bytes moved, and on a small CPU model it is the
largest single cost of sampling (≈30 % of a 512-row × 48-token rollout of `tiny-arith`). A
`PreallocatedLayer` keeps each layer's keys and values in a buffer [B, H_kv, capacity, D] and writes
step t into slot t, handing attention the view `buffer[:, :, :t+1]`; when the buffer is full it
doubles (one copy). Row selection (`batch_select_indices`, used by the decode loop to drop finished
rows) and the group repeat (`batch_repeat_interleave`) act on the buffer, so both keep working.

The numbers are the same as `DynamicCache`'s: attention sees the same keys and values, only their
storage differs (tested token for token in `tests/models/test_generation.py`).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """`DynamicLayer` whose keys/values [B, H_kv, t, D] are views of a buffer [B, H_kv, capacity, D]."""

    def __init__(self, capacity: int = 64):
        super().__init__()
        self.capacity = max(int(capacity), 1)
        self.length = 0
        self._k = self._v = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        B, H, _, D = key_states.shape
        cap = max(self.capacity, key_states.size(-2))
        self._k = key_states.new_empty(B, H, cap, D)
        self._v = value_states.new_empty(B, H, cap, value_states.size(-1))
        self.length = 0
        self.is_initialized = True

    def _grow(self, need: int) -> None:
        cap = max(need, 2 * self._k.size(-2))
        k, v = self._k.new_empty(*self._k.shape[:2], cap, self._k.size(-1)), self._v.new_empty(*self._v.shape[:2], cap, self._v.size(-1))
        k[..., : self.length, :], v[..., : self.length, :] = self._k[..., : self.length, :], self._v[..., : self.length, :]
        self._k, self._v = k, v

    def _views(self) -> None:
        self.keys, self.values = self._k[..., : self.length, :], self._v[..., : self.length, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Write the new states [B, H_kv, q, D] into slots length … length+q−1; return the views [B, H_kv, length+q, D]."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        q = key_states.size(-2)
        if self.length + q > self._k.size(-2):
            self._grow(self.length + q)
        self._k[..., self.length : self.length + q, :] = key_states
        self._v[..., self.length : self.length + q, :] = value_states
        self.length += q
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative count of tokens to remove, got {tokens_to_remove}")
        if tokens_to_remove and self.is_initialized:
            self.length = max(self.length + tokens_to_remove, 0)
            self._views()

    def _rebatch(self, rows) -> None:
        """New buffers of the same capacity holding `rows(filled part)`: only the filled slots are copied."""
        if self.is_initialized:
            k, v = rows(self.keys), rows(self.values)
            self._k = k.new_empty(k.size(0), k.size(1), self._k.size(-2), k.size(-1))
            self._v = v.new_empty(v.size(0), v.size(1), self._v.size(-2), v.size(-1))
            self._k[..., : self.length, :], self._v[..., : self.length, :] = k, v
            self._views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._rebatch(lambda x: x.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._rebatch(lambda x: x[indices])

    def reset(self) -> None:
        self._k = self._v = None
        self.length = 0
        super().reset()


def preallocated_cache(model, capacity: int) -> Cache | None:
    """A `Cache` of `PreallocatedLayer`s holding `capacity` positions per layer, or None (use the model's
    default cache) when some layer is not plain full attention (sliding window, linear attention, ...)."""
    config = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
    n_layers = getattr(config, "num_hidden_layers", None)
    layer_types = getattr(config, "layer_types", None) or ["full_attention"] * (n_layers or 0)
    if not n_layers or any(t != "full_attention" for t in layer_types) or getattr(config, "use_sliding_window", False):
        return None
    return Cache(layers=[PreallocatedLayer(capacity) for _ in range(n_layers)])
