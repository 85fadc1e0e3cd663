"""The tiny VLM spine: processor, prompt encoding, forward, generation and scoring through the text code."""

import numpy as np
import pytest
import torch
from transformers import AutoProcessor

from workbench.models.generation import repeat_model_inputs, sample
from workbench.models.scoring import completion_logprobs, modality_ids, vision_token_types
from workbench.models.vlm import (VISION_PROMPT, WorkbenchVLProcessor, build_tiny_vlm, encode_vl_prompts,
                                  format_vl_example, format_vl_prompt)
from workbench.train.batches import collate_vl_sft


def _encode(processor, examples, questions=None):
    questions = questions or [e.prompt for e in examples]
    prompts = [format_vl_prompt(q, processor) for q in questions]
    return encode_vl_prompts(processor, prompts, [e.image for e in examples])


def test_112px_image_gives_16_image_tokens(processor, examples):
    enc = _encode(processor, examples[:1])
    assert enc["image_grid_thw"].tolist() == [[1, 8, 8]]  # 8 × 8 patches of 14 px, merged 2 × 2 -> 16 tokens
    assert tuple(enc["pixel_values"].shape) == (64, 3 * 2 * 14 * 14)
    is_image = enc["input_ids"] == processor.image_token_id
    assert int(is_image.sum()) == 16
    assert torch.equal(enc["mm_token_type_ids"], is_image.long())
    assert format_vl_prompt("q", processor) == f"<|user|>{VISION_PROMPT}q<|assistant|>"
    assert format_vl_prompt("q", processor, with_image=False) == "<|user|>q<|assistant|>"


def test_modality_ids_from_the_processor_match_the_models_own():
    ids = torch.tensor([[5, 9, 9, 7, 8, 0]])
    assert modality_ids(ids, 9, 7).tolist() == [[0, 1, 1, 2, 0, 0]]
    assert modality_ids(ids, 9).tolist() == [[0, 1, 1, 0, 0, 0]]
    assert modality_ids(ids, None) is None


def test_prompt_modality_ids_equal_the_ones_scoring_derives(vlm, processor, examples):
    enc = _encode(processor, examples[:3])
    assert enc["mm_token_type_ids"].sum() > 0
    assert torch.equal(enc["mm_token_type_ids"], vision_token_types(vlm, enc["input_ids"]))


def test_processor_round_trip(processor, examples, tmp_path):
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, WorkbenchVLProcessor)
    a, b = _encode(processor, examples), _encode(loaded, examples)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    text = format_vl_prompt(examples[0].prompt, processor)
    ids = a["input_ids"][0][a["attention_mask"][0].bool()]
    assert processor.tokenizer.decode(ids) == text.replace("<|image_pad|>", "<|image_pad|>" * 16)


def test_left_padding_and_bad_input(processor, examples):
    enc = _encode(processor, examples[:2], questions=["How many circles?", "How many red shapes times circles?"])
    assert enc["attention_mask"][0, 0] == 0 and enc["attention_mask"][:, -1].all()
    prompt = format_vl_prompt("q", processor)
    with pytest.raises(ValueError, match="placeholders"):
        encode_vl_prompts(processor, [prompt], [None])
    with pytest.raises(ValueError, match="image entries"):
        encode_vl_prompts(processor, [prompt, prompt], [examples[0].image])
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        encode_vl_prompts(processor, [prompt], [np.zeros((112, 112), np.uint8)])


def test_sft_collate_masks_prompt_and_image(processor, examples):
    pairs = [format_vl_example(e.prompt, e.target, processor) for e in examples]
    batch = collate_vl_sft(processor, [p for p, _ in pairs], [c for _, c in pairs], [e.image for e in examples])
    for i, (_, completion) in enumerate(pairs):
        kept = batch["labels"][i][batch["labels"][i] != -100]
        assert processor.tokenizer.decode(kept) == completion
    assert batch["attention_mask"][:, 0].all()  # right padding for training


def test_padding_does_not_change_scores(vlm, processor, examples):
    """Each row scored in a left-padded batch equals the row scored alone (exact M-RoPE positions)."""
    questions = ["How many circles?", "How many red shapes times circles?"]
    completion = torch.tensor([[20, 21, 22, 1], [23, 24, 1, 0]])  # characters, then EOS (1)
    cmask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    enc = _encode(processor, examples[:2], questions)
    ids, mask = enc.pop("input_ids"), enc.pop("attention_mask")
    batched, _ = completion_logprobs(vlm, ids, mask, completion, cmask, **enc)
    for i in range(2):
        one = _encode(processor, examples[i:i + 1], questions[i:i + 1])
        ids1, mask1 = one.pop("input_ids"), one.pop("attention_mask")
        alone, _ = completion_logprobs(vlm, ids1, mask1, completion[i:i + 1], cmask[i:i + 1], **one)
        torch.testing.assert_close(batched[i:i + 1], alone, atol=1e-5, rtol=1e-5)


