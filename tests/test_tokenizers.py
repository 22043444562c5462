import json

import pytest
import regex

from llmfs.data import load_kjv
from llmfs.pretrain.bpe import (
    ENDOFTEXT,
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    bytes_to_unicode,
    get_stats,
    gpt2_tokenizer,
    merge,
    most_frequent,
    tiktoken_gpt2,
)

VARIED = (
    "Hello world! It's GPT-2's tokenizer; we'll see: they've, I'm, you'd, WE'RE, o'clock.\n"
    "Ünïcödé — naïve café, Straße, Ελληνικά, русский, עברית, العربية, हिन्दी\n"
    "日本語のテキスト、中文字符和한국어 🤖👍🏽 family: 👨\u200d👩\u200d👧 flags 🇫🇷 \u00a0nbsp\n"
    "def f(x: int = 42) -> float:\n    return x ** 0.5  # comment\t\ttabs\n\n\n"
    "    indented    spaces   \r\n  123456789 3.14159 1,000,000 -7e-10 0x1F 2024-01-31\n"
    "<html><a href=\"https://example.com/?q=1&b=2\">link</a></html> {\"json\": [1, 2, null]}\n"
    "trailing whitespace   \n \n\t "
)


def test_gpt2_tokenizer_equals_tiktoken_token_for_token():
    tok, ref = gpt2_tokenizer(), tiktoken_gpt2()
    assert tok.encode("Hello world") == [15496, 995]
    text = VARIED + load_kjv()[:20_000]
    ids = tok.encode(text)
    assert ids == ref.encode(text)
    assert tok.decode(ids) == text
    for line in VARIED.splitlines(keepends=True):  # each line alone: different chunk boundaries
        assert tok.encode(line) == ref.encode(line), line


def test_special_tokens():
    tok, ref = gpt2_tokenizer(), tiktoken_gpt2()
    text = "first doc<|endoftext|>second doc"
    assert tok.vocab_size == 50257 and tok.special_tokens == {ENDOFTEXT: 50256}
    assert tok.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert tok.encode(text, allowed_special={ENDOFTEXT}).count(50256) == 1
    assert tok.encode_ordinary(text) == ref.encode_ordinary(text)  # the special as plain text
    assert 50256 not in tok.encode_ordinary(text)
    with pytest.raises(ValueError, match="special token"):
        tok.encode(text)
    assert tok.decode(tok.encode(text, allowed_special="all")) == text


def test_decode_of_a_cut_character_is_a_replacement_char():
    tok = gpt2_tokenizer()
    ids = tok.encode("🤖")
    assert len(ids) > 1 and tok.decode(ids[:1]) == "\ufffd"


def test_bytes_to_unicode_is_a_printable_bijection():
    m = bytes_to_unicode()
    assert len(set(m.values())) == 256 and all(c.isprintable() and not c.isspace() for c in m.values())
    assert m[ord("a")] == "a" and m[ord(" ")] == "Ġ" and m[ord("\n")] == "Ċ"


def test_pattern_splits_like_gpt2():
    chunks = regex.findall(GPT2_SPLIT_PATTERN, "Hello   world's 123!!\n\n")
    assert chunks == ["Hello", "  ", " world", "'s", " 123", "!!", "\n\n"]


def test_merge_and_stats():
    assert merge([1, 1, 1, 2, 1, 1], (1, 1), 9) == [9, 1, 2, 9]
    stats = get_stats([1, 1, 1, 2])
    assert stats == {(1, 1): 2, (1, 2): 1}
    assert most_frequent({(5, 6): 3, (2, 9): 3, (1, 1): 2}) == (2, 9)  # ties: smallest pair...
    a, b, space = ord("a"), ord("b"), ord(" ")
    assert most_frequent({(space, a): 3, (a, b): 3}) == (a, b)  # ...in GPT-2's byte order
    assert most_frequent({(300, 5): 3, (a, 300): 3}) == (a, 300)


def naive_train(text: str, vocab_size: int) -> dict:
    """Recount every pair after every merge: slow and obviously right."""
    words = [list(w.encode()) for w in regex.findall(GPT2_SPLIT_PATTERN, text)]
    merges = {}
    for new_id in range(256, vocab_size):
        stats = get_stats([])
        for w in words:
            get_stats(w, stats)
        if not stats:
            break
        pair = most_frequent(stats)
        merges[pair] = new_id
        words = [merge(w, pair, new_id) for w in words]
    return merges


def test_fast_training_equals_naive_training_and_round_trips():
    text = load_kjv()[:20_000]
    tok = BPETokenizer.train(text, vocab_size=360)  # 103 merges + <|endoftext|>
    assert tok.vocab_size == 360 and tok.special_tokens == {ENDOFTEXT: 359}
    assert tok.merges == naive_train(text, 359)
    sample = load_kjv()[-3000:] + VARIED
    assert tok.decode(tok.encode(sample)) == sample
    assert len(tok.encode(text)) < 0.6 * len(text.encode())  # it compresses its training text


def test_training_learns_the_same_merges_as_huggingface_tokenizers():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    text = load_kjv()[:100_000]
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.train_from_iterator([text], trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    theirs = [tuple(bytes(byte_of[c] for c in s) for s in m) for m in json.loads(hf.to_str())["model"]["merges"]]
    ours = BPETokenizer.train(text, vocab_size=601)  # 344 merges + <|endoftext|>
    assert len(theirs) == 344 and [(ours.vocab[a], ours.vocab[b]) for a, b in ours.merges] == theirs


def test_train_rejects_a_too_small_vocabulary():
    with pytest.raises(ValueError):
        BPETokenizer.train("abc", vocab_size=100)
