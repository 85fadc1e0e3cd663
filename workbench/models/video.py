"""Video input for the tiny Qwen2.5-VL: frames through the model's video path (`pixel_values_videos`,
`video_grid_thw`), with the frame count and the frame size as parameters.

    enc = encode_video_prompts(processor, [format_video_prompt("Frames 0,2,4,6. Rate the motion.", processor)],
                               [frames])                    # frames: [F, H, W, 3] uint8
    gen = sample(model, processor, input_ids=enc.pop("input_ids"), attention_mask=enc.pop("attention_mask"), **enc)

The vision tower embeds `temporal_patch_size` (2) consecutive frames into one patch: F frames of H×W pixels
become a grid (t, h, w) = (⌈F / 2⌉, H / 14, W / 14) of patches (an odd last frame is repeated, as Qwen2-VL does)
and t·h·w / merge² `<|video_pad|>` tokens in the prompt (8 frames at 112 px: 4 × 16 = 64 tokens; with
`repeat_frames=2` every frame fills a temporal patch of its own: 8 × 16 = 128 tokens), laid out
time-major, then row-major over the merged grid. Their modality id is 2, which M-RoPE spaces in time by
`tokens_per_second` per temporal patch.

`patchify_frames` is the Qwen2-VL patch layout written out: pixels rescaled by 1/255, normalised by the image
processor's mean/std, cut into [t, 2, 3, h/m, m, 14, w/m, m, 14] and flattened patch-major — the same layout the
image path uses, so two identical frames give exactly the image processor's patches of that frame (a test checks).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from workbench.models.scoring import modality_ids
from workbench.models.tokenizer import ASSISTANT, USER

VIDEO_PROMPT = "<|vision_start|><|video_pad|><|vision_end|>"


def patchify_frames(frames: np.ndarray, image_processor, repeat: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames [F, H, W, 3] uint8 -> (pixel_values_videos [t·h·w, 3·T_p·P·P] float32, video_grid_thw [1, 3] long).

    H and W must be multiples of patch_size · merge_size (28 for the tiny model); frames are not resized.
    `repeat` = T_p (2) repeats every frame so that one temporal patch holds one frame (t = F: twice the tokens,
    each frame perceived on its own, as an image is); 1 is Qwen2-VL's own video layout (two frames per patch).
    Raises ValueError naming the bad shape."""
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
        raise ValueError(f"frames must be [F, H, W, 3] with F >= 1, got shape {arr.shape}")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be an integer >= 1, got {repeat!r}")
    if repeat > 1:
        arr = np.repeat(arr, repeat, 0)
    P, m, Tp = image_processor.patch_size, image_processor.merge_size, image_processor.temporal_patch_size
    F, H, W, _ = arr.shape
    if H % (P * m) or W % (P * m):
        raise ValueError(f"frame size {H}x{W} must be a multiple of patch_size*merge_size={P * m}")
    if F % Tp:
        arr = np.concatenate([arr, np.repeat(arr[-1:], Tp - F % Tp, 0)], 0)
    x = arr.astype(np.float64) * image_processor.rescale_factor
    x = (x - np.asarray(image_processor.image_mean)) / np.asarray(image_processor.image_std)
    x = x.transpose(0, 3, 1, 2)  # [F, 3, H, W]
    t, h, w = x.shape[0] // Tp, H // P, W // P
    x = x.reshape(t, Tp, 3, h // m, m, P, w // m, m, P)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)  # t, h/m, w/m, m, m, C, Tp, P, P
    flat = x.reshape(t * h * w, 3 * Tp * P * P)
    return torch.from_numpy(flat.astype(np.float32)), torch.tensor([[t, h, w]], dtype=torch.long)


def video_tokens(grid_thw: torch.Tensor, merge_size: int) -> int:
    """Number of `<|video_pad|>` tokens a video of grid (t, h, w) takes: t·h·w / merge²."""
    t, h, w = (int(v) for v in grid_thw.reshape(-1)[:3])
    return t * h * w // merge_size**2


def format_video_prompt(question: str, processor=None) -> str:
    """The chat prompt of one user turn with a video before the question, ending where the response begins:
    `<|user|><|vision_start|><|video_pad|><|vision_end|>{question}<|assistant|>` (a real checkpoint's own
    chat template when its processor has one)."""
    template = getattr(processor, "chat_template", None) if processor is not None else None
    if template and "video" in template:
        content = [{"type": "video"}, {"type": "text", "text": question}]
        return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                             tokenize=False)
    return f"{USER}{VIDEO_PROMPT}{question}{ASSISTANT}"


def encode_video_prompts(processor, texts: Sequence[str], videos: Sequence, *, padding_side: str = "left",
                         repeat_frames: int = 1, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Tokenise prompts with one video each (its placeholder expanded to the video's token count).

    Args:
        texts: B prompts, each with exactly one `<|video_pad|>` (see `format_video_prompt`).
        videos: B frame arrays [F_b, H, W, 3] uint8 (frame counts may differ between prompts).
        padding_side: "left" for generation and scoring, "right" for training.
        repeat_frames: `patchify_frames`' `repeat` (2: one frame per temporal patch).

    Returns:
        dict with `input_ids`, `attention_mask`, `mm_token_type_ids` (2 on video tokens) [B, L],
        `pixel_values_videos` [Σ patches, D] and `video_grid_thw` [B, 3] (videos in prompt order).
    """
    if len(texts) == 0:
        raise ValueError("no prompts given")
    if len(videos) != len(texts):
        raise ValueError(f"got {len(texts)} prompts but {len(videos)} videos")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    token = processor.video_token
    merge = processor.image_processor.merge_size
    pixels, grids, expanded = [], [], []
    for i, (text, frames) in enumerate(zip(texts, videos)):
        if text.count(token) != 1:
            raise ValueError(f"prompt {i} has {text.count(token)} {token} placeholders, a video prompt needs exactly one")
        pv, grid = patchify_frames(frames, processor.image_processor, repeat_frames)
        pixels.append(pv)
        grids.append(grid)
        expanded.append(text.replace(token, token * video_tokens(grid, merge)))
    tok = processor.tokenizer
    side, tok.padding_side = tok.padding_side, padding_side
    try:
        enc = tok(expanded, padding=True, return_tensors="pt", add_special_tokens=False)
    finally:
        tok.padding_side = side
    out = {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device),
           "pixel_values_videos": torch.cat(pixels).to(device), "video_grid_thw": torch.cat(grids).to(device)}
    out["mm_token_type_ids"] = modality_ids(out["input_ids"], processor.image_token_id, processor.video_token_id)
    return out
