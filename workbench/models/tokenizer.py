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


def format_prompt(question: str, tokenizer=None) -> str:
    """The chat prompt for one user turn, ending where the assistant's response begins.

    With a `tokenizer` that has a chat template of its own (a real checkpoint's: ChatML for Qwen), the
    prompt is that template applied to the turn with `add_generation_prompt=True`; with none, or with the
    workbench's (the zoo's models), it is ``<|user|>{question}<|assistant|>``."""
    template = getattr(tokenizer, "chat_template", None)
    if not template or template == CHAT_TEMPLATE:
        return f"{USER}{question}{ASSISTANT}"
    return tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                         tokenize=False)


def format_example(question: str, response: str, tokenizer=None) -> tuple[str, str]:
    """(prompt, completion) strings for SFT: the completion ends with the EOS token (the tokenizer's)."""
    return format_prompt(question, tokenizer), response + (tokenizer.eos_token if tokenizer is not None else EOS)


def check_chat_format(tokenizer, prompts) -> None:
    """ValueError when a prompt is in the workbench's chat format but `tokenizer` does not know it (a real
    checkpoint's tokenizer would split ``<|user|>`` into bytes and the model would see a format it was
    never trained on): such prompts must come from `format_prompt(question, tokenizer)`."""
    if not any(USER in p for p in prompts):
        return
    known = tokenizer.convert_tokens_to_ids(USER)
    if known is None or known == getattr(tokenizer, "unk_token_id", None):
        row = next(i for i, p in enumerate(prompts) if USER in p)
        raise ValueError(f"prompt {row} is in the workbench's chat format ({USER}...{ASSISTANT}) but this tokenizer "
                         f"has no {USER} token: build prompts with format_prompt(question, tokenizer), which applies "
                         "the checkpoint's own chat template")


def token_strings(tokenizer, ids) -> list[str]:
    """Token strings of `ids` (a list or 1-D tensor) for display; ids past the vocabulary (the padded rows
    of an embedding rounded up to a multiple of 64, which an untrained model can sample) become `<?>`."""
    ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    return [t if t is not None else "<?>" for t in tokenizer.convert_ids_to_tokens(ids)]
