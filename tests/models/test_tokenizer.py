import random
import string

from workbench.models.tokenizer import ASSISTANT, CHARS, EOS, SPECIAL_TOKENS, build_tokenizer, format_prompt


def test_round_trip_random_printable_text():
    tok = build_tokenizer()
    rng = random.Random(0)
    for _ in range(200):
        text = "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 80)))
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(text)  # one token per character
        assert tok.decode(ids) == text


def test_special_tokens_are_single_ids_and_chat_format():
    tok = build_tokenizer()
    for s in SPECIAL_TOKENS:
        assert len(tok(s, add_special_tokens=False)["input_ids"]) == 1
    text = format_prompt("1+2") + "answer: 3" + EOS
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=True) == "1+2answer: 3"
    chat = tok.apply_chat_template([{"role": "user", "content": "1+2"}], tokenize=False, add_generation_prompt=True)
    assert chat == format_prompt("1+2") and chat.endswith(ASSISTANT)


def test_unknown_characters_map_to_unk_and_ids_are_stable():
    tok = build_tokenizer()
    assert tok("é", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]
    assert build_tokenizer().get_vocab() == tok.get_vocab()
    assert tok.convert_tokens_to_ids(list(string.digits)) == list(range(tok.convert_tokens_to_ids("0"), tok.convert_tokens_to_ids("0") + 10))


def test_save_and_reload(tmp_path):
    from transformers import AutoTokenizer

    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = format_prompt("7*8") + "7*8=56\nanswer: 56" + EOS
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.padding_side == "left" and again.pad_token == tok.pad_token
