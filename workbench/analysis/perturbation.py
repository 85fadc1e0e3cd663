"""Token-type perturbations of a vision-language model (ToR, arXiv 2603.25077).

Score the *same* response under the original image I and a perturbed image I' to get each token's
visual dependency, then split tokens into perception and reasoning tokens:

    Δ_t = log π(o_t | I, q, o_<t) − log π(o_t | I', q, o_<t),        visual dependency = |Δ_t|
    T_p = top 30% of the batch's response tokens by |Δ_t|           (perception tokens)
    T_r = top 30% of the batch's response tokens by entropy H_t      (reasoning tokens)

Image perturbations (registry `IMAGE_PERTURBATIONS`, `fn(image, *, scene, rng, **kw) -> image | None`):
`removed` (no image: the prompt loses its image tokens), `blank` (the background alone), `noise`
(additive Gaussian pixel noise), `object_removed` (one ShapeWorld object removed, re-rendered).

Attention analysis (`image_attention`): the attention mass each response token puts on the image
tokens, and its distribution over the merged patch grid (a heatmap), from eager attention weights.

    dep = visual_dependency(model, processor, questions, images, gen.completion_ids, gen.completion_mask,
                            variants=("removed", "blank"), scenes=[e.scene for e in examples])
    types = classify_tokens(dep.dependency("removed"), dep.entropy, dep.mask)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from workbench.models.scoring import completion_logprobs
from workbench.models.vlm import encode_vl_prompts, format_vl_prompt
from workbench.analysis.token_stats import top_fraction_mask
from workbench.registry import Registry

IMAGE_PERTURBATIONS: Registry = Registry("image perturbation")
TOKEN_TYPES = ("neither", "perception", "reasoning", "both")  # label 0..3 of `TokenTypes.labels`


@IMAGE_PERTURBATIONS.register("removed")
def removed(image: np.ndarray, *, scene=None, rng: np.random.Generator | None = None) -> None:
    """No image at all: the question is asked without image tokens (ToR's log π(o_t | ∅, q))."""
    return None


@IMAGE_PERTURBATIONS.register("blank")
def blank(image: np.ndarray, *, scene=None, rng: np.random.Generator | None = None) -> np.ndarray:
    """The background alone: the ShapeWorld scene's background texture when `scene` is given, else the
    image filled with the per-channel median of its border pixels."""
    if scene is not None:
        from workbench.tasks.shapes import background_image

        return background_image(scene)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return np.broadcast_to(np.median(border, axis=0).astype(np.uint8), image.shape).copy()


@IMAGE_PERTURBATIONS.register("noise")
def noise(image: np.ndarray, *, scene=None, rng: np.random.Generator | None = None,
          noise_std: float = 64.0) -> np.ndarray:
    """I' = clip(I + ε, 0, 255), ε ~ N(0, noise_std²) per pixel and channel (seeded by `rng`)."""
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    rng = rng if rng is not None else np.random.default_rng(0)
    return np.clip(image.astype(np.float64) + rng.normal(0.0, noise_std, image.shape), 0, 255).round().astype(np.uint8)


@IMAGE_PERTURBATIONS.register("object_removed")
def object_removed(image: np.ndarray, *, scene=None, rng: np.random.Generator | None = None,
                   index: int | None = None) -> np.ndarray:
    """The ShapeWorld scene with one object removed and re-rendered (`shapes.remove_object`): object
    `index`, or one drawn uniformly by `rng`. A scene with no object is returned unchanged."""
    if scene is None:
        raise ValueError("the object_removed perturbation needs the ShapeWorld scene of every image (pass scenes=...)")
    from workbench.tasks.shapes import remove_object, render

    if len(scene.shapes) == 0:
        return render(scene).image
    rng = rng if rng is not None else np.random.default_rng(0)
    k = int(rng.integers(len(scene.shapes))) if index is None else index
    return remove_object(scene, k).image


def perturb_images(name: str, images: Sequence[np.ndarray], *, scenes: Sequence | None = None, seed: int = 0,
                   **kwargs) -> list[np.ndarray | None]:
    """Apply perturbation `name` to each image; image i draws from `numpy.random.default_rng([seed, i])`."""
    fn = IMAGE_PERTURBATIONS.get(name)
    if scenes is not None and len(scenes) != len(images):
        raise ValueError(f"got {len(images)} images but {len(scenes)} scenes")
    return [fn(np.asarray(img), scene=None if scenes is None else scenes[i], rng=np.random.default_rng([seed, i]),
               **kwargs) for i, img in enumerate(images)]


def score_with_images(model, processor, questions: Sequence[str], images: Sequence, completion_ids: Tensor,
                      completion_mask: Tensor, *, with_entropy: bool = False,
                      temperature: float = 1.0) -> tuple[Tensor, Tensor | None]:
    """log π(o_t | image, question, o_<t) of given responses, each row with its own image (None: no image).

    Args:
        questions: B raw question strings (each is wrapped by `format_vl_prompt`, with or without the image).
        images: B images [H, W, 3] uint8, or None for the image-removed prompt.
        completion_ids, completion_mask: [B, T] right-padded responses.

    Returns:
        (logp [B, T], entropy [B, T] or None), zero where `completion_mask` is 0.
    """
    if len(questions) != len(images) or len(questions) != completion_ids.size(0):
        raise ValueError(f"got {len(questions)} questions, {len(images)} images and {completion_ids.size(0)} responses")
    device = next(model.parameters()).device
    prompts = [format_vl_prompt(q, processor, with_image=img is not None) for q, img in zip(questions, images)]
    enc = encode_vl_prompts(processor, prompts, list(images), device=device)
    ids, mask = enc.pop("input_ids"), enc.pop("attention_mask")
    vision = enc if "image_grid_thw" in enc else {}  # text-only batch: the text path's explicit positions
    with torch.no_grad():
        return completion_logprobs(model, ids, mask, completion_ids.to(device), completion_mask.to(device),
                                   with_entropy=with_entropy, temperature=temperature, **vision)


@dataclass
class VisualDependency:
    """Scores of the same responses under the original and perturbed images.

    Attributes:
        logp: [B, T] log π(o_t | I, q); entropy: [B, T] H_t under I (or None); mask: [B, T].
        perturbed_logp: variant name -> [B, T] log π(o_t | I', q).
    """

    logp: Tensor
    entropy: Tensor | None
    mask: Tensor
    perturbed_logp: dict[str, Tensor] = field(default_factory=dict)

    def delta(self, variant: str) -> Tensor:
        """Signed Δ_t = log π(o_t | I, q) − log π(o_t | I', q): [B, T], 0 on padding."""
        if variant not in self.perturbed_logp:
            raise KeyError(f"no perturbation {variant!r} was scored; scored: {', '.join(self.perturbed_logp)}")
        return (self.logp - self.perturbed_logp[variant]) * self.mask

    def dependency(self, variant: str) -> Tensor:
        """Visual dependency |Δ_t|: [B, T], 0 on padding."""
        return self.delta(variant).abs()


def visual_dependency(model, processor, questions: Sequence[str], images: Sequence, completion_ids: Tensor,
                      completion_mask: Tensor, *, variants: Sequence[str] | Mapping[str, Sequence] = ("removed",),
                      scenes: Sequence | None = None, seed: int = 0, with_entropy: bool = True,
                      temperature: float = 1.0, **perturb_kwargs) -> VisualDependency:
    """Per-token visual dependency of responses (ToR, arXiv 2603.25077).

    Scores the responses once with the original `images` and once per variant; a variant is a
    registered perturbation name (applied by `perturb_images` with `scenes`, `seed`, `perturb_kwargs`)
    or, in a mapping, name -> explicit counterfactual images (None entries mean no image).

    Returns:
        `VisualDependency` with logp, entropy and every variant's logp, all [B, T].
    """
    logp, entropy = score_with_images(model, processor, questions, images, completion_ids, completion_mask,
                                      with_entropy=with_entropy, temperature=temperature)
    named = variants.items() if isinstance(variants, Mapping) else (
        (v, perturb_images(v, images, scenes=scenes, seed=seed, **perturb_kwargs)) for v in variants)
    result = VisualDependency(logp=logp, entropy=entropy, mask=completion_mask.to(logp.device).to(logp.dtype))
    for name, alt in named:
        result.perturbed_logp[name], _ = score_with_images(model, processor, questions, list(alt), completion_ids,
                                                           completion_mask, temperature=temperature)
    return result


@dataclass
class TokenTypes:
    """ToR token types: `perception` and `reasoning` [B, T] bool (both can hold), `mask` [B, T] bool."""

    perception: Tensor
    reasoning: Tensor
    mask: Tensor

    @property
    def labels(self) -> Tensor:
        """[B, T] long: 0 neither, 1 perception only, 2 reasoning only, 3 both (`TOKEN_TYPES`); −1 on padding."""
        lab = self.perception.long() + 2 * self.reasoning.long()
        return lab.masked_fill(~self.mask, -1)

    def fractions(self) -> dict[str, float]:
        """Share of valid tokens of each type (0.0 each when there is no valid token)."""
        n = max(int(self.mask.sum()), 1)
        return {name: float((self.labels == i).sum()) / n for i, name in enumerate(TOKEN_TYPES)}


def classify_tokens(dependency: Tensor, entropy: Tensor, mask: Tensor, *, perception_frac: float = 0.3,
                    reasoning_frac: float = 0.3) -> TokenTypes:
    """ToR's split (arXiv 2603.25077): T_p = top `perception_frac` of valid tokens by |dependency|,
    T_r = top `reasoning_frac` by entropy, each with one threshold over the whole batch
    (`workbench.analysis.token_stats.top_fraction_mask`; ties at the threshold all count).

    Args:
        dependency, entropy, mask: [B, T].
    """
    if dependency.shape != mask.shape or entropy.shape != mask.shape:
        raise ValueError(f"dependency {tuple(dependency.shape)}, entropy {tuple(entropy.shape)} and mask "
                         f"{tuple(mask.shape)} must have the same shape")
    valid = mask.bool()
    return TokenTypes(perception=top_fraction_mask(dependency.abs(), valid, perception_frac),
                      reasoning=top_fraction_mask(entropy, valid, reasoning_frac), mask=valid)


# --------------------------------------------------------------------------------------- attention
@contextlib.contextmanager
def eager_attention(model):
    """Temporarily switch `model` to eager attention (the only kind that returns attention weights)."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(previous)


@dataclass
class ImageAttention:
    """Attention of response tokens to the image tokens, averaged over the chosen layers and heads.

    Attributes:
        patch_weights: [B, T, N] attention a_{q(t), k} to each of the N image tokens (row-major over the
            merged patch grid); q(t) = P − 1 + t is the position that predicts response token o_t.
        image_mass: [B, T] Σ_k patch_weights (share of attention on the image), 0 on padding.
        grid: (rows, cols) of the merged patch grid.
        mask: [B, T] bool.
    """

    patch_weights: Tensor
    image_mass: Tensor
    grid: tuple[int, int]
    mask: Tensor

    def heatmap(self, row: int, token: int) -> np.ndarray:
        """[rows, cols] attention of response token `token` of row `row` over the patch grid."""
        if not (0 <= row < self.mask.size(0) and 0 <= token < self.mask.size(1)):
            raise ValueError(f"(row, token) = ({row}, {token}) is outside the [B, T] = {tuple(self.mask.shape)} batch")
        return self.patch_weights[row, token].reshape(self.grid).cpu().numpy()


@torch.no_grad()
def image_attention(model, processor, questions: Sequence[str], images: Sequence, completion_ids: Tensor,
                    completion_mask: Tensor, *, layers: Sequence[int] | None = None) -> ImageAttention:
    """Per-token attention on the image: weights over image tokens, averaged over `layers` (default all)
    and all heads: w_{t,k} = mean_{l, h} A^{l,h}[P − 1 + t, k] for image token k.

    Every row must hold one image with the same patch grid (e.g. 112 px ShapeWorld, 4 × 4 = 16 tokens).
    """
    if any(img is None for img in images):
        raise ValueError("image_attention needs an image in every row (got None)")
    device = next(model.parameters()).device
    enc = encode_vl_prompts(processor, [format_vl_prompt(q, processor) for q in questions], list(images), device=device)
    grids = enc["image_grid_thw"]
    if grids.size(0) != len(questions) or not bool((grids == grids[:1]).all()):
        raise ValueError(f"image_attention needs exactly one image per row, all with one patch grid; "
                         f"got grids {grids.tolist()}")
    ids, mask = enc.pop("input_ids"), enc.pop("attention_mask")
    P, T = ids.size(1), completion_ids.size(1)
    types = torch.cat([enc.pop("mm_token_type_ids"), torch.zeros_like(completion_ids, device=device)], 1)
    with eager_attention(model):
        out = model(input_ids=torch.cat([ids, completion_ids.to(device)], 1),
                    attention_mask=torch.cat([mask, completion_mask.to(device)], 1), mm_token_type_ids=types,
                    output_attentions=True, use_cache=False, **enc)
    chosen = range(len(out.attentions)) if layers is None else layers
    attn = torch.stack([out.attentions[i].float() for i in chosen]).mean(dim=(0, 2))  # [B, L, L]
    queries = attn[:, P - 1:P - 1 + T]  # [B, T, L]
    is_image = ids == model.config.image_token_id  # [B, P]
    n_img = int(is_image[0].sum())
    keys = is_image.nonzero()[:, 1].view(len(questions), n_img)  # [B, N] positions of the image tokens
    weights = queries.gather(2, keys[:, None, :].expand(-1, T, -1))
    cmask = completion_mask.to(device).bool()
    weights = weights * cmask[..., None]
    merge = model.config.vision_config.spatial_merge_size
    grid = (int(grids[0, 1]) // merge, int(grids[0, 2]) // merge)
    return ImageAttention(patch_weights=weights, image_mass=weights.sum(-1), grid=grid, mask=cmask)
