"""Language-model data: text to token files on disk, and random (input, target) windows from them.

    folder = prepare_kjv("char")                       # once: <cache>/data/kjv-char/{train,val}.bin
    data = load_tokens(folder, "train")                # uint16 memmap: nothing read until used
    x, y = get_batch(data, batch_size=12, block_size=64, generator=torch.Generator().manual_seed(0))

The format is nanoGPT's: token ids as uint16 in ``train.bin`` / ``val.bin``, and ``meta.json`` with
``vocab_size`` (and a character table for character-level data). Built by hand in 02PT/06.
Only the ``prepare_*`` functions write files; ``read_meta``, ``load_tokens`` and ``get_batch`` only read.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from llmfs.config import check_device

NAMED = ("kjv-char", "kjv-gpt2")  # data sets the course prepares on request (``prepare_kjv``)
SPLITS = ("train", "val")


def prepare_data(text: str, out_dir: str | os.PathLike, encode: Callable[[str], list[int]], vocab_size: int,
                 val_fraction: float = 0.1, meta: dict | None = None) -> Path:
    """Tokenize ``text`` and write the first (1 - val_fraction) to ``train.bin``, the rest to ``val.bin``.

    Token ids are stored as uint16 (2 bytes each; vocabularies up to 65,536), the format nanoGPT uses;
    ``meta.json`` records ``vocab_size`` and anything in ``meta`` (e.g. a character table).
    """
    if not isinstance(text, str) or not text:
        raise ValueError("prepare_data needs a non-empty str of text")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not 1 <= vocab_size <= 2**16:
        raise ValueError(f"vocab_size must be an integer in 1..65536 (ids are stored as uint16), got {vocab_size!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = int(len(text) * (1 - val_fraction))  # split the text, not the tokens: the same cut for any tokenizer
    for split, part in (("train", text[:n]), ("val", text[n:])):
        ids = np.asarray(encode(part), dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            raise ValueError(f"the tokenizer produced ids outside 0..{vocab_size - 1}")
        ids.astype(np.uint16).tofile(out / f"{split}.bin")
    (out / "meta.json").write_text(json.dumps({"vocab_size": vocab_size, **(meta or {})}))
    return out


def kjv_folder(tokenizer: str, root: str | os.PathLike | None = None) -> Path:
    """Where ``prepare_kjv(tokenizer)`` writes: ``<root>/kjv-<tokenizer>``, root ``<llmfs cache>/data``."""
    if tokenizer not in ("char", "gpt2"):
        raise ValueError(f"unknown tokenizer {tokenizer!r}: 'char' or 'gpt2'")
    from llmfs.assets import cache_dir

    return Path(root or cache_dir() / "data") / f"kjv-{tokenizer}"


def prepare_kjv(tokenizer: str = "char", root: str | os.PathLike | None = None) -> Path:
    """The King James text as token files, once: ``<root>/kjv-char`` or ``<root>/kjv-gpt2``.

    'char': one token per character (``CharTokenizer``); 'gpt2': GPT-2's byte-level BPE (02PT/04).
    Returns the folder; a second call finds it and writes nothing.
    """
    out = kjv_folder(tokenizer, root)
    if (out / "meta.json").is_file():
        return out
    from llmfs.data import load_kjv
    from llmfs.pretrain.bpe import CharTokenizer, gpt2_tokenizer

    text = load_kjv()
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")  # write aside, then rename: readers never see half
    if tokenizer == "char":
        tok = CharTokenizer.from_text(text)
        prepare_data(text, tmp, tok.encode, tok.vocab_size, meta={"tokenizer": "char", "itos": tok.itos})
    else:
        prepare_data(text, tmp, gpt2_tokenizer().encode, 50257, meta={"tokenizer": "gpt2"})
    try:
        os.rename(tmp, out)
    except OSError:  # another process prepared it first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve_data_dir(data_dir: str | os.PathLike, prepare: bool = False) -> Path:
    """The folder of ``data_dir``: a path, or one of the names 'kjv-char' / 'kjv-gpt2'.

    A name whose files do not exist yet is prepared when ``prepare`` is true (the trainer does this);
    otherwise a missing folder raises ``FileNotFoundError`` saying how to make it.
    """
    if not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a path or one of {NAMED}, got {type(data_dir).__name__}")
    name = os.fspath(data_dir)
    if name in NAMED and not Path(name).is_dir():
        tokenizer = name.split("-")[1]
        if prepare:
            return prepare_kjv(tokenizer)
        folder = kjv_folder(tokenizer)
        if not (folder / "meta.json").is_file():
            raise FileNotFoundError(f"{name!r} is not prepared yet: call llmfs.pretrain.lm_data.prepare_kjv({tokenizer!r})")
        return folder
    folder = Path(name)
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(f"{folder} holds no prepared data (meta.json): write it with prepare_data(...)")
    return folder


def read_meta(data_dir: str | os.PathLike) -> dict:
    """The ``meta.json`` of a prepared folder (or name): ``vocab_size`` and, for characters, ``itos``."""
    return json.loads((resolve_data_dir(data_dir) / "meta.json").read_text())


def load_tokens(data_dir: str | os.PathLike, split: str) -> np.memmap:
    """The token ids of ``split`` ('train' or 'val') as a read-only memmap: nothing is read until used."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return np.memmap(resolve_data_dir(data_dir) / f"{split}.bin", dtype=np.uint16, mode="r")


def get_batch(data: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator,
              device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows: x = data[i : i+T], y = data[i+1 : i+T+1]; both (B, T) int64."""
    for name, value in (("batch_size", batch_size), ("block_size", block_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if getattr(data, "ndim", None) != 1:
        raise ValueError(f"data must be a 1-D array of token ids, got {type(data).__name__} "
                         f"of shape {getattr(data, 'shape', None)}")
    if len(data) <= block_size:
        raise ValueError(f"data holds {len(data)} tokens: too few for windows of block_size + 1 = {block_size + 1}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator (torch.Generator().manual_seed(0)), got {type(generator).__name__}")
    device = check_device(device)
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator).tolist()
    x = torch.from_numpy(np.stack([data[i:i + block_size] for i in ix]).astype(np.int64))
    y = torch.from_numpy(np.stack([data[i + 1:i + 1 + block_size] for i in ix]).astype(np.int64))
    if device.startswith("cuda"):  # pinned memory + non_blocking: the copy overlaps the GPU's work
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)
