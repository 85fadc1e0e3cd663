"""The Qwen-shaped BPE tokenizer and the checkpoint folders built with it load and format like a real
Qwen2.5 / Qwen2.5-VL download (issue 25, item 17)."""

import numpy as np
import pytest

from workbench.models.bpe import CHATML_TEMPLATE, IM_END, bpe_tokenizer, save_tiny_qwen2, save_tiny_qwen2_vl
from workbench.models.generation import encode_prompts
from workbench.models.tokenizer import build_tokenizer, format_example, format_prompt
from workbench.models.vlm import encode_vl_prompts, format_vl_prompt
from workbench.models.zoo import load_model
from workbench.rl.tasks import arithmetic_task


@pytest.fixture(scope="module")
def tok():
    return bpe_tokenizer(1024)


def test_vocabulary_bytes_and_numbers(tok):
    assert len(tok) == 1024 and tok.unk_token is None
    text = "Compute 128 + 7 → ½ naïve\n\tanswer: 4096"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text  # byte-level: nothing is lost
    pieces = tok.convert_ids_to_tokens(tok("answer: 128", add_special_tokens=False)["input_ids"])
    assert any(p.strip("Ġ").isdigit() and len(p.strip("Ġ")) > 1 for p in pieces), pieces  # multi-digit number tokens
    assert bpe_tokenizer(1024).get_vocab() == tok.get_vocab()  # deterministic
    with pytest.raises(ValueError, match="vocab_size=100"):
        bpe_tokenizer(100)


def test_chatml_prompt_as_qwen_writes_it(tok):
    expected = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n")
    assert format_prompt("What is 2 + 3?", tok) == expected
    prompt, completion = format_example("What is 2 + 3?", "answer: 5", tok)
    assert prompt == expected and completion == "answer: 5" + IM_END
    ours = build_tokenizer()  # the zoo's models keep their own format, byte for byte
    assert format_prompt("q", ours) == format_prompt("q") == "<|user|>q<|assistant|>"
    assert arithmetic_task(tokenizer=tok).prompt(arithmetic_task().eval_problems(1)[0]).startswith("<|im_start|>system")


def test_workbench_format_with_a_foreign_tokenizer_is_refused(tok):
    with pytest.raises(ValueError, match=r"prompt 1 is in the workbench's chat format .* format_prompt\(question, tokenizer\)"):
        encode_prompts(tok, [format_prompt("a", tok), format_prompt("b")])
    ids, mask = encode_prompts(tok, [format_prompt("a", tok), format_prompt("a b c d e", tok)])
    assert ids.shape == mask.shape and mask[0, 0] == 0  # left-padded although the tokenizer pads right


def test_text_checkpoint_folder_loads(tmp_path):
    path = save_tiny_qwen2(str(tmp_path / "qwen2"), hidden=32, layers=1, heads=2, kv_heads=1)
    model, tok = load_model(path, device="cpu")
    assert type(model).__name__ == "Qwen2ForCausalLM" and tok.eos_token == IM_END and tok.chat_template == CHATML_TEMPLATE
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids(IM_END)


def test_vl_checkpoint_folder_loads_without_torchvision(tmp_path):
    path = save_tiny_qwen2_vl(str(tmp_path / "qwen2vl"))
    model, processor = load_model(path, device="cpu")
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert processor.chat_template == CHATML_TEMPLATE and processor.eos_token_id == processor.tokenizer.convert_tokens_to_ids(IM_END)
    prompt = format_vl_prompt("How many circles?", processor)
    assert prompt.startswith("<|im_start|>system") and "<|vision_start|><|image_pad|><|vision_end|>How many" in prompt
    image = np.zeros((112, 112, 3), dtype=np.uint8)
    enc = encode_vl_prompts(processor, [prompt], [[image]])
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((enc["input_ids"] == pad).sum()) == 16  # (112 / 28)² merged patches
    with pytest.raises(ValueError, match="workbench's chat format"):
        encode_vl_prompts(processor, [format_vl_prompt("q")], [[image]])
