"""The tiny vision-language model: a `Qwen2_5_VLForConditionalGeneration` built from a config, its
offline processor and prompt encoding with images (its zoo recipes live in `workbench.recipes.shapes_vl`).

    processor = build_processor()                       # char tokenizer + Qwen2-VL image processor
    model = Qwen2_5_VLForConditionalGeneration(tiny_vl_config(processor.tokenizer))
    enc = encode_vl_prompts(processor, [format_vl_prompt("How many circles?", processor)], [image])
    gen = sample(model, processor, input_ids=enc.pop("input_ids"), attention_mask=enc.pop("attention_mask"), **enc)
    # G samples per prompt: score them with `repeat_model_inputs(model, enc, prompt_ids, G)` (generation.py)

A 112×112 image is cut into 8×8 patches of 14 px; the merger joins 2×2 patches, so the language
model sees 16 `<|image_pad|>` tokens per image (placed between `<|vision_start|>` and
`<|vision_end|>`) laid out row-major over the 4×4 merged grid. `mm_token_type_ids` (1 on image
tokens) lets the model build its 3-D multimodal rotary positions (M-RoPE); pass it with every call.

The processor subclasses `Qwen2_5_VLProcessor` without a video processor, because transformers'
video processors need torchvision, which the workbench does not install; it saves and reloads with
`AutoProcessor` once this module is imported (`load_model` imports it for a checkpoint with a vision config). A real Qwen2.5-VL checkpoint
keeps its own processor class (which does need torchvision in transformers ≥ 5).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from transformers import (AutoProcessor, PretrainedConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                          Qwen2_5_VLProcessor)

from workbench.models.scoring import modality_ids
from workbench.models.tokenizer import ASSISTANT, EOS, USER, build_tokenizer, check_chat_format

IMAGE_SIZE, PATCH_SIZE, MERGE_SIZE = 112, 14, 2
VISION_PROMPT = "<|vision_start|><|image_pad|><|vision_end|>"
VL_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% elif m['role'] == 'assistant' %}<|assistant|>{{ m['content'] }}<|endoftext|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _image_processor_class():
    try:  # transformers >= 5 without torchvision: the PIL backend (same outputs)
        from transformers import Qwen2VLImageProcessorPil

        return Qwen2VLImageProcessorPil
    except ImportError:  # transformers 4.x
        from transformers import Qwen2VLImageProcessor

        return Qwen2VLImageProcessor


class WorkbenchVLProcessor(Qwen2_5_VLProcessor):
    """`Qwen2_5_VLProcessor` with an image processor and a tokenizer only (no video processor).

    It also answers the few tokenizer attributes that `workbench.models.generation.sample` reads
    (`eos_token_id`, `pad_token_id`, `batch_decode`), so a processor can stand in for a tokenizer.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super(Qwen2_5_VLProcessor, self).__init__(image_processor, tokenizer, chat_template=chat_template)
        self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)

    @property
    def eos_token_id(self) -> int:
        """The tokenizer's end-of-sequence id."""
        return self.tokenizer.eos_token_id

    @property
    def pad_token_id(self) -> int:
        """The tokenizer's padding id."""
        return self.tokenizer.pad_token_id


class _ProcessorKey(PretrainedConfig):  # registry key only: AutoProcessor finds processors by class name
    model_type = "workbench_vl_processor"


AutoProcessor.register(_ProcessorKey, WorkbenchVLProcessor, exist_ok=True)


