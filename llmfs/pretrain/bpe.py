"""Tokenizers: byte-level byte-pair encoding (BPE) as GPT-2 does it (Sennrich et al., 2016; Radford et
al., 2019), and the one-token-per-character tokenizer of the small pretraining runs.

    tok = gpt2_tokenizer()                          # GPT-2's real merges: same ids as tiktoken's "gpt2"
    tok.encode("Hello world")                       # [15496, 995]
    tok.decode([15496, 995])                        # 'Hello world'
    tok.encode("a<|endoftext|>", allowed_special="all")   # [64, 50256]
    mine = BPETokenizer.train(text, vocab_size=1024)       # learn merges from a corpus
    chars = CharTokenizer.from_text(text)                   # one id per distinct character

Text -> UTF-8 bytes, split into chunks by a regex (never merge across a word and its punctuation),
then in each chunk repeatedly merge the adjacent pair of tokens that was learned first.
"""

from __future__ import annotations

import json
import numbers
import operator
from collections import Counter, defaultdict
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import regex  # the `regex` module: \p{L} (any letter) and \p{N} (any digit) in patterns

# GPT-2's pre-tokenizer (openai/gpt-2, src/encoder.py): contractions, words, numbers, punctuation
# runs, each with at most one leading space; whitespace runs keep their last space for the next word.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"

Pair = tuple[int, int]


def _token_ids(ids, known) -> list[int]:
    """``ids`` (a list, tuple, 1-D array or tensor of ints) as a list of ints, each one ``in known``;
    a TypeError / ValueError that says what came otherwise."""
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__") or getattr(ids, "ndim", 1) != 1:
        raise TypeError(f"ids must be a 1-D sequence of token ids (ints), got {type(ids).__name__} "
                        f"{getattr(ids, 'shape', '')}".rstrip())
    try:
        ids = [operator.index(i) for i in ids]  # ints, NumPy ints, 0-d integer tensors; not floats
    except TypeError:
        raise TypeError(f"token ids must be ints, got {sorted({type(i).__name__ for i in ids})}") from None
    bad = [i for i in ids if i not in known]
    if bad:
        raise ValueError(f"token ids not in the vocabulary ({len(known)} tokens): {bad[:5]}")
    return ids


@dataclass
class CharTokenizer:
    """One token per character: ``itos[i]`` is the character of id i (sorted, so ids are stable)."""

    itos: list[str]

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        if not isinstance(text, str) or not text:
            raise ValueError("CharTokenizer.from_text needs a non-empty str")
        return cls(sorted(set(text)))

    def __post_init__(self):
        if not self.itos or not all(isinstance(c, str) and len(c) == 1 for c in self.itos):
            raise ValueError("itos must be a non-empty list of single characters")
        if len(set(self.itos)) != len(self.itos):
            raise ValueError("itos holds a character twice")
        self.stoi = {ch: i for i, ch in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        unknown = set(text) - self.stoi.keys()
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {''.join(sorted(unknown))[:20]!r}")
        return [self.stoi[ch] for ch in text]

    def decode(self, ids) -> str:
        return "".join(self.itos[i] for i in _token_ids(ids, range(len(self.itos))))


def get_stats(ids: list[int], counts: Counter | None = None, weight: int = 1) -> Counter:
    """How often each adjacent pair occurs in ids (added to ``counts``, ``weight`` times each)."""
    counts = Counter() if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] += weight
    return counts


