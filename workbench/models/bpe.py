"""A Qwen-shaped byte-level BPE tokenizer and tiny checkpoints built with it, offline.

A real checkpoint differs from the zoo's in ways the zoo's one-character tokenizer hides: numbers are
split into multi-digit pieces, a space belongs to the next word (`Ġ` in the vocabulary), and prompts go
through the checkpoint's own chat template (ChatML for Qwen)::

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n{q}<|im_end|>\\n<|im_start|>assistant\\n

`bpe_tokenizer` trains such a tokenizer with `tokenizers` on synthetic text (nothing is downloaded) and
`save_tiny_qwen2` / `save_tiny_qwen2_vl` write a random-weight checkpoint folder with it, so the
documented "point `model` at a local checkpoint" path runs in tests on a CPU (issue 25, item 17) and
benchmarks can use a 32k vocabulary.
"""

from __future__ import annotations

import os
import random
import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
QWEN_VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
BPE_SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END, *QWEN_VISION_TOKENS]

#: Qwen2's pre-tokenizer split, except that numbers are cut into runs of up to 3 digits (GPT-4/Llama-3
#: style) instead of single digits, so answers like ``answer: 128`` are multi-digit tokens
SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")

#: ChatML as in Qwen2.5's tokenizer_config.json: a default system turn, then each message
CHATML_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def synthetic_corpus(n_lines: int = 4000, seed: int = 0) -> list[str]:
    """Lines of the text the workbench's tasks produce (arithmetic chains, `answer: N`, shape words) plus
    random letter strings, so a large vocabulary has enough distinct pieces to merge."""
    rng = random.Random(seed)
    words = ("answer", "start", "then", "add", "subtract", "multiply", "by", "the", "result", "is", "how", "many",
             "red", "green", "blue", "circle", "square", "triangle", "left", "right", "of", "there", "are", "what")
    lines = []
    for i in range(n_lines):
        if i % 3 == 0:
            a, b = rng.randint(0, 999), rng.randint(0, 999)
            lines.append(f"Compute {a} + {b} - {rng.randint(0, 99)}. {a} + {b} = {a + b}\nanswer: {a + b - 7}")
        elif i % 3 == 1:
            lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) + f" {rng.randint(0, 20)}.")
        else:
            lines.append(" ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
                                  for _ in range(rng.randint(3, 10))))
    return lines


def bpe_tokenizer(vocab_size: int = 1024, *, corpus: list[str] | None = None, seed: int = 0) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer shaped like Qwen2's (same special tokens, ChatML template).

    Args:
        vocab_size: target size including the 256 byte symbols and `BPE_SPECIAL_TOKENS`; the trainer stops
            early when the corpus has no more pairs to merge (`len(tokenizer)` is the size reached).
        corpus: training lines (None: `synthetic_corpus`, grown for vocabularies past 4k).
        seed: seed of the synthetic corpus.

    Returns:
        A `PreTrainedTokenizerFast` with eos `<|im_end|>` (as Qwen2.5-Instruct), pad `<|endoftext|>`, no
        unknown token (byte-level: every string encodes), right padding (Qwen's default) and the template.
    """
    if vocab_size < 256 + len(BPE_SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} is below the {256 + len(BPE_SPECIAL_TOKENS)} byte and special symbols")
    if corpus is None:
        corpus = synthetic_corpus(max(4000, vocab_size // 2), seed)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=BPE_SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(corpus, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=IM_END, pad_token=ENDOFTEXT,
                                  padding_side="right", model_max_length=32768,
                                  additional_special_tokens=[IM_START, *QWEN_VISION_TOKENS])
    tok.chat_template = CHATML_TEMPLATE
    return tok


def save_tiny_qwen2(path: str, *, vocab_size: int = 1024, seed: int = 0, **config) -> str:
    """Write a random-weight tiny `Qwen2ForCausalLM` and its BPE tokenizer to `path` with `save_pretrained`
    (a folder shaped like a downloaded Qwen2.5 checkpoint). `config` overrides `tiny_qwen2_config`."""
    from workbench.models.tiny import tiny_causal_lm

    tok = bpe_tokenizer(vocab_size, seed=seed)
    model = tiny_causal_lm(tok, seed=seed, **config)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def save_tiny_qwen2_vl(path: str, *, vocab_size: int = 1024, seed: int = 0, image_size: int = 112) -> str:
    """Write a random-weight tiny Qwen2.5-VL to `path` laid out as a downloaded Qwen2.5-VL folder: the
    model, `preprocessor_config.json` naming transformers' own `Qwen2_5_VLProcessor` and
    `Qwen2VLImageProcessor` (not the zoo's processor class), the BPE tokenizer files and the ChatML
    template with vision tokens. Images are resized to `image_size`² pixels."""
    import json

    from workbench.models.vlm import WorkbenchVLProcessor, build_processor, build_tiny_vlm

    tok = bpe_tokenizer(vocab_size, seed=seed)
    images = build_processor(image_size).image_processor  # the zoo's image processor (checks image_size)
    model = build_tiny_vlm(WorkbenchVLProcessor(image_processor=images, tokenizer=tok), seed=seed)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    images.save_pretrained(path)
    config_file = os.path.join(path, "preprocessor_config.json")
    with open(config_file) as f:
        config = json.load(f)
    config.update(processor_class="Qwen2_5_VLProcessor", image_processor_type="Qwen2VLImageProcessor")
    with open(config_file, "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(path, "chat_template.json"), "w") as f:
        json.dump({"chat_template": CHATML_TEMPLATE}, f)
    return path
