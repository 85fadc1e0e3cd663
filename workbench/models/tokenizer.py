"""Offline character-level tokenizer, built with `tokenizers` and wrapped as a transformers tokenizer.

Nothing is downloaded: the vocabulary is printable ASCII plus a few special tokens, so a tiny model
learns arithmetic digit by digit and every token is one readable character in token-level plots.

Chat format (also installed as the tokenizer's `chat_template`)::

    <|user|>{question}<|assistant|>{response}<|endoftext|>

The vision special tokens of Qwen2.5-VL (`<|vision_start|>`, `<|image_pad|>`, `<|vision_end|>`, ...)
are in the vocabulary too, so the tiny vision-language model shares this tokenizer.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<|pad|>", "<|endoftext|>", "<|unk|>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_pad|>"]
SPECIAL_TOKENS = [PAD, EOS, UNK, USER, ASSISTANT, *VISION_TOKENS]
CHARS = [c for c in string.printable if c not in "\r\x0b\x0c"]  # digits, letters, punctuation, space, \t, \n

CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}<|assistant|>{{ m['content'] }}<|endoftext|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Build the workbench's character-level tokenizer (deterministic ids, no files, no network).

    Returns:
        A `PreTrainedTokenizerFast` with `pad_token`, `eos_token`, `unk_token` set, left padding
        (so batched generation appends on the right), and the chat template above.
        `len(tokenizer)` is the vocabulary size (~110).
    """
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # one token per character
    core.decoder = decoders.Fuse()  # join characters back without spaces
    core.add_special_tokens(SPECIAL_TOKENS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        padding_side="left",
        model_max_length=32768,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def format_prompt(question: str) -> str:
    """The chat prompt for one user turn, ending where the assistant's response begins."""
    return f"{USER}{question}{ASSISTANT}"


def format_example(question: str, response: str) -> tuple[str, str]:
    """(prompt, completion) strings for SFT: the completion ends with the EOS token."""
    return format_prompt(question), response + EOS


def token_strings(tokenizer, ids) -> list[str]:
    """Token strings of `ids` (a list or 1-D tensor) for display; ids past the vocabulary (the padded rows
    of an embedding rounded up to a multiple of 64, which an untrained model can sample) become `<?>`."""
    ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    return [t if t is not None else "<?>" for t in tokenizer.convert_ids_to_tokens(ids)]
