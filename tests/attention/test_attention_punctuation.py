"""punctuation_token_ids on the workbench's char tokenizer and on a BPE-like vocabulary."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from workbench.attention.punctuation import punctuation_mask, punctuation_token_ids
from workbench.models.tokenizer import build_tokenizer


def test_char_tokenizer_punctuation_ids():
    tok = build_tokenizer()
    ids = punctuation_token_ids(tok)
    assert sorted(tok.convert_ids_to_tokens(ids)) == sorted(list("!,.:;?"))
    assert all(i not in tok.all_special_ids for i in ids)


def _bpe_like():
    vocab = {"<unk>": 0, "hello": 1, ".": 2, ".\n": 3, "),": 4, "end.": 5, "e.g": 6, "world": 7, "?!": 8, "\"": 9}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")


def test_bpe_like_vocab_only_and_contains_modes():
    tok = _bpe_like()
    assert punctuation_token_ids(tok) == [2, 3, 4, 8]  # pure punctuation (with whitespace/brackets)
    assert punctuation_token_ids(tok, mode="contains") == [2, 3, 4, 5, 6, 8]
    assert punctuation_token_ids(tok, chars="?") == [8]
    with pytest.raises(ValueError, match="mode must be"):
        punctuation_token_ids(tok, mode="some")


def test_punctuation_mask():
    ids = torch.tensor([[1, 2, 3, 7], [4, 4, 0, 1]])
    assert punctuation_mask(ids, [2, 4]).tolist() == [[False, True, False, False], [True, True, False, False]]
    assert not punctuation_mask(ids, []).any()