def load_vl_processor(path: str) -> WorkbenchVLProcessor:
    """The processor of a local Qwen2.5-VL folder, as a `WorkbenchVLProcessor`.

    A zoo folder loads through `AutoProcessor`. A downloaded one names transformers' `Qwen2_5_VLProcessor`,
    whose loader also builds a video processor that needs torchvision (not installed here, and
    `workbench.models.video` patchifies frames itself): its image processor, tokenizer and chat template
    (`chat_template.json` / `.jinja`, else the tokenizer's) are loaded one by one instead, and nothing
    else of the folder is used.
    """
    import json
    import os

    from transformers import AutoImageProcessor, AutoTokenizer

    classes = set()
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(path, name)):
            with open(os.path.join(path, name)) as f:
                classes.add(json.load(f).get("processor_class"))
    if WorkbenchVLProcessor.__name__ in classes:
        return AutoProcessor.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    template = tokenizer.chat_template
    if os.path.exists(os.path.join(path, "chat_template.jinja")):
        with open(os.path.join(path, "chat_template.jinja")) as f:
            template = f.read()
    elif os.path.exists(os.path.join(path, "chat_template.json")):
        with open(os.path.join(path, "chat_template.json")) as f:
            template = json.load(f)["chat_template"]
    if not template:
        raise ValueError(f"{path} has no chat template (chat_template.json, chat_template.jinja or the tokenizer's): "
                         "the prompts of a real checkpoint are built with its own template")
    return WorkbenchVLProcessor(image_processor=AutoImageProcessor.from_pretrained(path), tokenizer=tokenizer,
                                chat_template=template)


def build_processor(image_size: int = IMAGE_SIZE, patch_size: int = PATCH_SIZE, merge_size: int = MERGE_SIZE):
    """The offline processor: `build_tokenizer()` + a Qwen2-VL image processor resizing every image to
    `image_size`² pixels, i.e. (image_size / (patch_size · merge_size))² image tokens (16 at 112 px).

    Raises ValueError when `image_size` is not a multiple of `patch_size · merge_size`."""
    factor = patch_size * merge_size
    if image_size <= 0 or image_size % factor:
        raise ValueError(f"image_size must be a positive multiple of patch_size*merge_size={factor}, got {image_size}")
    pixels = image_size * image_size
    image_processor = _image_processor_class()(min_pixels=pixels, max_pixels=pixels, patch_size=patch_size,
                                               merge_size=merge_size, temporal_patch_size=2)
    return WorkbenchVLProcessor(image_processor=image_processor, tokenizer=build_tokenizer(),
                                chat_template=VL_CHAT_TEMPLATE)


def tiny_vl_config(tokenizer, *, text_hidden: int = 128, text_layers: int = 2, text_heads: int = 4,
                   text_kv_heads: int = 2, vision_hidden: int = 64, vision_depth: int = 2, vision_heads: int = 4,
                   patch_size: int = PATCH_SIZE, merge_size: int = MERGE_SIZE,
                   max_positions: int = 1024) -> Qwen2_5_VLConfig:
    """Config of a tiny Qwen2.5-VL whose special-token ids come from `tokenizer`.

    The text model's M-RoPE sections split the head's rotary half-dimension d/2 into (t, h, w)
    parts in Qwen's 1 : 1.5 : 1.5 ratio; the vision window (window_size px) spans a whole 112 px
    image, so window attention equals full attention at this size.
    """
    head_dim = text_hidden // text_heads
    if text_hidden % text_heads or head_dim % 8:
        raise ValueError(f"text_hidden/text_heads must be a multiple of 8, got {text_hidden}/{text_heads}")
    half = head_dim // 2
    sections = [half // 4, (half - half // 4) // 2, half - half // 4 - (half - half // 4) // 2]
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    special = dict(bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    text = dict(vocab_size=(len(tokenizer) + 63) // 64 * 64, hidden_size=text_hidden, intermediate_size=3 * text_hidden,
                num_hidden_layers=text_layers, num_attention_heads=text_heads, num_key_value_heads=text_kv_heads,
                max_position_embeddings=max_positions,
                rope_parameters={"rope_type": "default", "mrope_section": sections, "rope_theta": 10000.0}, **special)
    vision = dict(depth=vision_depth, hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                  num_heads=vision_heads, patch_size=patch_size, spatial_merge_size=merge_size, temporal_patch_size=2,
                  window_size=IMAGE_SIZE, out_hidden_size=text_hidden, fullatt_block_indexes=[vision_depth - 1])
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)


def build_tiny_vlm(processor, seed: int = 0, merger_gain: float = 1.0,
                   **config_kw) -> Qwen2_5_VLForConditionalGeneration:
    """A randomly initialised tiny Qwen2.5-VL (seeded) whose generation config knows EOS and PAD.

    `merger_gain` multiplies both Linear weights of the vision merger after init (image-token
    embeddings scale by gain²). With the default 0.02 init image tokens enter the language model
    ~3× smaller than text embeddings, and on ShapeWorld counting the model ignores them for ~600
    SFT steps; gain 5 brings the onset of visual learning down to ~150 steps (measured).
    """
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(tiny_vl_config(processor.tokenizer, **config_kw))
    with torch.no_grad():
        for layer in model.model.visual.merger.mlp:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(merger_gain)
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    return model.eval()


def format_vl_prompt(question: str, processor=None, with_image: bool = True) -> str:
    """The chat prompt for one user turn with an image before the question, ending where the response
    begins. Uses `processor.chat_template` when it has one (a real checkpoint's own format), else
    `<|user|><|vision_start|><|image_pad|><|vision_end|>{question}<|assistant|>`. `with_image=False`
    drops the image placeholder (the "image removed" prompt)."""
    template = getattr(processor, "chat_template", None) if processor is not None else None
    if template:
        content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": question}]
        return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                             tokenize=False)
    return f"{USER}{VISION_PROMPT if with_image else ''}{question}{ASSISTANT}"