def merge(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ids, left to right, by ``new_id``."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 bytes to printable characters (vocab.bpe is written with them):
    printable Latin-1 bytes map to themselves, the others (space, control bytes...) to chr(256+n)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return chars


# GPT-2 numbers the 256 bytes in the order of their printable characters: '!' is 0, ' ' is 220.
_GPT2_BYTE_ORDER = sorted(range(256), key=bytes_to_unicode().get)
BYTE_RANK = [_GPT2_BYTE_ORDER.index(b) for b in range(256)]


def most_frequent(stats: Counter) -> Pair:
    """The pair to merge next: the most frequent. Ties go to the smallest pair, bytes compared in
    GPT-2's order and merged tokens by id, which is what Hugging Face ``tokenizers`` does too."""
    rank = lambda i: BYTE_RANK[i] if i < 256 else i  # noqa: E731
    return max(stats, key=lambda p: (stats[p], -rank(p[0]), -rank(p[1])))


class BPETokenizer:
    """A byte-level BPE: ``vocab`` maps id -> bytes, ``merges`` maps (id, id) -> merged id.

    A merged id is larger than both of its parts, so "learned first" = "smaller merged id".
    ``byte_ids[b]`` is the id of the single byte b (the identity for a trained tokenizer; GPT-2
    numbers its bytes in another order). ``special_tokens`` maps e.g. '<|endoftext|>' -> id.
    """

    def __init__(self, merges: dict[Pair, int], byte_ids: list[int] | None = None,
                 special_tokens: dict[str, int] | None = None, pattern: str = GPT2_SPLIT_PATTERN):
        if not isinstance(merges, dict) or not isinstance(special_tokens or {}, dict):
            raise TypeError(f"merges and special_tokens must be dicts, "
                            f"got {type(merges).__name__}, {type(special_tokens).__name__}")
        self.byte_ids = list(range(256)) if byte_ids is None else list(byte_ids)
        if len(set(self.byte_ids)) != 256:
            raise ValueError(f"byte_ids must give 256 distinct ids, one per byte, got {len(set(self.byte_ids))}")
        self.merges = dict(merges)
        self.special_tokens = dict(special_tokens or {})
        self.pattern, self.compiled = pattern, _compile(pattern)
        self.vocab: dict[int, bytes] = {i: bytes([b]) for b, i in enumerate(self.byte_ids)}
        for (a, b), new_id in sorted(self.merges.items(), key=lambda kv: kv[1]):
            if a not in self.vocab or b not in self.vocab:
                raise ValueError(f"the merge ({a}, {b}) -> {new_id} uses a token made by no earlier merge")
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]
        for s, i in self.special_tokens.items():
            self.vocab[i] = s.encode("utf-8")
        self.cache: dict[str, list[int]] = {}  # chunk -> its ids: most text repeats the same words

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    # --- encoding ---------------------------------------------------------------------------
    def encode_chunk(self, chunk: str) -> list[int]:
        """One pre-tokenized chunk -> ids: merge the earliest-learned pair until none applies."""
        if chunk in self.cache:
            return self.cache[chunk]
        ids = [self.byte_ids[b] for b in chunk.encode("utf-8")]
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break  # no pair left that we know how to merge
            ids = merge(ids, pair, self.merges[pair])
        self.cache[chunk] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """text -> ids, treating special-token text like any other text."""
        return [i for chunk in self.compiled.findall(text) for i in self.encode_chunk(chunk)]

    def encode(self, text: str, allowed_special: set[str] | str = frozenset()) -> list[int]:
        """text -> ids. Special tokens in ``allowed_special`` (or "all") become their single id; any
        other special token in the text raises ValueError, as in tiktoken (it is usually a mistake)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif isinstance(allowed_special, (AbstractSet, list, tuple)) and all(isinstance(s, str) for s in allowed_special):
            allowed = set(allowed_special)
        else:
            raise TypeError(f'allowed_special must be "all" or a set of special-token strings, got {allowed_special!r:.60}')
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(f"allowed_special names tokens this tokenizer does not have: {sorted(unknown)}; "
                             f"its special tokens are {sorted(self.special_tokens)}")
        for s in set(self.special_tokens) - allowed:
            if s in text:
                raise ValueError(f"text contains the special token {s!r}: pass allowed_special={{{s!r}}} "
                                 "to encode it as one token, or use encode_ordinary() to encode it as text")
        if not allowed:
            return self.encode_ordinary(text)
        parts = regex.split("(" + "|".join(regex.escape(s) for s in sorted(allowed)) + ")", text)
        ids = []
        for i, part in enumerate(parts):  # odd positions hold the special tokens
            ids.extend([self.special_tokens[part]] if i % 2 else self.encode_ordinary(part))
        return ids

    def decode(self, ids: list[int]) -> str:
        """ids -> text. A cut in the middle of a multi-byte character decodes to U+FFFD, as in tiktoken."""
        return b"".join(self.vocab[i] for i in _token_ids(ids, self.vocab)).decode("utf-8", errors="replace")

    # --- training ---------------------------------------------------------------------------
    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str = GPT2_SPLIT_PATTERN,
              special_tokens: tuple[str, ...] = (ENDOFTEXT,), progress: bool = False) -> BPETokenizer:
        """Learn merges from text until the vocabulary (256 bytes + merges + specials) has vocab_size
        tokens. Merges happen inside regex chunks only, each distinct chunk counted once with its
        frequency; after a merge only the chunks that held the pair are recounted."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if (not isinstance(special_tokens, (tuple, list)) or not all(isinstance(s, str) and s for s in special_tokens)
                or len(set(special_tokens)) != len(special_tokens)):
            raise ValueError(f"special_tokens must be a tuple of distinct non-empty strs, got {special_tokens!r:.60}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral):
            raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0:
            raise ValueError(f"vocab_size must be at least {256 + len(special_tokens)} (256 bytes + "
                             f"{len(special_tokens)} special tokens), got {vocab_size}")
        chunk_counts = Counter(_compile(pattern).findall(text))
        words = [list(w.encode("utf-8")) for w in chunk_counts]
        freq = list(chunk_counts.values())
        stats, where = Counter(), defaultdict(set)  # pair -> total count; pair -> words holding it
        for w, ids in enumerate(words):
            get_stats(ids, stats, freq[w])
            for pair in zip(ids, ids[1:]):
                where[pair].add(w)
        merges: dict[Pair, int] = {}
        steps = range(256, 256 + n_merges)
        if progress:
            from llmfs.config import progress as bar
            steps = bar(steps, desc="BPE merges")
        for new_id in steps:
            if not stats:
                break  # every chunk is a single token: nothing left to merge
            pair = most_frequent(stats)
            merges[pair] = new_id
            for w in where.pop(pair):  # only these words change
                ids = words[w]
                for p in zip(ids, ids[1:]):  # forget the old pairs of this word...
                    stats[p] -= freq[w]
                    if stats[p] == 0:
                        del stats[p]
                words[w] = ids = merge(ids, pair, new_id)
                for p in zip(ids, ids[1:]):  # ...and count its new ones
                    stats[p] += freq[w]
                    where[p].add(w)
        specials = {s: 256 + len(merges) + k for k, s in enumerate(special_tokens)}
        return cls(merges, special_tokens=specials, pattern=pattern)

    # --- GPT-2's files ----------------------------------------------------------------------
    @classmethod
    def from_gpt2_files(cls, encoder_json: str | Path, vocab_bpe: str | Path) -> BPETokenizer:
        """GPT-2's original encoder.json (token string -> id) and vocab.bpe (the merges, in order)."""
        byte_chars = bytes_to_unicode()
        encoder: dict[str, int] = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
        lines = Path(vocab_bpe).read_text(encoding="utf-8").split("\n")[1:]  # line 0: a version header
        merges = {}
        for line in filter(None, lines):
            a, b = line.split()
            merges[encoder[a], encoder[b]] = encoder[a + b]
        byte_ids = [encoder[byte_chars[b]] for b in range(256)]
        return cls(merges, byte_ids=byte_ids, special_tokens={ENDOFTEXT: encoder[ENDOFTEXT]})


def _compile(pattern: str) -> regex.Pattern:
    """The pre-tokenizer regex, or a TypeError / ValueError saying why it is not one."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a regex str, got {type(pattern).__name__}")
    try:
        return regex.compile(pattern)
    except regex.error as err:
        raise ValueError(f"pattern is not a valid regex: {err}") from None


@lru_cache(maxsize=1)
def gpt2_tokenizer() -> BPETokenizer:
    """The from-scratch BPE with GPT-2's real merges (50,257 tokens; '<|endoftext|>' = 50256).
    One shared instance: its cache of encoded words grows as you use it."""
    from llmfs.data import gpt2_bpe_files

    return BPETokenizer.from_gpt2_files(*gpt2_bpe_files())


def tiktoken_gpt2():
    """The reference: tiktoken's real ``gpt2`` encoding, built offline from the same two files."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    from llmfs.data import gpt2_bpe_files

    encoder_json, vocab_bpe = gpt2_bpe_files()
    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=str(vocab_bpe), encoder_json_file=str(encoder_json))
    return tiktoken.Encoding(name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={ENDOFTEXT: 50256})