def test_greedy_generation_agrees_with_scoring(vlm, processor, examples):
    """sample() routes images through model.generate; a forward pass on prompt + completion must pick the
    same greedy tokens, and completion_logprobs must equal its log-softmax (float64 reference)."""
    enc = _encode(processor, examples)
    ids, mask = enc.pop("input_ids"), enc.pop("attention_mask")
    gen = sample(vlm, processor, input_ids=ids, attention_mask=mask, greedy=True, max_new_tokens=6, **enc)
    logp, _ = completion_logprobs(vlm, gen.prompt_ids, gen.prompt_mask, gen.completion_ids, gen.completion_mask, **enc)
    P, T = ids.size(1), gen.completion_ids.size(1)
    types = torch.cat([enc["mm_token_type_ids"], torch.zeros_like(gen.completion_ids)], 1)
    with torch.no_grad():
        logits = vlm(input_ids=torch.cat([ids, gen.completion_ids], 1), mm_token_type_ids=types,
                     attention_mask=torch.cat([mask, gen.completion_mask], 1), pixel_values=enc["pixel_values"],
                     image_grid_thw=enc["image_grid_thw"]).logits[:, P - 1:P + T - 1].double()
    m = gen.completion_mask.bool()
    assert torch.equal(logits.argmax(-1)[m], gen.completion_ids[m])
    ref = logits.log_softmax(-1).gather(-1, gen.completion_ids[..., None]).squeeze(-1) * m
    torch.testing.assert_close(logp.double(), ref, atol=1e-5, rtol=1e-5)


def test_num_samples_repeats_each_prompts_image(vlm, processor, examples):
    """With G samples per prompt, row b·G + g must see prompt b's image (greedy rows equal the single run)."""
    enc = _encode(processor, examples[:2])
    ids, mask = enc.pop("input_ids"), enc.pop("attention_mask")
    one = sample(vlm, processor, input_ids=ids, attention_mask=mask, greedy=True, max_new_tokens=5, **enc)
    two = sample(vlm, processor, input_ids=ids, attention_mask=mask, greedy=True, max_new_tokens=5, num_samples=2,
                 **enc)
    assert torch.equal(two.completion_ids, one.completion_ids.repeat_interleave(2, 0))
    g = torch.Generator().manual_seed(0)
    drawn = sample(vlm, processor, input_ids=ids, attention_mask=mask, max_new_tokens=5, num_samples=3, generator=g,
                   **enc)
    assert drawn.completion_ids.shape[0] == 6 and len(drawn.texts) == 6
    # scoring the G samples: repeat_model_inputs gives row b·G + g prompt b's image
    logp, _ = completion_logprobs(vlm, drawn.prompt_ids, drawn.prompt_mask, drawn.completion_ids,
                                  drawn.completion_mask, **repeat_model_inputs(vlm, enc, ids, 3))
    for row in (1, 4):
        b = row // 3
        one = {k: v for k, v in _encode(processor, examples[b:b + 1]).items()}
        alone, _ = completion_logprobs(vlm, one.pop("input_ids"), one.pop("attention_mask"),
                                       drawn.completion_ids[row:row + 1], drawn.completion_mask[row:row + 1], **one)
        torch.testing.assert_close(logp[row:row + 1], alone, atol=1e-5, rtol=1e-5)


def test_text_only_prompt_uses_text_path(vlm, processor):
    """A VLM with no image inputs goes through the lean text decode loop."""
    gen = sample(vlm, processor.tokenizer, [format_vl_prompt("How many?", processor, with_image=False)], greedy=True,
                 max_new_tokens=4)
    assert gen.completion_ids.shape == (1, 4) or bool(gen.completion_ids[0, -1] == processor.eos_token_id)



def test_merger_gain_scales_only_the_merger_weights(processor):
    kw = dict(text_hidden=64, text_layers=1, text_heads=2, text_kv_heads=1, vision_hidden=32, vision_heads=2)
    base, gained = build_tiny_vlm(processor, seed=1, **kw), build_tiny_vlm(processor, seed=1, merger_gain=3.0, **kw)
    scaled = {"model.visual.merger.mlp.0.weight", "model.visual.merger.mlp.2.weight"}
    for (name, a), (_, b) in zip(base.named_parameters(), gained.named_parameters()):
        torch.testing.assert_close(b, 3.0 * a if name in scaled else a, msg=name)