def format_vl_example(question: str, response: str, processor=None) -> tuple[str, str]:
    """(prompt with image placeholder, completion ending in EOS) strings for SFT."""
    eos = processor.tokenizer.eos_token if processor is not None else EOS
    return format_vl_prompt(question, processor), response + eos


def _as_rgb(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"an image must be [H, W, 3] RGB, got shape {arr.shape}")
    return arr.astype(np.uint8) if arr.dtype != np.uint8 else arr


def _flatten_images(texts: Sequence[str], images: Sequence, image_token: str) -> list:
    if len(images) != len(texts):
        raise ValueError(f"got {len(texts)} prompts but {len(images)} image entries (use None for no image)")
    flat = []
    for i, (text, img) in enumerate(zip(texts, images)):
        row = [] if img is None else list(img) if isinstance(img, (list, tuple)) else [img]
        if text.count(image_token) != len(row):
            raise ValueError(f"prompt {i} has {text.count(image_token)} {image_token} placeholders "
                             f"but {len(row)} images")
        flat += [_as_rgb(x) for x in row]
    return flat


def encode_vl_prompts(processor, texts: Sequence[str], images: Sequence, *, padding_side: str = "left",
                      device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Tokenise prompts with their images (each placeholder expanded to the image's token count).

    Args:
        texts: B prompts, each with one `<|image_pad|>` per image (see `format_vl_prompt`).
        images: B entries aligned with `texts`: an [H, W, 3] uint8 array (or PIL image), a list of
            them, or None for a text-only prompt.
        padding_side: "left" for generation and scoring, "right" for training.

    Returns:
        dict with `input_ids`, `attention_mask`, `mm_token_type_ids` (1 on image tokens): [B, P];
        and, when any image is given, `pixel_values`: [Σ patches, 3·2·14·14] and `image_grid_thw`:
        [n_images, 3] (images in prompt order).
    """
    if len(texts) == 0:
        raise ValueError("no prompts given")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    check_chat_format(processor.tokenizer, texts)
    flat = _flatten_images(texts, images, processor.image_token)
    tok = processor.tokenizer
    side, tok.padding_side = tok.padding_side, padding_side
    try:
        enc = processor(text=list(texts), images=flat or None, padding=True, return_tensors="pt",
                        add_special_tokens=False)
    finally:
        tok.padding_side = side
    out = {k: enc[k].to(device) for k in ("input_ids", "attention_mask", "pixel_values", "image_grid_thw") if k in enc}
    out["mm_token_type_ids"] = modality_ids(out["input_ids"], processor.image_token_id, getattr(processor, "video_token_id", None))
    return out
