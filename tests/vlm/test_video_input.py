"""Video input of the tiny Qwen2.5-VL: the patch layout against the image processor (the peer), token counts,
per-row exactness of batched prompts, and videos repeated per sample in generation."""

import numpy as np
import pytest
import torch

from workbench.models.generation import repeat_model_inputs, sample
from workbench.models.scoring import completion_logprobs
from workbench.models.video import encode_video_prompts, format_video_prompt, patchify_frames


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (6, 112, 112, 3)).astype(np.uint8)


def test_two_equal_frames_are_the_image_processors_patches(processor, frames):
    ip = processor.image_processor
    ref = ip(images=[frames[0]], return_tensors="pt")
    pv, grid = patchify_frames(np.stack([frames[0], frames[0]]), ip)
    assert grid.tolist() == ref["image_grid_thw"].tolist() == [[1, 8, 8]]
    torch.testing.assert_close(pv, ref["pixel_values"].float(), atol=1e-5, rtol=0)


def test_frame_layout_odd_counts_and_repeat(processor, frames):
    ip = processor.image_processor
    pv, grid = patchify_frames(frames[:3], ip)
    assert grid.tolist() == [[2, 8, 8]]
    padded, _ = patchify_frames(np.concatenate([frames[:3], frames[2:3]]), ip)
    torch.testing.assert_close(pv, padded)  # an odd last frame is repeated
    rep, grid = patchify_frames(frames[:2], ip, repeat=2)
    assert grid.tolist() == [[2, 8, 8]]
    torch.testing.assert_close(rep[:64], patchify_frames(np.stack([frames[0]] * 2), ip)[0])
    with pytest.raises(ValueError, match="multiple of"):
        patchify_frames(frames[:, :100], ip)
    with pytest.raises(ValueError, match=r"\[F, H, W, 3\]"):
        patchify_frames(frames[0], ip)


def test_prompt_tokens_and_modality_ids(processor, frames):
    enc = encode_video_prompts(processor, [format_video_prompt("a", processor), format_video_prompt("bbb", processor)],
                               [frames[:4], frames[:2]], repeat_frames=2)
    n_video = (enc["input_ids"] == processor.video_token_id).sum(1).tolist()
    assert n_video == [64, 32] and enc["video_grid_thw"].tolist() == [[4, 8, 8], [2, 8, 8]]
    assert ((enc["mm_token_type_ids"] == 2) == (enc["input_ids"] == processor.video_token_id)).all()
    with pytest.raises(ValueError, match="exactly one"):
        encode_video_prompts(processor, ["no video here"], [frames[:2]])


def test_batched_video_prompts_score_as_single_ones(vlm, processor, frames):
    texts = [format_video_prompt("a", processor), format_video_prompt("bbbb", processor)]
    videos = [frames[:4], frames[2:4]]
    completion = torch.tensor([processor.tokenizer("xyz", add_special_tokens=False)["input_ids"]] * 2)
    mask = torch.ones_like(completion)
    enc = encode_video_prompts(processor, texts, videos)
    ids, am = enc.pop("input_ids"), enc.pop("attention_mask")
    both, _ = completion_logprobs(vlm, ids, am, completion, mask, **enc)
    for i in range(2):
        one = encode_video_prompts(processor, texts[i : i + 1], videos[i : i + 1])
        oi, oa = one.pop("input_ids"), one.pop("attention_mask")
        single, _ = completion_logprobs(vlm, oi, oa, completion[i : i + 1], mask[i : i + 1], **one)
        torch.testing.assert_close(both[i], single[0], atol=1e-5, rtol=1e-4)


def test_videos_are_repeated_per_sample_in_prompt_order(vlm, processor, frames):
    enc = encode_video_prompts(processor, [format_video_prompt("a", processor), format_video_prompt("b", processor)],
                               [frames[:4], frames[4:6]])
    rep = repeat_model_inputs(vlm, {k: v for k, v in enc.items() if k != "attention_mask" and k != "input_ids"},
                              enc["input_ids"], 2)
    assert rep["video_grid_thw"].tolist() == [[2, 8, 8], [2, 8, 8], [1, 8, 8], [1, 8, 8]]
    torch.testing.assert_close(rep["pixel_values_videos"][:128], enc["pixel_values_videos"][:128])
    torch.testing.assert_close(rep["pixel_values_videos"][128:256], enc["pixel_values_videos"][:128])
    torch.testing.assert_close(rep["pixel_values_videos"][256:320], enc["pixel_values_videos"][128:])
    ids, am = enc.pop("input_ids"), enc.pop("attention_mask")
    gen = sample(vlm, processor, input_ids=ids, attention_mask=am, num_samples=2, max_new_tokens=4,
                 generator=torch.Generator().manual_seed(0), **enc)
    assert len(gen.texts) == 4
