"""diffusers' own cache as a peer: Pyramid Attention Broadcast (arXiv 2408.12588) on a UNet's cross-attention.

`UNet2DConditionModel` and `ControlNetModel` lack diffusers' `CacheMixin` (no `enable_cache`), so
`apply_pyramid_attention_broadcast` is applied to each model directly. It hooks every `Attention` whose
path matches one of `PyramidAttentionBroadcastConfig.cross_attention_block_identifiers` ("blocks",
"transformer_blocks", "layers") and whose `is_cross_attention` is set — in a UNet, the `attn2` of each
`transformer_blocks.k` (and, with `only_cross_attention`, its `attn1`). So it does work on a UNet's
cross-attention: a hooked attention inside the timestep window (`skip_range`, in scheduler timesteps)
recomputes only every `interval`-th call and otherwise returns its previous output (`tests/diffusion`
counts the calls of its `to_q` to show it). The hooks are stateful: they are reset before and removed after
each sampling run.
"""

from __future__ import annotations

from workbench.diffusion.caches import CACHES, Cache, _check_int

_HOOK = "pyramid_attention_broadcast"


class PAB(Cache):
    name = "pab"

    def __init__(self, model, n_steps: int, interval: int = 2, skip_range: tuple[int, int] = (100, 800)):
        from diffusers import PyramidAttentionBroadcastConfig, apply_pyramid_attention_broadcast

        super().__init__(model, n_steps)
        self.interval = _check_int("interval", interval, 1)
        lo, hi = skip_range
        if not 0 <= lo < hi:
            raise ValueError(f"cache setting skip_range must be (lo, hi) with 0 <= lo < hi, got {skip_range!r}")
        self.current_t = -1
        config = PyramidAttentionBroadcastConfig(cross_attention_block_skip_range=self.interval,
                                                 cross_attention_timestep_skip_range=(int(lo), int(hi)),
                                                 current_timestep_callback=lambda: self.current_t)
        self.targets = [model.unet, model.controlnet]
        for target in self.targets:
            apply_pyramid_attention_broadcast(target, config)
        for registry in self._registries():
            registry.reset_stateful_hooks(recurse=False)

    def begin_step(self, i, x, t, prompt) -> None:
        self.current_t = int(t.flatten()[0]) if hasattr(t, "flatten") else int(t)

    def _registries(self) -> list:
        return [m._diffusers_hook for t in self.targets for m in t.modules() if hasattr(m, "_diffusers_hook")]

    def close(self) -> None:
        for registry in self._registries():
            registry.remove_hook(_HOOK, recurse=False)
            module = registry._module_ref  # diffusers leaves the original bound method as an instance attribute
            bound = vars(module).get("forward")
            if getattr(bound, "__func__", None) is type(module).forward:
                del module.forward


@CACHES.register("pab")
def pab(model, n_steps: int, interval: int = 2, skip_range: tuple[int, int] = (100, 800)) -> Cache:
    """diffusers' PAB on every cross-attention of UNet and ControlNet (`interval` = its block skip range)."""
    return PAB(model, n_steps, interval, tuple(skip_range))
